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
from electra_tf.configs import MODEL_TYPES, SIZES, ModelConfig, RunConfig, get_config
from electra_tf.optimization import OPTIMIZERS

MIXED_PRECISION = {"": "float32", "fp32": "float32", "bf16": "mixed_bfloat16",
                   "fp16": "mixed_float16"}

# Settings a resumed run must share with the run that wrote the checkpoints: anything
# else would silently train a different model or break the FLOP accounting.
RESUME_KEYS = ("objective", "model_size", "model_hparam_overrides", "train_batch_size",
               "max_seq_length", "num_train_steps", "flop_budget", "optimizer")


@dataclasses.dataclass
class PretrainingConfig(RunConfig):
    """Everything a pretraining run reads. Defaults are ELECTRA-Small's in the original."""

    model_name: str = "electra_small"
    data_dir: str = "data"
    objective: str = "electra"  # bert | electra | ale
    model_size: str = "small"
    model_hparam_overrides: dict = dataclasses.field(default_factory=dict)
    seed: int = 0

    # optimization
    optimizer: str = "lamb"
    learning_rate: float = 5e-4
    lr_decay_power: float = 1.0
    weight_decay_rate: float = 0.01
    num_warmup_steps: int = 10000
    clip_norm: float = 1.0
    adam_epsilon: float = 1e-6

    # how long: exactly one of these
    num_train_steps: int | None = None
    flop_budget: float | None = None

    # data and masking
    train_batch_size: int = 128
    max_seq_length: int = 128
    mask_prob: float = 0.15
    vocab_file: str | None = None  # default <data_dir>/vocab.txt
    pretrain_tfrecords: str | None = None  # default <data_dir>/pretrain_tfrecords/*

    # objective
    gen_weight: float = 1.0
    disc_weight: float = 50.0
    temperature: float = 1.0
    disallow_correct: bool = False

    # bookkeeping and speed
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    # fractions of the run's steps at which the encoder is also exported, to
    # <model_dir>/snapshots/step-<N>/ (finetunable like the final export)
    encoder_snapshots: list[float] = dataclasses.field(default_factory=list)
    log_every_steps: int = 100
    steps_per_execution: int = 1
    jit_compile: bool = False
    mixed_precision: str = ""  # "" | bf16 | fp16

    def __post_init__(self):
        _one_of("objective", self.objective, MODEL_TYPES)
        _one_of("model_size", self.model_size, SIZES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if self.num_train_steps is not None and self.flop_budget is not None:
            raise ValueError("give either num_train_steps or flop_budget, not both (got "
                             f"num_train_steps={self.num_train_steps}, "
                             f"flop_budget={self.flop_budget:g})")
        if self.num_train_steps is None and self.flop_budget is None:
            raise ValueError("give num_train_steps or flop_budget: how long to train")
        if self.num_train_steps is not None and self.num_train_steps < 1:
            raise ValueError(f"num_train_steps={self.num_train_steps} must be positive")
        for name in ("train_batch_size", "max_seq_length", "save_checkpoints_steps",
                     "keep_checkpoint_max", "log_every_steps", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        self.encoder_snapshots = [float(f) for f in self.encoder_snapshots]  # flag strings
        if any(not 0.0 < f < 1.0 for f in self.encoder_snapshots):
            raise ValueError(f"encoder_snapshots={self.encoder_snapshots}: fractions of the run "
                             f"in (0, 1) (the finished run is always exported)")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob={self.mask_prob} must be in (0, 1)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive")

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

    def model_config(self, vocab_size: int | None = None) -> ModelConfig:
        """The model's config; `vocab_size` (the vocab file's) unless overridden."""
        overrides = dict(self.model_hparam_overrides)
        if vocab_size is not None:
            given = overrides.setdefault("vocab_size", vocab_size)
            if given < vocab_size:
                raise ValueError(f"model_hparam_overrides vocab_size={given} is smaller "
                                 f"than the vocab file's {vocab_size} tokens")
        config = get_config(self.objective, self.model_size, overrides)
        if config.max_position_embeddings < self.max_seq_length:
            raise ValueError(f"max_seq_length={self.max_seq_length} exceeds the model's "
                             f"max_position_embeddings={config.max_position_embeddings}")
        return config

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


def _one_of(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: "
                         f"{', '.join(repr(a) if a == '' else str(a) for a in allowed)}")
