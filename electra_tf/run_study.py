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

from absl import flags

from electra_tf import cli
from electra_tf.study.config import StudyConfig

FLAGS = flags.FLAGS

# (type, name, default, help) of the flags beside StudyConfig's fields, whose flags come
# from the config (cli.define_config_flags).
COMMAND_FLAGS = [
    ("list", "stages", ["data", "pretrain", "finetune", "tlm", "lstm", "report"],
     "Stages to run, in this order."),
    ("bool", "quick", False, "The whole study in minutes: sets a 1.5e13 budget, one seed, "
     "snapshots at 0.5, TLM at 0.25 of the budget, one finetuning epoch on 30 % of each "
     "training set at length 64; outputs to <output_dir>_quick."),
    ("bool", "progress", True, "Show progress bars."),
]

# --quick: the same pipeline in minutes (about 10 on 2 cores).
QUICK = {"flop_budget": 1.5e13, "num_trials": 1, "checkpoint_fractions": [0.5, 1.0],
         "tlm_budget_fraction": 0.25,
         "finetune_hparams": {"learning_rate": 3e-4, "weight_decay_rate": 0.0,
                              "num_train_epochs": 1.0, "max_seq_length": 64,
                              "train_fraction": 0.3}}


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_config_flags(StudyConfig, flag_values, COMMAND_FLAGS)


def build_config(flag_values: flags.FlagValues = FLAGS):
    """StudyConfig from parsed flags and --hparams; --quick then sets QUICK's fields."""
    config = cli.config_from_flags(StudyConfig, flag_values)
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
    cli.run_command("run_study", run)


if __name__ == "__main__":
    main()
