"""One config object for a TLM run: index, retrieval, stage 1 (joint MLM + task loss) and
stage 2 (task loss only), with the reference implementation's names where it has them
(``external_ratio`` ρ1, ``mlm_weight`` ρ2, ``top_k``, ``mask_prob``)."""

from __future__ import annotations

import dataclasses

from electra_tf import files, flops
from electra_tf.configs import SIZES, ModelConfig, RunConfig, get_config
from electra_tf.optimization import OPTIMIZERS
from electra_tf.pretraining.config import MIXED_PRECISION, _one_of

RUNS = ("tlm", "task_only", "random")
STAGES = ("index", "retrieve", "stage1", "stage2")
RETRIEVERS = ("whoosh", "bm25s")
QUERIES = ("text", "rake")

# What a re-run may change: which runs and stages to do, and how to search (the retrieved
# set on disk is reused). Everything else must match the run that wrote the folder.
RERUN_KEYS = ("runs", "stages", "corpus", "index_procs", "search_procs", "eval_batch_size",
              "log_every_steps", "save_checkpoints_steps", "steps_per_execution", "jit_compile")


@dataclasses.dataclass
class TlmConfig(RunConfig):
    """Everything a TLM run reads. ``runs``: ``tlm`` (retrieved data), ``task_only`` (no
    external data: every stage-1 batch is a task batch) and ``random`` (as many random
    corpus documents as TLM retrieved); all three train the same steps, so the same FLOPs."""

    model_name: str = "tlm"
    data_dir: str = "data"
    task_name: str = "sst2_mr"
    runs: list[str] = dataclasses.field(default_factory=lambda: ["tlm"])
    stages: list[str] = dataclasses.field(default_factory=lambda: list(STAGES))
    seed: int = 0

    # the general corpus D and its index
    corpus: list[str] = dataclasses.field(default_factory=list)  # FORMAT:PATH, to build
    index_dir: str | None = None  # default <data_dir>/tlm_index
    passage_words: int = 0
    stem: bool = False
    index_procs: int = 1

    # retrieval
    retriever: str = "whoosh"
    top_k: int = 50
    query: str = "text"
    rake_top_n: int = 5
    search_procs: int = 1
    k1: float = 1.2
    b: float = 0.75

    # the model, trained from scratch
    model_size: str = "small"
    model_hparam_overrides: dict = dataclasses.field(default_factory=dict)
    vocab_file: str | None = None  # default <data_dir>/vocab.txt
    do_lower_case: bool = True
    max_seq_length: int = 128
    train_batch_size: int = 32
    eval_batch_size: int = 128
    optimizer: str = "adamw"
    weight_decay_rate: float = 0.01
    clip_norm: float = 1.0
    warmup_proportion: float = 0.06

    # speed: the hardware flagfiles set these (flags/hardware/)
    mixed_precision: str = ""  # "" | bf16 | fp16
    steps_per_execution: int = 1  # train steps per compiled call, both stages
    jit_compile: bool = False

    # stage 1: joint training; its length is num_train_steps or flop_budget
    external_ratio: int = 3
    mlm_weight: float = 20.0
    mask_prob: float = 0.15
    learning_rate: float = 5e-4
    num_train_steps: int | None = None
    flop_budget: float | None = None

    # stage 2: the task alone, the classification head re-initialized
    stage2_learning_rate: float = 1e-4
    stage2_num_train_epochs: float = 3.0
    eval_every_steps: int = 100

    # bookkeeping
    save_checkpoints_steps: int = 500
    log_every_steps: int = 50

    def __post_init__(self):
        for name in ("runs", "stages", "corpus"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v for v in value.split(",") if v])
        for run in self.runs:
            _one_of("run", run, RUNS)
        for stage in self.stages:
            _one_of("stage", stage, STAGES)
        if not self.runs:
            raise ValueError(f"runs is empty; allowed: {', '.join(RUNS)}")
        _one_of("retriever", self.retriever, RETRIEVERS)
        _one_of("query", self.query, QUERIES)
        _one_of("model_size", self.model_size, SIZES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if (self.num_train_steps is None) == (self.flop_budget is None):
            raise ValueError("give exactly one of num_train_steps and flop_budget (stage 1's "
                             f"length); got num_train_steps={self.num_train_steps}, "
                             f"flop_budget={self.flop_budget}")
        if self.flop_budget is not None and not self.flop_budget > 0:
            raise ValueError(f"flop_budget={self.flop_budget} must be positive")
        if self.num_train_steps is not None and self.num_train_steps < 1:
            raise ValueError(f"num_train_steps={self.num_train_steps} must be positive")
        for name in ("top_k", "rake_top_n", "search_procs", "index_procs", "train_batch_size",
                     "eval_batch_size", "eval_every_steps", "save_checkpoints_steps",
                     "log_every_steps", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.external_ratio < 0:
            raise ValueError(f"external_ratio={self.external_ratio} must be >= 0")
        if self.mlm_weight < 0:
            raise ValueError(f"mlm_weight={self.mlm_weight} must be >= 0")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob={self.mask_prob} must be in (0, 1)")
        if not 0.0 <= self.warmup_proportion < 1.0:
            raise ValueError(f"warmup_proportion={self.warmup_proportion} must be in [0, 1)")
        if self.stage2_num_train_epochs <= 0:
            raise ValueError(f"stage2_num_train_epochs={self.stage2_num_train_epochs} must be "
                             f"positive")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short (< 8)")

    # -- paths -------------------------------------------------------------------------

    @property
    def model_dir(self) -> str:
        return files.join(self.data_dir, "models", self.model_name)

    @property
    def index_path(self) -> str:
        return self.index_dir or files.join(self.data_dir, "tlm_index")

    @property
    def vocab_path(self) -> str:
        return self.vocab_file or files.join(self.data_dir, "vocab.txt")

    def retrieved_path(self, run: str) -> str:
        """The run's external data S as JSONL (none for task_only)."""
        return files.join(self.model_dir, "retrieved", f"{run}.jsonl")

    def stage_dir(self, run: str, stage: int) -> str:
        return files.join(self.model_dir, run, f"stage{stage}")

    @property
    def results_path(self) -> str:
        return files.join(self.model_dir, "results.json")

    @property
    def policy(self) -> str:
        return MIXED_PRECISION[self.mixed_precision]

    # -- the model and its FLOPs ---------------------------------------------------------

    def model_config(self, vocab_size: int) -> ModelConfig:
        """A BERT-style encoder of ``model_size`` (the paper's TLM models are BERTs)."""
        overrides = dict(self.model_hparam_overrides)
        overrides.setdefault("vocab_size", vocab_size)
        config = get_config("bert", self.model_size, overrides)
        if config.max_position_embeddings < self.max_seq_length:
            raise ValueError(f"max_seq_length={self.max_seq_length} exceeds the model's "
                             f"max_position_embeddings={config.max_position_embeddings}")
        return config

    def stage1_steps(self, model_config: ModelConfig) -> int:
        if self.num_train_steps is not None:
            return self.num_train_steps
        return flops.steps_for_budget(model_config, self.flop_budget, self.train_batch_size,
                                      self.max_seq_length)

    def stage1_flops_per_step(self, model_config: ModelConfig) -> float:
        """Encoder and MLM head at the masked fraction (the original's FLOP accounting,
        electra_tf.flops); the task head
        (two small dense layers on [CLS]) is left out, as the original leaves out its
        classifier."""
        return flops.train_flops_per_step(model_config, self.train_batch_size,
                                          self.max_seq_length)

    def stage2_flops_per_step(self, model_config: ModelConfig) -> float:
        """The encoder alone: stage 2 runs no MLM head."""
        return flops.train_flops_per_step(model_config, self.train_batch_size,
                                          self.max_seq_length, output_frac=0.0)
