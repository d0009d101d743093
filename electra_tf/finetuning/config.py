"""One config object for a finetuning run, like the original ``configure_finetuning.py``.

Field names follow the original (``task_names``, ``learning_rate``, ``layerwise_lr_decay``,
``num_train_epochs``, ``warmup_proportion``, ``train_batch_size``, ``max_seq_length``,
``double_unordered``, ``num_trials``, ``write_test_outputs``, ...), so ``--hparams`` JSON
written for it mostly carries over; its TPU and caching keys (``use_tpu``,
``use_tfrecords_if_existing``, ...) have flags or no counterpart here and are refused.
Defaults are the ELECTRA code's.
"""

from __future__ import annotations

import dataclasses

from electra_tf import files
from electra_tf.configs import SIZES, RunConfig
from electra_tf.optimization import OPTIMIZERS
from electra_tf.pretraining.config import MIXED_PRECISION, _one_of

# What a re-run of a run (a resume, more trials, test outputs) may change; every other
# setting must match the run that wrote the folder.
RERUN_KEYS = ("do_eval", "do_train", "write_test_outputs", "score_test", "eval_batch_size",
              "num_trials", "output_dir", "steps_per_execution", "jit_compile")


@dataclasses.dataclass
class FinetuningConfig(RunConfig):
    """Everything a finetuning run reads."""

    model_name: str = "electra_small"
    data_dir: str = "data"
    task_names: list[str] = dataclasses.field(default_factory=lambda: ["sst2"])

    # where the encoder comes from: init_checkpoint (a TF1 checkpoint or a Hugging Face
    # folder), else <data_dir>/models/<model_name>/encoder.keras, else (from_scratch) a
    # fresh model_size encoder
    init_checkpoint: str = ""
    from_scratch: bool = False
    model_size: str = "small"
    model_hparam_overrides: dict = dataclasses.field(default_factory=dict)
    vocab_file: str | None = None  # default: the model dir's vocab.txt, else the data dir's
    do_lower_case: bool = True

    # optimization: the ELECTRA code's defaults (its paper used lr 3e-4 and weight decay 0
    # for small models: flags/finetune/glue_small_paper.flags)
    optimizer: str = "adamw"  # adamw (the original's) | lamb
    learning_rate: float = 1e-4
    layerwise_lr_decay: float = 0.8
    weight_decay_rate: float = 0.01
    num_train_epochs: float | None = None  # None: 10 with RTE or STS-B among the tasks, else 3
    warmup_proportion: float = 0.1
    train_batch_size: int = 32
    eval_batch_size: int = 32
    max_seq_length: int = 128
    dropout_rate: float = 0.1
    clip_norm: float = 1.0

    # tasks
    double_unordered: bool = True
    use_crf: bool = False
    use_tfds: bool = False
    tfds_data_dir: str | None = None

    # training on part of the training set: round(train_fraction * n) examples, a prefix
    # of one permutation seeded by `seed` (nested: a smaller fraction's examples lie in
    # every larger one's; the same for every trial)
    train_fraction: float = 1.0

    # runs and outputs
    output_dir: str = ""  # default <data_dir>/models/<model_name>
    score_test: bool = False  # also score labelled test splits at the best-dev epoch
    num_trials: int = 1
    seed: int = 0
    do_train: bool = True
    do_eval: bool = True
    write_test_outputs: bool = False

    # speed: the hardware flagfiles set these (flags/hardware/)
    mixed_precision: str = ""  # "" | bf16 | fp16
    # train steps per compiled call, as pretraining's; an execution never runs past an
    # epoch's end by more than its own length, and the last one is cut to end the run
    steps_per_execution: int = 1
    jit_compile: bool = False

    def __post_init__(self):
        if isinstance(self.task_names, str):
            self.task_names = [t for t in self.task_names.split(",") if t]
        if not self.task_names:
            raise ValueError("task_names is empty: name at least one task")
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"task_names lists a task twice: {self.task_names}")
        _one_of("model_size", self.model_size, SIZES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        for name in ("train_batch_size", "eval_batch_size", "max_seq_length", "num_trials",
                     "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.num_train_epochs is not None and self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be positive")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction={self.train_fraction} must be in (0, 1]")
        if not 0.0 <= self.warmup_proportion < 1.0:
            raise ValueError(f"warmup_proportion={self.warmup_proportion} must be in [0, 1)")
        if not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ValueError(f"layerwise_lr_decay={self.layerwise_lr_decay} must be in (0, 1]")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short (< 8)")

    @property
    def epochs(self) -> float:
        """num_train_epochs, or the original's choice: 10 when RTE or STS-B is trained, else 3."""
        if self.num_train_epochs is not None:
            return self.num_train_epochs
        return 10.0 if {"rte", "stsb", "sts", "sts-b"} & {t.lower() for t in self.task_names} \
            else 3.0

    @property
    def model_dir(self) -> str:
        """Where the run's folders go: --output_dir, else ``<data_dir>/models/<model_name>``
        (which also holds the encoder electra-pretrain exported)."""
        return self.output_dir or self.pretrained_dir

    @property
    def pretrained_dir(self) -> str:
        """``<data_dir>/models/<model_name>``: where electra-pretrain exported the encoder."""
        return files.join(self.data_dir, "models", self.model_name)

    @property
    def run_name(self) -> str:
        """``sst2``, ``mrpc+rte+stsb`` or ``pos-crf``: names the run's folders."""
        return "+".join(self.task_names) + ("-crf" if self.use_crf else "")

    @property
    def run_dir(self) -> str:
        """Checkpoints, events, tag sets: ``<model_dir>/finetuning/<run_name>``."""
        return files.join(self.model_dir, "finetuning", self.run_name)

    @property
    def cache_dir(self) -> str:
        """Featurized splits: ``<model_dir>/finetuning_tfrecords`` (the original's place)."""
        return files.join(self.model_dir, "finetuning_tfrecords")

    @property
    def results_path(self) -> str:
        return files.join(self.model_dir, "results", f"{self.run_name}.json")

    @property
    def test_predictions_dir(self) -> str:
        return files.join(self.model_dir, "test_predictions")

    @property
    def policy(self) -> str:
        return MIXED_PRECISION[self.mixed_precision]
