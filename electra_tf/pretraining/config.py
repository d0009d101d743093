"""One config object for a pretraining run, like the original ``configure_pretraining.py``.

Field names follow the original (``learning_rate``, ``num_train_steps``,
``train_batch_size``, ``mask_prob``, ``gen_weight``, ``disc_weight``,
``model_hparam_overrides``, ...) so its ``--hparams`` JSON keeps working; the additions are
``objective`` (bert / electra / ale), ``flop_budget``, ``optimizer`` and the performance
switches. Paths default to the original's data-dir layout.
"""

from __future__ import annotations

import dataclasses
import os

from electra_tf import flops
from electra_tf.configs import (
    MIXED_PRECISION,
    MODEL_TYPES,
    OPTIMIZER_NAMES,
    SIZES,
    ModelConfig,
    RunConfig,
    get_config,
    one_of,
    setting,
)

SETTINGS_FILE = "pretraining_config.json"  # a run's settings, in its model dir
MODEL_CONFIG_FILE = "model_config.json"  # a run's architecture, in its model dir


@dataclasses.dataclass
class PretrainingConfig(RunConfig):
    """Everything a pretraining run reads. Defaults are ELECTRA-Small's in the original."""

    # A resumed run may change these without a word: where the run and its data live,
    # how often it saves and logs, how fast it runs, and what else it does (evaluate,
    # snapshot). Any other change is refused unless named in --change_settings.
    MAY_CHANGE = ("model_name", "data_dir", "save_checkpoints_steps", "keep_checkpoint_max",
                  "encoder_snapshots", "log_every_steps", "steps_per_execution",
                  "jit_compile", "do_train", "do_eval", "num_eval_steps", "eval_tfrecords")
    # Not even knowingly: another model, optimizer state or FLOPs per step.
    FIXED = ("objective", "model_size", "model_hparam_overrides", "optimizer",
             "train_batch_size", "max_seq_length")
    # Runs saved before the setting existed masked BERT's inputs 80/10/10.
    ADDED_DEFAULTS = {"bert_random_tokens": lambda saved: saved.get("objective") == "bert"}

    model_name: str = setting("electra_small", help="Run name: checkpoints, events and the "
                              "exported encoder go to <data_dir>/models/<model_name>.")
    data_dir: str = setting("data", help="Holds vocab.txt, pretrain_tfrecords/ and models/ (the "
                            "original's layout); may be gs://.")
    objective: str = setting("electra", help="bert, electra or ale.")
    model_size: str = setting("small", help="debug, tiny, small, base or large.")
    model_hparam_overrides: dict = setting(
        default_factory=dict, help="JSON object of model config overrides, e.g. "
        "'{\"generator_hidden_size\": 0.5}'.")
    seed: int = setting(0, help="Seed of initialization, masking and sampling.")
    init_checkpoint: str | None = setting(
        None, help="Continue pretraining from this model: an original TF1 checkpoint "
        "(prefix or folder; the released ELECTRA/BERT ones), a Hugging Face export "
        "(discriminator/ + generator/, or one BertForMaskedLM folder), or a run of this "
        "package (its model dir, a model.ckpt-N, or pretrainer.keras). The architecture is "
        "read from it (--model_size is then unused; model_hparam_overrides still apply); "
        "the optimizer starts afresh at step 0.")
    init_skip_mismatched: bool = setting(
        False, help="With --init_checkpoint: variables it lacks or holds in another shape "
        "(a new vocab: the embeddings and the MLM output bias) keep their fresh "
        "initialization instead of stopping the run.")

    # optimization
    optimizer: str = setting("lamb", help="lamb, adamw (the original's AdamWeightDecay) or "
                             "adamw_hf (transformers' bias-corrected AdamW).")
    learning_rate: float = setting(5e-4, help="Peak learning rate.")
    lr_decay_power: float = setting(1.0, help="Power of the decay to 0 after the warmup (1: "
                                    "linear, the original's).")
    weight_decay_rate: float = setting(0.01, help="Decoupled weight decay.")
    num_warmup_steps: int = setting(10000, help="Linear warmup steps.")
    clip_norm: float = setting(1.0, help="Global gradient-norm clipping (0: none).")
    adam_epsilon: float = setting(1e-6, help="The optimizer's epsilon.")

    # how long: exactly one of these
    num_train_steps: int | None = setting(None, help="Train this many steps; excludes "
                                          "--flop_budget.")
    flop_budget: float | None = setting(None, help="Train the whole steps that fit in this many "
                                        "FLOPs (e.g. 2.3e17); excludes --num_train_steps.")

    # data and masking
    train_batch_size: int = setting(128, help="Global batch size.")
    max_seq_length: int = setting(128, help="Sequence length of the TFRecords.")
    mask_prob: float = setting(0.15, help="Fraction of tokens masked.")
    bert_random_tokens: bool = setting(
        False, help="objective=bert only: of the masked tokens, 80% become [MASK], 10% a "
        "random token and 10% stay, as in \"BERT: Pre-training of Deep Bidirectional "
        "Transformers for Language Understanding\" (Devlin et al.), instead of the ELECTRA "
        "code's 85% [MASK] / 15% kept, which it uses for its BERT baseline too.")
    vocab_file: str | None = setting(None, help="WordPiece vocab.",
                                     shown_default="<data_dir>/vocab.txt")
    pretrain_tfrecords: str | None = setting(
        None, help="Glob of TFRecords.",
        shown_default="<data_dir>/pretrain_tfrecords/pretrain_data.tfrecord*")

    # objective
    gen_weight: float = setting(1.0, help="Weight of the generator's MLM loss.")
    disc_weight: float = setting(50.0, help="Weight of the discriminator loss.")
    temperature: float = setting(1.0, help="Generator sampling temperature.")
    disallow_correct: bool = setting(False, help="The generator never samples the original "
                                     "token (the original's option).")

    # bookkeeping and speed
    save_checkpoints_steps: int = setting(1000, help="Checkpoint interval.")
    keep_checkpoint_max: int = setting(5, help="Checkpoints kept.")
    encoder_snapshots: list[float] = setting(
        default_factory=list, help="Fractions of the run (e.g. 0.25,0.5,0.75) at which the "
        "encoder is also exported, to <model_dir>/snapshots/step-<N>/ (finetunable like the "
        "final export).")
    log_every_steps: int = setting(100, help="TensorBoard interval in steps.")
    steps_per_execution: int = setting(1, help="Steps per compiled call, like the original's "
                                       "iterations_per_loop (raise it on TPUs).")
    jit_compile: bool = setting(False, help="Compile the train step with XLA.")
    mixed_precision: str = setting("", help="'' (float32), bf16 or fp16.")

    # what to do, as the original's do_train / do_eval
    do_train: bool = setting(True, help="Train (or resume) the run.")
    do_eval: bool = setting(False, help="Then score the run's newest checkpoint on "
                            "--eval_tfrecords: the generator's and discriminator's metrics, "
                            "to <model_dir>/eval/ (TensorBoard) and eval_results.json. With "
                            "--nodo_train, score an existing run.")
    num_eval_steps: int = setting(100, help="Batches of train_batch_size that --do_eval "
                                  "scores (fewer when the TFRecords hold fewer).")
    eval_tfrecords: str | None = setting(
        None, help="Glob of the TFRecords --do_eval scores, e.g. held-out shards.",
        shown_default="--pretrain_tfrecords, as the original")

    def __post_init__(self):
        one_of("objective", self.objective, MODEL_TYPES)
        one_of("model_size", self.model_size, SIZES)
        one_of("optimizer", self.optimizer, OPTIMIZER_NAMES)
        one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if self.num_train_steps is not None and self.flop_budget is not None:
            raise ValueError("give either num_train_steps or flop_budget, not both (got "
                             f"num_train_steps={self.num_train_steps}, "
                             f"flop_budget={self.flop_budget:g})")
        if self.num_train_steps is None and self.flop_budget is None:
            raise ValueError("give num_train_steps or flop_budget: how long to train")
        if self.num_train_steps is not None and self.num_train_steps < 1:
            raise ValueError(f"num_train_steps={self.num_train_steps} must be positive")
        for name in ("train_batch_size", "max_seq_length", "save_checkpoints_steps",
                     "keep_checkpoint_max", "log_every_steps", "steps_per_execution",
                     "num_eval_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        self.encoder_snapshots = [float(f) for f in self.encoder_snapshots]  # flag strings
        if any(not 0.0 < f < 1.0 for f in self.encoder_snapshots):
            raise ValueError(f"encoder_snapshots={self.encoder_snapshots}: fractions of the run "
                             f"in (0, 1) (the finished run is always exported)")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob={self.mask_prob} must be in (0, 1)")
        if self.bert_random_tokens and self.objective != "bert":
            raise ValueError(f"bert_random_tokens is for objective=bert, not "
                             f"objective={self.objective}: ELECTRA's generator fills the "
                             f"masked positions, which are 85% [MASK] / 15% kept as in the "
                             f"original")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive")
        if not (self.do_train or self.do_eval):
            raise ValueError("nothing to do: give do_train, do_eval or both")

    # -- derived -----------------------------------------------------------------------

    @property
    def model_dir(self) -> str:
        return os.path.join(self.data_dir, "models", self.model_name)

    @property
    def vocab_path(self) -> str:
        return self.vocab_file or os.path.join(self.data_dir, "vocab.txt")

    @property
    def tfrecords_pattern(self) -> str:
        return self.pretrain_tfrecords or os.path.join(self.data_dir, "pretrain_tfrecords",
                                                       "pretrain_data.tfrecord*")

    @property
    def policy(self) -> str:
        return MIXED_PRECISION[self.mixed_precision]

    def model_config(self, vocab_size: int | None = None,
                     base: ModelConfig | None = None) -> ModelConfig:
        """The model's config: the size table's entry, or `base` (the model
        ``init_checkpoint`` holds), with ``model_hparam_overrides`` on top. Its vocab
        size is `vocab_size` (the vocab file's; `base`'s when larger) unless overridden."""
        overrides = dict(self.model_hparam_overrides)
        if vocab_size is not None:
            given = overrides.setdefault("vocab_size", max(vocab_size, base.vocab_size)
                                         if base is not None else vocab_size)
            if given < vocab_size:
                raise ValueError(f"model_hparam_overrides vocab_size={given} is smaller "
                                 f"than the vocab file's {vocab_size} tokens")
        config = (base.replace(**overrides) if base is not None
                  else get_config(self.objective, self.model_size, overrides))
        if config.max_position_embeddings < self.max_seq_length:
            raise ValueError(f"max_seq_length={self.max_seq_length} exceeds the model's "
                             f"max_position_embeddings={config.max_position_embeddings}")
        return config

    @property
    def masking_style(self) -> str:
        """The :data:`electra_tf.masking.MASKING` style: the ELECTRA code's for every
        objective unless ``bert_random_tokens``."""
        return "bert" if self.bert_random_tokens else "electra"

    def train_steps(self, model_config: ModelConfig) -> int:
        """num_train_steps, or the whole steps that fit in flop_budget."""
        if self.num_train_steps is not None:
            return self.num_train_steps
        return flops.steps_for_budget(model_config, self.flop_budget, self.train_batch_size,
                                      self.max_seq_length)

    def snapshot_steps(self, total_steps: int) -> list[int]:
        """The steps at which encoder_snapshots are exported (at least step 1)."""
        return sorted({max(1, round(f * total_steps)) for f in self.encoder_snapshots})

    def snapshot_dir(self, step: int) -> str:
        return os.path.join(self.model_dir, "snapshots", f"step-{step}")

    def flops_per_step(self, model_config: ModelConfig) -> float:
        return flops.train_flops_per_step(model_config, self.train_batch_size,
                                          self.max_seq_length)
