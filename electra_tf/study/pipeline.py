"""The study's stages, each the package's own library call on the study's data dir, each
skipping what an earlier (possibly interrupted) run finished:

1. ``data``: fetch the samples, put BERT's vocab, the tasks' folders and the pretraining
   TFRecords (all sample prose) into ``output_dir`` (the original's data-dir layout);
2. ``pretrain``: each objective for the same FLOP budget, exporting encoder snapshots at
   ``checkpoint_fractions`` of the run;
3. ``finetune``: every pretrained encoder and the from-scratch control on every task,
   ``num_trials`` seeds; the snapshots on ``curve_tasks``;
4. ``tlm`` and ``lstm``: the extra rows;
5. ``report``: ``study_results.json``, the Table IV markdown and the FLOPs plot.
"""

from __future__ import annotations

import os
import time

from data_prep import samples
from data_prep.build_pretraining_dataset import build_dataset
from electra_tf import files
from electra_tf.baselines.config import BaselinesConfig
from electra_tf.baselines.sweep import SETTINGS_FILE as SWEEP_SETTINGS
from electra_tf.baselines.sweep import run_sweep
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import SETTINGS_FILE as FINETUNING_SETTINGS
from electra_tf.finetuning.trainer import CompiledTrials, finetune
from electra_tf.pretraining.config import SETTINGS_FILE as PRETRAINING_SETTINGS
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import pretrain
from electra_tf.study.config import CORPORA, StudyConfig
from electra_tf.tlm.config import TlmConfig
from electra_tf.tlm.trainer import SETTINGS_FILE as TLM_SETTINGS
from electra_tf.tlm.trainer import run_tlm
from electra_tf.tokenization import load_vocab
from electra_tf.training.run_dir import RunDir

STAGES = ("data", "pretrain", "finetune", "tlm", "lstm", "report")


def announce(message: str) -> None:
    """One line between the stages' own progress bars."""
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- data

def corpus_specs(config: StudyConfig) -> list[str]:
    """The pretraining corpora as ``FORMAT:PATH`` (the corpus readers' syntax)."""
    return [f"{CORPORA[name]}:{samples.path(name, config.samples_dir)}"
            for name in config.corpora]


def _copy_file(source: str, target: str) -> None:
    data = files.read_bytes(source)
    if files.exists(target) and files.read_bytes(target) == data:
        return
    files.atomic_write(target, data)


def task_folder(task: str) -> str:
    """``pos_wsj-crf`` trains on ``pos_wsj``'s folder with a CRF head."""
    return task.removesuffix("-crf")


def prepare_data(config: StudyConfig, progress: bool = True) -> dict:
    """Samples fetched, vocab + task folders copied, TFRecords built; returns the
    TFRecords summary."""
    for name in ("vocab", "movie_reviews", "wiki_leads", "wsj_pos", *config.corpora):
        samples.fetch(name, config.samples_dir)
    vocab = files.join(config.output_dir, "vocab.txt")
    _copy_file(samples.path("vocab", config.samples_dir), vocab)
    source_tasks = files.join(config.samples_dir, "finetuning_data")
    for folder in sorted({task_folder(t) for t in config.tasks}):
        source = files.join(source_tasks, folder)
        for name in files.listdir(source):
            _copy_file(files.join(source, name),
                       files.join(config.output_dir, "finetuning_data", folder, name))
    return build_dataset(corpus_specs(config), vocab, config.tfrecords_dir,
                         config.max_seq_length, config.num_shards,
                         num_processes=config.num_processes, seed=config.data_seed,
                         progress=progress)


# ----------------------------------------------------------------------------- pretraining

