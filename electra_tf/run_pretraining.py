"""run_pretraining: pretrain BERT, ELECTRA or ALE, for a number of steps or a FLOP budget.

Examples::

  electra-pretrain --flagfile=flags/pretrain/electra_small.flags \\
      --data_dir=data --model_name=electra_small
  electra-pretrain --data_dir=data --model_name=ale_tiny --objective=ale \\
      --model_size=tiny --flop_budget=2e15 --train_batch_size=32
  # the original's interface: one JSON of PretrainingConfig fields
  electra-pretrain --data_dir=data --model_name=electra_small \\
      --hparams='{"num_train_steps": 1000, "train_batch_size": 128}'
  # the original's do_eval: score a run's newest checkpoint on held-out TFRecords
  electra-pretrain --flagfile=flags/pretrain/electra_small.flags --data_dir=data \\
      --model_name=electra_small --nodo_train --do_eval --eval_tfrecords='heldout/*'

Re-running an interrupted command resumes from the newest checkpoint in
``<data_dir>/models/<model_name>/``.
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli
from electra_tf.pretraining.config import PretrainingConfig

FLAGS = flags.FLAGS

# (type, name, default, help) of the flags beside PretrainingConfig's fields, whose flags
# come from the config (cli.define_config_flags).
COMMAND_FLAGS = [
    *cli.STRATEGY_FLAGS,
    ("bool", "progress", True, "Show a progress bar with ETA."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_config_flags(PretrainingConfig, flag_values, COMMAND_FLAGS,
                                   required=("data_dir", "model_name"))


def build_config(flag_values: flags.FlagValues = FLAGS) -> PretrainingConfig:
    """PretrainingConfig from parsed flags and --hparams (a field given both ways must
    agree)."""
    return cli.config_from_flags(PretrainingConfig, flag_values)


def run() -> str:
    """Build the config and the strategy, pretrain; returns the closing summary line."""
    config = build_config()  # flag errors before TensorFlow starts devices
    from electra_tf.distribute import make_strategy
    from electra_tf.pretraining.trainer import pretrain

    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    summary = pretrain(config, strategy, progress=FLAGS.progress)
    budget = (f" of the {config.flop_budget:.3g} budget" if config.flop_budget else "")
    resumed = (f", resumed at step {summary['resumed_from_step']}"
               if summary["resumed_from_step"] else "")
    line = (f"{config.objective}-{config.model_size} '{config.model_name}': step "
            f"{summary['step']}/{summary['train_steps']}{resumed}, {summary['flops']:.4g} "
            f"FLOPs{budget}")
    if config.do_train:
        line += f"; encoder exported to {config.model_dir}/encoder.keras"
    if "eval" in summary:
        shown = ("masked_lm_accuracy", "disc_accuracy", "disc_auc", "loss")
        scores = ", ".join(f"{k} {summary['eval'][k]:.4f}" for k in shown
                           if k in summary["eval"])
        line += (f"\neval at step {summary['eval']['step']}: {scores} "
                 f"({config.model_dir}/eval_results.json)")
    return line


def main():
    define_flags()
    cli.run_command("run_pretraining", run)


if __name__ == "__main__":
    main()
