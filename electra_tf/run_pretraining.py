"""run_pretraining: pretrain BERT, ELECTRA or ALE, for a number of steps or a FLOP budget.

Examples::

  electra-pretrain --flagfile=flags/pretrain/electra_small.flags \\
      --data_dir=data --model_name=electra_small
  electra-pretrain --data_dir=data --model_name=ale_tiny --objective=ale \\
      --model_size=tiny --flop_budget=2e15 --train_batch_size=32
  # the original's interface: one JSON of PretrainingConfig fields
  electra-pretrain --data_dir=data --model_name=electra_small \\
      --hparams='{"num_train_steps": 1000, "train_batch_size": 128}'

Re-running an interrupted command resumes from the newest checkpoint in
``<data_dir>/models/<model_name>/``.
"""

from __future__ import annotations

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS

# (type, name, default, help). The PretrainingConfig fields default to None: the config's
# default, or the --hparams value.
FLAG_TABLE = [
    ("string", "data_dir", None, "Holds vocab.txt, pretrain_tfrecords/ and models/ (the "
     "original's layout); may be gs://."),
    ("string", "model_name", None, "Run name: checkpoints, events and the exported encoder go "
     "to <data_dir>/models/<model_name>."),
    ("string", "hparams", "{}", "JSON object of PretrainingConfig fields, as the original's "
     "--hparams; a field also given as a flag must agree."),
    ("string", "strategy", "default", "default (CPU / one GPU), mirrored (all local GPUs), "
     "multi_worker (TF_CONFIG) or tpu."),
    ("string", "tpu", None, "TPU name or address for the cluster resolver; 'local' on Colab "
     "or a TPU VM. Implies --strategy=tpu."),
    ("bool", "progress", True, "Show a progress bar with ETA."),
    ("string", "objective", None, "bert, electra or ale (default electra)."),
    ("string", "model_size", None, "debug, tiny, small, base or large (default small)."),
    ("string", "model_hparam_overrides", None, "JSON object of model config overrides, e.g. "
     "'{\"generator_hidden_size\": 0.5}'."),
    ("integer", "seed", None, "Seed of initialization, masking and sampling (default 0)."),
    ("float", "flop_budget", None, "Train the whole steps that fit in this many FLOPs (e.g. "
     "2.3e17); excludes --num_train_steps."),
    ("integer", "num_train_steps", None, "Train this many steps; excludes --flop_budget."),
    ("integer", "train_batch_size", None, "Global batch size (default 128)."),
    ("integer", "max_seq_length", None, "Sequence length of the TFRecords (default 128)."),
    ("float", "learning_rate", None, "Peak learning rate (default 5e-4)."),
    ("integer", "num_warmup_steps", None, "Linear warmup steps (default 10000)."),
    ("float", "weight_decay_rate", None, "Decoupled weight decay (default 0.01)."),
    ("string", "optimizer", None, "lamb (default) or adamw (the original's)."),
    ("float", "mask_prob", None, "Fraction of tokens masked (default 0.15)."),
    ("float", "gen_weight", None, "Weight of the generator's MLM loss (default 1)."),
    ("float", "disc_weight", None, "Weight of the discriminator loss (default 50)."),
    ("float", "temperature", None, "Generator sampling temperature (default 1.0)."),
    ("integer", "save_checkpoints_steps", None, "Checkpoint interval (default 1000)."),
    ("integer", "keep_checkpoint_max", None, "Checkpoints kept (default 5)."),
    ("list", "encoder_snapshots", None, "Fractions of the run (e.g. 0.25,0.5,0.75) at which "
     "the encoder is also exported, to <model_dir>/snapshots/step-<N>/."),
    ("integer", "log_every_steps", None, "TensorBoard interval in steps (default 100)."),
    ("integer", "steps_per_execution", None, "Steps per compiled call, like the original's "
     "iterations_per_loop (default 1; raise it on TPUs)."),
    ("bool", "jit_compile", None, "Compile the train step with XLA (default off)."),
    ("string", "mixed_precision", None, "'' (float32, default), bf16 or fp16."),
    ("string", "vocab_file", None, "Default <data_dir>/vocab.txt."),
    ("string", "pretrain_tfrecords", None, "Glob of TFRecords; default "
     "<data_dir>/pretrain_tfrecords/pretrain_data.tfrecord*."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_flags(FLAG_TABLE, flag_values, required=("data_dir", "model_name"))


def build_config(flag_values: flags.FlagValues = FLAGS):
    """PretrainingConfig from parsed flags and --hparams (a field given both ways must
    agree)."""
    from electra_tf.pretraining.config import PretrainingConfig

    return cli.config_from_flags(PretrainingConfig, flag_values,
                                 json_flags=("model_hparam_overrides",),
                                 list_flags=("encoder_snapshots",))


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
    return (f"{config.objective}-{config.model_size} '{config.model_name}': step "
            f"{summary['step']}/{summary['train_steps']}{resumed}, {summary['flops']:.4g} "
            f"FLOPs{budget}; encoder exported to {config.model_dir}/encoder.keras")


def main():
    define_flags()
    app.run(cli.run_main("run_pretraining", run))


if __name__ == "__main__":
    main()
