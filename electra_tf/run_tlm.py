"""run_tlm: task-driven language modeling (Yao et al., "NLP From Scratch Without Large-Scale
Pretraining") from index to results, with its controls.

Examples::

  # everything: build the index if missing, retrieve, stage 1, stage 2, for TLM and both
  # controls, at the same FLOPs
  electra-tlm --flagfile=flags/tlm/samples.flags --data_dir=data/samples \\
      --runs=tlm,task_only,random
  # one step alone
  electra-tlm --flagfile=flags/tlm/samples.flags --data_dir=data/samples --stages=retrieve

Runs: ``tlm`` (the BM25 top-k of each training example), ``task_only`` (no external data),
``random`` (as many random corpus documents as TLM retrieved). Re-running an interrupted
command resumes where it stopped; finished steps are skipped.
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli
from electra_tf.tlm.config import TlmConfig

FLAGS = flags.FLAGS

# (type, name, default, help) of the flags beside TlmConfig's fields, whose flags come
# from the config (cli.define_config_flags).
COMMAND_FLAGS = [
    *cli.STRATEGY_FLAGS,
    ("bool", "progress", True, "Show progress bars with ETA."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_config_flags(TlmConfig, flag_values, COMMAND_FLAGS, required=("data_dir",))


def build_config(flag_values: flags.FlagValues = FLAGS) -> TlmConfig:
    """TlmConfig from parsed flags and --hparams."""
    return cli.config_from_flags(TlmConfig, flag_values)


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts devices
    from electra_tf.distribute import make_strategy
    from electra_tf.tlm.trainer import markdown_table, run_tlm

    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    results = run_tlm(config, strategy, progress=FLAGS.progress)
    return (f"{results['task']}: scores at each run's best-dev step\n"
            f"{markdown_table(results)}\nresults: {config.results_path}")


def main():
    define_flags()
    cli.run_command("run_tlm", run)


if __name__ == "__main__":
    main()
