"""run_finetuning: finetune an encoder on GLUE, RACE or POS tagging (one task or several),
score the dev sets, write test-set predictions.

Examples::

  electra-finetune --flagfile=flags/finetune/glue_small_paper.flags --data_dir=data \\
      --model_name=electra_small --task_names=rte
  electra-finetune --data_dir=data --model_name=electra_small --task_names=mrpc,rte,stsb
  electra-finetune --data_dir=data --model_name=electra_small --task_names=pos --use_crf
  # the original's interface: one JSON of FinetuningConfig fields
  electra-finetune --data_dir=data --model_name=electra_small \\
      --hparams='{"task_names": ["rte"], "num_train_epochs": 10}'
  # score a predictions file (e.g. a GLUE submission file) against labels
  electra-score-predictions --task=sst2 --predictions=SST-2.tsv --labels=dev.tsv

The encoder is ``<data_dir>/models/<model_name>/encoder.keras`` (what electra-pretrain
exports), or --init_checkpoint (a TF1 checkpoint or a Hugging Face folder), or a fresh
--model_size encoder with --from_scratch. Re-running an interrupted command resumes.
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli
from electra_tf.finetuning.config import FinetuningConfig

FLAGS = flags.FLAGS

# (type, name, default, help) of the flags beside FinetuningConfig's fields, whose flags
# come from the config (cli.define_config_flags).
COMMAND_FLAGS = [
    *cli.STRATEGY_FLAGS,
    ("bool", "progress", True, "Show a progress bar with ETA."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_config_flags(FinetuningConfig, flag_values, COMMAND_FLAGS,
                                   required=("data_dir", "model_name"))


def build_config(flag_values: flags.FlagValues = FLAGS) -> FinetuningConfig:
    """FinetuningConfig from parsed flags and --hparams."""
    return cli.config_from_flags(FinetuningConfig, flag_values)


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts devices
    from electra_tf.distribute import make_strategy
    from electra_tf.finetuning.trainer import finetune, markdown_table

    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    results = finetune(config, strategy, progress=FLAGS.progress)
    where = f"results: {config.results_path}"
    if config.write_test_outputs:
        where += f"; test predictions: {config.test_predictions_dir}"
    table = markdown_table(results) if config.do_eval else ""
    trials = len(results["trials"])
    head = f"{config.run_name}: dev scores, median over {trials} trial{'s' * (trials > 1)}"
    return f"{head}\n{table}\n{where}"


def main():
    define_flags()
    cli.run_command("run_finetuning", run)


# ----------------------------------------------------------------------------- scoring

SCORE_FLAGS = [
    ("string", "task", None, "The task whose scorer to use (cola, sst2, mrpc, stsb, qqp, mnli, "
     "mnli-mm, qnli, rte, wnli, or a sample task)."),
    ("string", "predictions", None, "index<TAB>prediction file (a GLUE submission file)."),
    ("string", "labels", None, "Labelled TSV: the task's dev layout, or index<TAB>label."),
]


def define_score_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define electra-score-predictions' flags on `flag_values`."""
    return cli.define_flags(SCORE_FLAGS, flag_values, required=("task", "predictions", "labels"))


def score_main():
    """electra-score-predictions: score a predictions file against a labelled TSV."""
    define_score_flags()

    def run_scoring() -> str:
        from electra_tf.tasks.scorers import evaluate_predictions

        metrics = evaluate_predictions(FLAGS.task, FLAGS.predictions, FLAGS.labels)
        return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())

    cli.run_command("score_predictions", run_scoring)


if __name__ == "__main__":
    main()
