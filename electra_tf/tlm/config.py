"""One config object for a TLM run: index, retrieval, stage 1 (joint MLM + task loss) and
stage 2 (task loss only), with the reference implementation's names where it has them
(``external_ratio`` ρ1, ``mlm_weight`` ρ2, ``top_k``, ``mask_prob``)."""

from __future__ import annotations

import dataclasses

from electra_tf import flops
from electra_tf.configs import (
    MIXED_PRECISION,
    OPTIMIZER_NAMES,
    SIZES,
    ModelConfig,
    RunConfig,
    get_config,
    join,
    one_of,
    setting,
)

RUNS = ("tlm", "task_only", "random")
STAGES = ("index", "retrieve", "stage1", "stage2")
RETRIEVERS = ("whoosh", "bm25s")
QUERIES = ("text", "rake")

# What a re-run may change: which runs and stages to do, and how to search (the retrieved
# set on disk is reused). Everything else must match the run that wrote the folder.


@dataclasses.dataclass
class TlmConfig(RunConfig):
    """Everything a TLM run reads. ``runs``: ``tlm`` (retrieved data), ``task_only`` (no
    external data: every stage-1 batch is a task batch) and ``random`` (as many random
    corpus documents as TLM retrieved); all three train the same steps, so the same FLOPs."""

    MAY_CHANGE = ("model_name", "data_dir", "runs", "stages", "corpus", "index_procs",
                  "search_procs", "eval_batch_size", "log_every_steps", "save_checkpoints_steps",
                  "steps_per_execution", "jit_compile")

    # Not even knowingly: another model, optimizer state or FLOPs per step.
    FIXED = ("task_name", "model_size", "model_hparam_overrides", "optimizer",
             "max_seq_length", "train_batch_size")

    model_name: str = setting("tlm", help="Outputs go to <data_dir>/models/<model_name>.")
    data_dir: str = setting("data", help="Holds vocab.txt, finetuning_data/<task>/ and "
                            "models/.")
    task_name: str = setting("sst2_mr", help="The task T: a classification task.")
    runs: list[str] = setting(default_factory=lambda: ["tlm"], help="Which of tlm, task_only "
                              "and random to run.")
    stages: list[str] = setting(default_factory=lambda: list(STAGES), help="Which of index, "
                                "retrieve, stage1, stage2 to do.")
    seed: int = setting(0, help="Seed of initialization, masking, shuffling and the random "
                        "control.")

    # the general corpus D and its index
    corpus: list[str] = setting(
        default_factory=list, flag="multi_string", help="FORMAT:PATH of the general corpus D "
        "(any corpus reader's format); needed only to build a missing index.")
    index_dir: str | None = setting(None, help="The Whoosh index.",
                                    shown_default="<data_dir>/tlm_index")
    passage_words: int = setting(0, help="Index passages of this many words (0: documents).")
    stem: bool = setting(False, help="Porter-stem index terms (the reference did not).")
    index_procs: int = setting(1, help="Whoosh writer processes.")

    # retrieval
    retriever: str = setting("whoosh", help="whoosh or bm25s (many times faster); both rank "
                             "by Lucene's BM25.")
    top_k: int = setting(50, help="Documents per query (the paper used 50 for high-resource "
                         "and up to 5000 for low-resource tasks).")
    query: str = setting("text", help="text (every term of the example) or rake (its top "
                         "RAKE key phrases, for long texts).")
    rake_top_n: int = setting(20, help="Key phrases per query with --query=rake (the "
                              "reference's 20).")
    search_procs: int = setting(1, help="Whoosh search processes.")
    k1: float = setting(1.2, help="BM25 k1 (Elasticsearch's default, as the reference).")
    b: float = setting(0.75, help="BM25 b (Elasticsearch's default, as the reference).")

    # the model, trained from scratch
    model_size: str = setting("small", help="BERT-style encoder size: debug, tiny, small, "
                              "base, large.")
    model_hparam_overrides: dict = setting(default_factory=dict, help="JSON model config "
                                           "overrides.")
    vocab_file: str | None = setting(None, help="WordPiece vocab.",
                                     shown_default="<data_dir>/vocab.txt")
    do_lower_case: bool = setting(True, help="Lower-case the text (for an uncased vocab).")
    max_seq_length: int = setting(128, help="Tokens per sequence, task and external.")
    train_batch_size: int = setting(32, help="Global batch size of both stages.")
    eval_batch_size: int = setting(128, help="Prediction batch size.")
    optimizer: str = setting("adamw_hf", help="adamw_hf (the reference's: transformers' "
                             "AdamW, bias-corrected), adamw (ELECTRA's AdamWeightDecay, no "
                             "bias correction) or lamb.")
    clip_norm: float = setting(0.0, help="Global gradient-norm clipping in both stages (0: "
                               "none, as the reference; ELECTRA clips at 1).")
    warmup_proportion: float | None = setting(
        None, help="Warm up over this fraction of each stage's steps (a stage's own "
        "--warmup_steps or --stage2_warmup_steps wins).",
        shown_default="the reference's shares: 1/15 of stage 1, 1/10 of stage 2")

    # speed: the hardware flagfiles set these (flags/hardware/)
    mixed_precision: str = setting("", help="'' (float32), bf16 or fp16.")
    steps_per_execution: int = setting(1, help="Train steps per compiled call in both stages, "
                                       "like the original's iterations_per_loop (raise it on "
                                       "TPUs and GPUs).")
    jit_compile: bool = setting(False, help="Compile the train steps with XLA.")

    # stage 1: joint training; its length is num_train_steps or flop_budget
    external_ratio: int = setting(3, help="rho1: external batches per task batch in stage 1 "
                                  "(0 = task batches only).")
    mlm_weight: float = setting(20.0, help="rho2: a task batch's loss is (rho2 * MLM + task) "
                                "/ (rho2 + 1).")
    mask_prob: float = setting(0.15, help="Masked fraction of tokens.")
    learning_rate: float = setting(5e-4, help="Stage 1 peak learning rate.")
    warmup_steps: int | None = setting(
        None, help="Stage 1 linear warmup steps, then linear decay to 0.",
        shown_default="1/15 of stage 1, the reference's 10,000 of 150,000 steps")
    weight_decay_rate: float = setting(0.01, help="Stage 1 decoupled weight decay (not on "
                                       "biases and LayerNorm).")
    num_train_steps: int | None = setting(None, help="Stage 1 steps (or --flop_budget).")
    flop_budget: float | None = setting(None, help="Stage 1 FLOPs: as many steps as fit (or "
                                        "--num_train_steps).")

    # stage 2: the task alone, the classification head re-initialized
    stage2_learning_rate: float = setting(1e-4, help="Stage 2 peak learning rate.")
    stage2_num_train_epochs: float = setting(3.0, help="Stage 2 epochs over T.")
    stage2_warmup_steps: int | None = setting(
        None, help="Stage 2 linear warmup steps, then linear decay to 0.",
        shown_default="1/10 of stage 2, the reference's 3,000 of 30,000 steps")
    stage2_weight_decay_rate: float = setting(0.0, help="Stage 2 decoupled weight decay (the "
                                              "reference's finetuning script: none).")
    eval_every_steps: int = setting(100, help="Stage 2 dev evaluation interval.")

    # bookkeeping
    save_checkpoints_steps: int = setting(500, help="Stage 1 checkpoint interval.")
    log_every_steps: int = setting(50, help="Stage 1 TensorBoard interval.")

    def __post_init__(self):
        for name in ("runs", "stages", "corpus"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v for v in value.split(",") if v])
        for run in self.runs:
            one_of("run", run, RUNS)
        for stage in self.stages:
            one_of("stage", stage, STAGES)
        if not self.runs:
            raise ValueError(f"runs is empty; allowed: {', '.join(RUNS)}")
        one_of("retriever", self.retriever, RETRIEVERS)
        one_of("query", self.query, QUERIES)
        one_of("model_size", self.model_size, SIZES)
        one_of("optimizer", self.optimizer, OPTIMIZER_NAMES)
        one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
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
        if self.warmup_proportion is not None and not 0.0 <= self.warmup_proportion < 1.0:
            raise ValueError(f"warmup_proportion={self.warmup_proportion} must be in [0, 1)")
        for name in ("warmup_steps", "stage2_warmup_steps", "weight_decay_rate",
                     "stage2_weight_decay_rate", "clip_norm"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.stage2_num_train_epochs <= 0:
            raise ValueError(f"stage2_num_train_epochs={self.stage2_num_train_epochs} must be "
                             f"positive")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short (< 8)")

    # -- paths -------------------------------------------------------------------------

    @property
    def model_dir(self) -> str:
        return join(self.data_dir, "models", self.model_name)

    @property
    def index_path(self) -> str:
        return self.index_dir or join(self.data_dir, "tlm_index")

    @property
    def vocab_path(self) -> str:
        return self.vocab_file or join(self.data_dir, "vocab.txt")

    def retrieved_path(self, run: str) -> str:
        """The run's external data S as JSONL (none for task_only)."""
        return join(self.model_dir, "retrieved", f"{run}.jsonl")

    def stage_dir(self, run: str, stage: int) -> str:
        return join(self.model_dir, run, f"stage{stage}")

    @property
    def results_path(self) -> str:
        return join(self.model_dir, "results.json")

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

    def warmup(self, stage: int, total_steps: int) -> int:
        """Warmup steps of `stage` (1 or 2) that runs `total_steps` steps: the stage's own
        setting, else --warmup_proportion of them, else the reference's share (its scripts
        warm up 10,000 of 150,000 steps in stage 1 and 3,000 of 30,000 in stage 2; fixed
        counts would outlast most shorter runs)."""
        steps = self.warmup_steps if stage == 1 else self.stage2_warmup_steps
        if steps is not None:
            return steps
        share = self.warmup_proportion
        if share is None:
            share = 1 / 15 if stage == 1 else 1 / 10
        return int(share * total_steps)

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
