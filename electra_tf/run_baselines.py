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

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS

# BaselinesConfig fields default to None: the config's default, or the --hparams value.
FLAG_TABLE = [
    ("string", "data_dir", None, "Holds finetuning_data/<task>/ (and vocab.txt)."),
    ("string", "model_name", None, "Outputs go to <data_dir>/models/<model_name> (default "
     "baselines)."),
    ("string", "task_name", None, "A sentence or sentence-pair classification task (default "
     "sst2_mr; sst5_mr is 5-class rating)."),
    ("list", "fractions", None, "Fractions of the training set, each in (0, 1] (default "
     "0.01,0.1,0.3,0.5,0.7,0.9)."),
    ("integer", "num_trials", None, "Seeds per cell: trial k uses seed+k for its subset, "
     "initialization and shuffling (default 1)."),
    ("integer", "seed", None, "Base seed (default 0)."),
    ("string", "hparams", "{}", "JSON object of BaselinesConfig fields; a field also given as "
     "a flag must agree."),
    ("bool", "progress", True, "Show progress bars and the sweep's ETA."),
    ("string", "init_checkpoint", None, "The pretrained encoder to finetune and take "
     "embeddings from: an electra-pretrain model dir or encoder.keras (default none: "
     "BiLSTMs only)."),
    ("string", "vocab_file", None, "Default: the encoder's vocab.txt, else "
     "<data_dir>/vocab.txt."),
    ("integer", "max_seq_length", None, "Tokens per example (default 128)."),
    ("integer", "train_batch_size", None, "Batch size of every model (default 32)."),
    ("integer", "eval_batch_size", None, "Prediction batch size (default 128)."),
    ("integer", "min_train_steps", None, "Every cell trains at least this many steps "
     "(default 100)."),
    ("list", "lstm_models", None, "BiLSTMs LSTM-<layers>-<units> (default LSTM-2-256)."),
    ("list", "lstm_embeddings", None, "scratch (trained 128-wide table) and/or pretrained "
     "(the encoder's token table, frozen, projected to --embedding_size) (default scratch)."),
    ("integer", "embedding_size", None, "BiLSTM input width (default 128, the paper's)."),
    ("float", "lstm_learning_rate", None, "Adam peak learning rate, linear decay (default "
     "1e-3)."),
    ("float", "lstm_num_train_epochs", None, "BiLSTM epochs (default 3)."),
    ("float", "lstm_dropout_rate", None, "Dropout before the output layer (default 0.1)."),
    ("string", "finetune", None, "JSON of FinetuningConfig fields for the pretrained "
     "encoder's cells (default {\"learning_rate\": 3e-4, \"num_train_epochs\": 3, "
     "\"weight_decay_rate\": 0})."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_flags(FLAG_TABLE, flag_values, required=("data_dir",))


def build_config(flag_values: flags.FlagValues = FLAGS):
    """BaselinesConfig from parsed flags and --hparams."""
    from electra_tf.baselines.config import BaselinesConfig

    return cli.config_from_flags(BaselinesConfig, flag_values, json_flags=("finetune",),
                                 list_flags=("fractions", "lstm_models", "lstm_embeddings"))


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts
    from electra_tf.baselines.sweep import markdown_table, run_sweep

    results = run_sweep(config, progress=FLAGS.progress)
    return (f"{results['task']}: {results['report_split']} {results['metric']} at each "
            f"cell's best-dev epoch\n{markdown_table(results)}\n"
            f"results: {config.results_path} (+ results.md, results.png)")


def main():
    define_flags()
    app.run(cli.run_main("run_baselines", run))


if __name__ == "__main__":
    main()
