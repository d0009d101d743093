"""run_study: the equal-FLOP comparison of Table IV of Shao's "Pretraining Deep Learning
Models for NLU" at a size this machine carries — BERT, ELECTRA and ALE pretrained on the
same corpus for the same FLOPs, a from-scratch control, TLM and a BiLSTM as extra rows —
finetuned on every real sample task with several seeds. ``make demo`` is this command
with a one-model flagfile.

Examples::

  electra-study --flagfile=flags/study/samples.flags      # the study (about 2 hours here)
  electra-study --flagfile=flags/study/samples.flags --quick   # the same, in minutes
  electra-study --flagfile=flags/study/demo.flags          # make demo

Re-running continues where an interrupted run stopped: finished data, pretraining runs,
snapshots and finetuning runs are read back; running ones resume from their checkpoints.
"""

from __future__ import annotations

import dataclasses

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS

# StudyConfig fields default to None: the config's default, or the --hparams value.
FLAG_TABLE = [
    ("string", "output_dir", None, "The study's data dir (original layout): vocab.txt, "
     "pretrain_tfrecords/, finetuning_data/, models/, study_results.* (default data/study)."),
    ("string", "samples_dir", None, "Where electra-samples keeps the fetched samples "
     "(default data/samples)."),
    ("list", "stages", ["data", "pretrain", "finetune", "tlm", "lstm", "report"],
     "Stages to run, in this order."),
    ("bool", "quick", False, "The whole study in minutes: sets a 1.5e13 budget, one seed, "
     "snapshots at 0.5, TLM at 0.25 of the budget, one finetuning epoch on 30 % of each "
     "training set at length 64; outputs to <output_dir>_quick."),
    ("bool", "progress", True, "Show progress bars."),
    ("string", "hparams", "{}", "JSON object of StudyConfig fields; a field also given as a "
     "flag must agree."),
    ("list", "corpora", None, "Sample corpora to pretrain on (default wiki_leads,enwiki_dump,"
     "shakespeare,news: all the sample prose)."),
    ("list", "objectives", None, "Pretrained rows: bert, electra, ale (default all three)."),
    ("string", "model_size", None, "debug, tiny, small, base or large (default tiny)."),
    ("float", "flop_budget", None, "Pretraining FLOPs of every objective (default 8.7e13)."),
    ("integer", "train_batch_size", None, "Pretraining batch size (default 32)."),
    ("float", "learning_rate", None, "Pretraining peak learning rate, LAMB (default 5e-3)."),
    ("float", "warmup_fraction", None, "Warmup as a fraction of each run's steps "
     "(default 0.1)."),
    ("string", "mixed_precision", None, "'' (float32), bf16 (default) or fp16."),
    ("string", "pretrain_hparams", None, "JSON of other PretrainingConfig fields."),
    ("list", "checkpoint_fractions", None, "Where the FLOPs plot's points are: encoder "
     "snapshots at these fractions of each run (default 0.25,0.5,0.75,1)."),
    ("list", "tasks", None, "Finetuning tasks (default sst2_mr,stsb_mr,wiki_topics,pos_wsj,"
     "pos_wsj-crf; also sst5_mr)."),
    ("list", "curve_tasks", None, "Tasks the snapshots are finetuned on (default sst2_mr)."),
    ("integer", "num_trials", None, "Finetuning seeds per cell (default 3)."),
    ("integer", "curve_trials", None, "Seeds per plotted point (default 1)."),
    ("bool", "scratch", None, "Add the no-pretraining control (default true)."),
    ("string", "finetune_hparams", None, "JSON of FinetuningConfig fields for every "
     "finetuning run (default the paper's small recipe, 2 epochs)."),
    ("string", "tlm_task", None, "Task of the TLM row; '' for none (default sst2_mr)."),
    ("float", "tlm_budget_fraction", None, "TLM's stage-1 FLOPs as a fraction of "
     "--flop_budget (default 0.5)."),
    ("string", "tlm_hparams", None, "JSON of TlmConfig fields for the TLM row."),
    ("string", "lstm_model", None, "BiLSTM row (LSTM-<layers>-<units>); '' for none "
     "(default LSTM-2-256)."),
    ("string", "lstm_hparams", None, "JSON of BaselinesConfig fields for the BiLSTM row."),
    ("integer", "num_processes", None, "Worker processes building the TFRecords (default "
     "2)."),
    ("integer", "seed", None, "Base seed (default 0)."),
]

# --quick: the same pipeline in minutes (about 10 on 2 cores).
QUICK = {"flop_budget": 1.5e13, "num_trials": 1, "checkpoint_fractions": [0.5, 1.0],
         "tlm_budget_fraction": 0.25,
         "finetune_hparams": {"learning_rate": 3e-4, "weight_decay_rate": 0.0,
                              "num_train_epochs": 1.0, "max_seq_length": 64,
                              "train_fraction": 0.3}}


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_flags(FLAG_TABLE, flag_values)


def build_config(flag_values: flags.FlagValues = FLAGS):
    """StudyConfig from parsed flags and --hparams; --quick then sets QUICK's fields."""
    from electra_tf.study.config import StudyConfig

    config = cli.config_from_flags(
        StudyConfig, flag_values,
        json_flags=("pretrain_hparams", "finetune_hparams", "tlm_hparams", "lstm_hparams"),
        list_flags=("corpora", "objectives", "checkpoint_fractions", "tasks", "curve_tasks"))
    if flag_values.quick:  # over the flagfile's values: the same study, minutes-sized
        config = dataclasses.replace(
            config, output_dir=f"{config.output_dir.rstrip('/')}_quick", **QUICK)
    return config


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts
    from electra_tf.study.report import markdown_table
    from electra_tf.study.runner import run_study

    results = run_study(config, FLAGS.stages, progress=FLAGS.progress)
    base = config.results_path.removesuffix(".json")
    return (f"dev scores ×100 at each run's best-dev epoch, mean ± std over "
            f"{config.num_trials} seed(s)\n{markdown_table(results)}\n"
            f"results: {base}.json, {base}.md, {base}.png")


def main():
    define_flags()
    app.run(cli.run_main("run_study", run))


if __name__ == "__main__":
    main()
