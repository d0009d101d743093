"""The study from end to end: its stages in order, resumable, then the report."""

from __future__ import annotations

import time

from absl import logging

from electra_tf import files
from electra_tf.study import report
from electra_tf.study.config import StudyConfig
from electra_tf.study.pipeline import (
    STAGES,
    announce,
    check_stages,
    finetune_all,
    prepare_data,
    pretrain_all,
    run_lstm_rows,
    run_tlm_row,
)
from electra_tf.training.run_dir import RunDir


def run_study(config: StudyConfig, stages=STAGES, progress: bool = True) -> dict:
    """Run (or resume) the study's `stages`; returns the results (also written).

    Example::

        config = StudyConfig(output_dir="data/study_demo")
        results = run_study(config)  # data/study_demo/study_results.{json,md,png}
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; allowed: {', '.join(STAGES)}")
    run = RunDir(config.output_dir, "study_config.json", "a study", "--output_dir")
    run.check(config)
    check_stages(config)  # a stage that would refuse stops the study before it saves
    run.start(config)
    announce(f"outputs in {config.output_dir}; watch with: tensorboard --logdir "
             f"{files.join(config.output_dir, 'models')}")
    started = time.time()
    if "data" in stages:
        announce("data: samples, vocab, task folders, pretraining TFRecords")
        summary = prepare_data(config, progress)
        announce(f"pretraining data: {summary['examples']:,} examples of "
                 f"{config.max_seq_length} tokens from {summary['documents']:,} documents")
    if "pretrain" in stages:
        pretrain_all(config, progress)
    if "finetune" in stages:
        finetune_all(config, progress)
    if "tlm" in stages:
        run_tlm_row(config, progress)
    if "lstm" in stages:
        run_lstm_rows(config, progress)
    results = report.collect(config)
    if "report" in stages:
        report.write(config, results)
    logging.info("study stages %s took %.0f s", stages, time.time() - started)
    return results
