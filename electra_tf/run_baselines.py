"""run_baselines: "To Pretrain or Not to Pretrain" (Wang, Khabsa and Ma, 2020) on this
package's encoders: finetune a pretrained encoder and train BiLSTMs from scratch on nested
fractions of a task's training set; results JSON, markdown table and PNG plot.

Examples::

  electra-baselines --flagfile=flags/baselines/samples.flags --data_dir=data/samples \\
      --init_checkpoint=data/samples_data_dir/models/electra_tiny
  # BiLSTMs alone, two of them, three seeds
  electra-baselines --data_dir=data/samples --task_name=sst5_mr \\
      --lstm_models=LSTM-2-256,LSTM-4-256 --num_trials=3

Re-running an interrupted command resumes: finished cells are read back, the cell that
was running continues from its last epoch's checkpoint.
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli
from electra_tf.baselines.config import BaselinesConfig

FLAGS = flags.FLAGS

# (type, name, default, help) of the flags beside BaselinesConfig's fields, whose flags
# come from the config (cli.define_config_flags).
COMMAND_FLAGS = [
    ("bool", "progress", True, "Show progress bars and the sweep's ETA."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_config_flags(BaselinesConfig, flag_values, COMMAND_FLAGS,
                                   required=("data_dir",))


def build_config(flag_values: flags.FlagValues = FLAGS) -> BaselinesConfig:
    """BaselinesConfig from parsed flags and --hparams."""
    return cli.config_from_flags(BaselinesConfig, flag_values)


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts
    from electra_tf.baselines.sweep import markdown_table, run_sweep

    results = run_sweep(config, progress=FLAGS.progress)
    return (f"{results['task']}: {results['report_split']} {results['metric']} at each "
            f"cell's best-dev epoch\n{markdown_table(results)}\n"
            f"results: {config.results_path} (+ results.md, results.png)")


def main():
    define_flags()
    cli.run_command("run_baselines", run)


if __name__ == "__main__":
    main()
