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

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS

# FinetuningConfig fields default to None: the config's default, or the --hparams value.
FLAG_TABLE = [
    ("string", "data_dir", None, "Holds finetuning_data/<task>/ and models/ (the original's "
     "layout)."),
    ("string", "model_name", None, "The pretrained model's name: the encoder is read from, and "
     "results go to, <data_dir>/models/<model_name>."),
    ("list", "task_names", None, "Comma-separated tasks: cola, sst2, mrpc, stsb, qqp, mnli, "
     "qnli, rte, wnli, sst2_mr, sst5_mr, stsb_mr, race, race_middle, race_high, pos* (a tagging "
     "folder). Several train together, one head each."),
    ("string", "hparams", "{}", "JSON object of FinetuningConfig fields, as the original's "
     "--hparams; a field also given as a flag must agree."),
    ("string", "strategy", "default", "default (CPU / one GPU), mirrored (all local GPUs), "
     "multi_worker (TF_CONFIG) or tpu."),
    ("string", "tpu", None, "TPU name or 'local'. Implies --strategy=tpu."),
    ("bool", "progress", True, "Show Keras' progress bar with ETA."),
    ("string", "init_checkpoint", None, "Start from this encoder instead of the model dir's "
     "encoder.keras: a TF1 checkpoint, a Hugging Face folder, an electra-pretrain model dir "
     "or a .keras file."),
    ("bool", "from_scratch", None, "No pretrained encoder: a freshly initialized --model_size "
     "one (a baseline)."),
    ("string", "model_size", None, "Size of a --from_scratch encoder (default small)."),
    ("string", "model_hparam_overrides", None, "JSON model config overrides for "
     "--from_scratch."),
    ("string", "vocab_file", None, "Default: the encoder's vocab.txt, else <data_dir>/vocab.txt."),
    ("string", "optimizer", None, "adamw (the original's AdamWeightDecay, default) or lamb."),
    ("float", "learning_rate", None, "Peak learning rate (default 1e-4, the ELECTRA code's; its "
     "paper used 3e-4 for small models)."),
    ("float", "layerwise_lr_decay", None, "Layer-wise learning-rate decay (default 0.8; 1 = "
     "off)."),
    ("float", "weight_decay_rate", None, "Decoupled weight decay (default 0.01, the code's; "
     "its paper used 0)."),
    ("float", "num_train_epochs", None, "Epochs (default as the original: 10 when RTE or STS-B "
     "is among the tasks, else 3)."),
    ("float", "warmup_proportion", None, "Fraction of steps with linear warmup (default 0.1)."),
    ("integer", "train_batch_size", None, "Global batch size (default 32)."),
    ("integer", "eval_batch_size", None, "Prediction batch size (default 32)."),
    ("integer", "max_seq_length", None, "Tokens per sequence (default 128; race.flags uses "
     "512)."),
    ("bool", "double_unordered", None, "Train MRPC/STS-B pairs in both orders (default on)."),
    ("bool", "use_crf", None, "Tagging heads end in a linear-chain CRF (default off)."),
    ("bool", "use_tfds", None, "Read GLUE/RACE through tfds (prepared data) instead of files."),
    ("string", "tfds_data_dir", None, "tfds data_dir for --use_tfds."),
    ("float", "train_fraction", None, "Train on this fraction of each training set, in (0, "
     "1] (default 1): a seeded subset, nested across fractions for the same --seed."),
    ("string", "output_dir", None, "Where the run's folders go (default <data_dir>/models/"
     "<model_name>, beside the pretrained encoder)."),
    ("bool", "score_test", None, "Also score each task's labelled test split (its own labels "
     "or a test_labels.tsv beside it) at the best-dev epoch (default off)."),
    ("integer", "num_trials", None, "Runs with seeds seed, seed+1, ...; results report each "
     "and the median (default 1)."),
    ("integer", "seed", None, "Seed of initialization, dropout and shuffling (default 0)."),
    ("bool", "do_train", None, "Train (default on)."),
    ("bool", "do_eval", None, "Score the dev sets after each epoch (default on)."),
    ("bool", "write_test_outputs", None, "Write test-set predictions (GLUE submission files) "
     "to <model dir>/test_predictions (default off)."),
    ("string", "mixed_precision", None, "'' (float32, default), bf16 or fp16."),
    ("integer", "steps_per_execution", None, "Train steps per compiled call, like the "
     "original's iterations_per_loop (default 1; raise it on TPUs and GPUs). The dev sets "
     "are scored at the first call boundary at or past each epoch's end."),
    ("bool", "jit_compile", None, "Compile the train step with XLA (default off)."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_flags(FLAG_TABLE, flag_values,
                            required=("data_dir", "model_name"))


def build_config(flag_values: flags.FlagValues = FLAGS):
    """FinetuningConfig from parsed flags and --hparams."""
    from electra_tf.finetuning.config import FinetuningConfig

    return cli.config_from_flags(FinetuningConfig, flag_values,
                                 json_flags=("model_hparam_overrides",),
                                 list_flags=("task_names",))


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
    app.run(cli.run_main("run_finetuning", run))


# ----------------------------------------------------------------------------- scoring

SCORE_FLAGS = [
    ("string", "task", None, "The task whose scorer to use (cola, sst2, mrpc, stsb, qqp, mnli, "
     "mnli-mm, qnli, rte, wnli, or a sample task)."),
    ("string", "predictions", None, "index<TAB>prediction file (a GLUE submission file)."),
    ("string", "labels", None, "Labelled TSV: the task's dev layout, or index<TAB>label."),
]


def score_main():
    """electra-score-predictions: score a predictions file against a labelled TSV."""
    cli.define_flags(SCORE_FLAGS, FLAGS, required=("task", "predictions", "labels"))

    def run_scoring() -> str:
        from electra_tf.finetuning.scorers import evaluate_predictions

        metrics = evaluate_predictions(FLAGS.task, FLAGS.predictions, FLAGS.labels)
        return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())

    app.run(cli.run_main("score_predictions", run_scoring))


if __name__ == "__main__":
    main()