def pretraining_config(config: StudyConfig, objective: str, num_tokens: int | None = None):
    """The PretrainingConfig of `objective`'s run: the study's shared settings, warmup as
    a fraction of that run's own steps, snapshots at the checkpoint fractions.
    `num_tokens`: the vocab's size (default: read from the study's vocab.txt)."""
    values = dict(config.pretrain_hparams)
    values.update(model_name=config.model_name(objective), data_dir=config.output_dir,
                  objective=objective, model_size=config.model_size, seed=config.seed,
                  flop_budget=config.flop_budget, train_batch_size=config.train_batch_size,
                  max_seq_length=config.max_seq_length, learning_rate=config.learning_rate,
                  mixed_precision=config.mixed_precision,
                  encoder_snapshots=[f for f in config.checkpoint_fractions if f < 1.0],
                  change_settings=config.stage_changes("pretrain_hparams"))
    pretraining = PretrainingConfig.from_dict(values)
    steps = pretraining.train_steps(pretraining.model_config(num_tokens or vocab_size(config)))
    pretraining.num_warmup_steps = round(config.warmup_fraction * steps)
    pretraining.log_every_steps = min(pretraining.log_every_steps, max(1, steps // 20))
    pretraining.save_checkpoints_steps = min(pretraining.save_checkpoints_steps,
                                             max(1, steps // 10))
    return pretraining


def vocab_size(config: StudyConfig) -> int:
    return len(load_vocab(files.join(config.output_dir, "vocab.txt")))


def pretrain_all(config: StudyConfig, progress: bool = True) -> dict[str, dict]:
    """Each objective pretrained (or resumed, or found done); {objective: train summary}."""
    summaries = {}
    for objective in config.objectives:
        pretraining = pretraining_config(config, objective)
        steps = pretraining.train_steps(pretraining.model_config(vocab_size(config)))
        announce(f"pretrain {pretraining.model_name}: {steps:,} steps for "
                 f"{config.flop_budget:.3g} FLOPs")
        summaries[objective] = pretrain(pretraining, progress=progress)
    return summaries


# ----------------------------------------------------------------------------- finetuning

def finetuning_config(config: StudyConfig, row: str, task: str, num_trials: int,
                      init_checkpoint: str = "", output_dir: str = ""):
    """The FinetuningConfig of `row` (an objective or ``scratch``) on `task`."""
    values = dict(config.finetune_hparams)
    values.update(data_dir=config.output_dir, model_name=config.model_name(row),
                  task_names=[task_folder(task)], use_crf=task.endswith("-crf"),
                  num_trials=num_trials, seed=config.seed, init_checkpoint=init_checkpoint,
                  output_dir=output_dir,
                  change_settings=config.stage_changes("finetune_hparams"))
    if row == "scratch":
        # the control: the discriminator's shape (ELECTRA's), freshly initialized
        values.update(from_scratch=True, model_size=config.model_size,
                      vocab_file=files.join(config.output_dir, "vocab.txt"))
    return FinetuningConfig.from_dict(values)


def _finished(path: str, num_trials: int) -> dict | None:
    results = files.read_json(path, missing_ok=True) or {}
    return results if len(results.get("trials", [])) >= num_trials else None


def finetune_cell(config: StudyConfig, row: str, task: str, num_trials: int,
                  init_checkpoint: str = "", output_dir: str = "",
                  progress: bool = True, compiled: CompiledTrials | None = None) -> dict:
    """One finetuning run (all its trials), or its results when already written;
    `compiled` carries a compiled model from cell to cell."""
    finetuning = finetuning_config(config, row, task, num_trials, init_checkpoint, output_dir)
    done = _finished(finetuning.results_path, num_trials)
    if done is not None:
        return done
    where = f" (snapshot {os.path.basename(init_checkpoint)})" if init_checkpoint else ""
    announce(f"finetune {finetuning.model_name}{where} on {task}, {num_trials} seed(s)")
    return finetune(finetuning, progress=progress, compiled=compiled)


def snapshots(config: StudyConfig, objective: str) -> list[tuple[str, dict]]:
    """(dir, {"step", "flops"}) of `objective`'s encoder snapshots, by step."""
    root = files.join(config.model_dir(objective), "snapshots")
    found = []
    for name in files.listdir(root) if files.isdir(root) else ():
        marker = files.join(root, name, "snapshot.json")
        if files.exists(marker):
            found.append((files.join(root, name), files.read_json(marker)))
    return sorted(found, key=lambda item: item[1]["step"])


def finetune_all(config: StudyConfig, progress: bool = True) -> None:
    """Task by task: every row, then (a curve task) every snapshot. The cells of one task
    run one after the other, in one compiled model when their models and settings are
    the same."""
    for task in config.tasks:
        compiled = CompiledTrials()
        for row in config.rows:
            finetune_cell(config, row, task, config.num_trials, progress=progress,
                          compiled=compiled)
        if task not in config.curve_tasks:
            continue
        for objective in config.objectives:
            for directory, _ in snapshots(config, objective):
                finetune_cell(config, objective, task, config.curve_trials,
                              init_checkpoint=directory, output_dir=directory,
                              progress=progress, compiled=compiled)


# ----------------------------------------------------------------------------- extra rows

def tlm_config(config: StudyConfig):
    """TLM on ``tlm_task``: a BERT-style model of the study's size trained from scratch on
    the task + what BM25 retrieves from the same corpus, for a fraction of the budget."""
    corpora = corpus_specs(config)
    values = {"passage_words": 128, "retriever": "bm25s", "top_k": 3, "max_seq_length": 64,
              "external_ratio": 3, "mlm_weight": 20.0, "learning_rate": 5e-4,
              "stage2_learning_rate": 3e-4, "stage2_num_train_epochs": 2.0,
              "mixed_precision": config.mixed_precision}
    values.update(config.tlm_hparams)
    values.update(model_name=f"tlm_{config.tlm_task}", data_dir=config.output_dir,
                  task_name=config.tlm_task, runs=["tlm"], corpus=corpora,
                  model_size=config.model_size, seed=config.seed,
                  train_batch_size=config.train_batch_size,
                  flop_budget=config.tlm_budget_fraction * config.flop_budget,
                  change_settings=config.stage_changes("tlm_hparams"))
    return TlmConfig.from_dict(values)


def run_tlm_row(config: StudyConfig, progress: bool = True) -> dict | None:
    if not config.tlm_task:
        return None
    tlm = tlm_config(config)
    done = files.read_json(tlm.results_path, missing_ok=True) or {}
    if "stage2" in done.get("runs", {}).get("tlm", {}):
        return done
    announce(f"TLM on {config.tlm_task} for {tlm.flop_budget:.3g} FLOPs")
    return run_tlm(tlm, progress=progress)


def lstm_config(config: StudyConfig, task: str):
    # the same share of the training set as the finetuned rows
    values = {"num_trials": config.num_trials, **config.lstm_hparams}  # CPU LSTMs are slow:
    values.update(model_name=f"bilstm_{task}", data_dir=config.output_dir, task_name=task,
                  fractions=[config.finetune_hparams.get("train_fraction", 1.0)],
                  seed=config.seed, lstm_models=[config.lstm_model],
                  max_seq_length=config.finetune_hparams.get("max_seq_length", 128),
                  change_settings=config.stage_changes("lstm_hparams"))
    return BaselinesConfig.from_dict(values)


def run_lstm_rows(config: StudyConfig, progress: bool = True) -> dict[str, dict]:
    """The BiLSTM from scratch on every classification task: {task: sweep results}."""
    results = {}
    for task in config.lstm_tasks:
        baselines = lstm_config(config, task)
        announce(f"{config.lstm_model} from scratch on {task}, {baselines.num_trials} seed(s)")
        results[task] = run_sweep(baselines, progress=progress)
    return results


# ----------------------------------------------------------------------------- re-runs

def check_stages(config: StudyConfig) -> None:
    """Every stage run the study has started, checked against the settings the study
    would give it now (:meth:`RunDir.check`): a setting it may not change stops the study
    before the study saves its own settings, naming the stage's folder."""
    if not files.exists(files.join(config.output_dir, "vocab.txt")):
        return  # no stage past the data has started
    runs = [(RunDir(p.model_dir, PRETRAINING_SETTINGS), p)
            for p in (pretraining_config(config, o) for o in config.objectives)]
    cells = [(row, task, config.num_trials, "", "") for row in config.rows
             for task in config.tasks]
    cells += [(objective, task, config.curve_trials, directory, directory)
              for objective in config.objectives for directory, _ in snapshots(config, objective)
              for task in config.curve_tasks]
    for cell in cells:
        finetuning = finetuning_config(config, *cell)
        runs.append((RunDir(finetuning.run_dir, FINETUNING_SETTINGS), finetuning))
    if config.tlm_task:
        tlm = tlm_config(config)
        runs.append((RunDir(tlm.model_dir, TLM_SETTINGS, "a TLM run"), tlm))
    for task in config.lstm_tasks:
        sweep = lstm_config(config, task)
        runs.append((RunDir(sweep.output_dir, SWEEP_SETTINGS, "a sweep"), sweep))
    for run, stage_config in runs:
        run.check(stage_config)
