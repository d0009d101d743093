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

from electra_tf.configs import (
    MIXED_PRECISION,
    OPTIMIZER_NAMES,
    SIZES,
    RunConfig,
    join,
    one_of,
    setting,
)


def is_large(hidden_size: int, num_hidden_layers: int) -> bool:
    """Whether an encoder has the size table's "large" shape (hidden size 1024, 24
    layers): what the original's large-model finetuning defaults key on."""
    large = SIZES["large"]
    return (hidden_size, num_hidden_layers) == (large["hidden_size"],
                                                large["num_hidden_layers"])


@dataclasses.dataclass
class FinetuningConfig(RunConfig):
    """Everything a finetuning run reads."""

    # What a re-run of a run (a resume, more trials, test outputs, the folder moved) may
    # change; every other setting must match the run that wrote the folder.
    MAY_CHANGE = ("model_name", "data_dir", "do_eval", "do_train", "write_test_outputs",
                  "score_test", "eval_batch_size", "num_trials", "output_dir",
                  "steps_per_execution", "jit_compile")

    # Not even knowingly: another model (the checkpoints would not restore).
    FIXED = ("task_names", "from_scratch", "model_size", "model_hparam_overrides", "use_crf",
             "optimizer", "joint_prediction", "answerable_classifier",
             "answerable_uses_start_logits")

    # The QA settings came later; runs saved before had no QA task, so their values did
    # not matter: they compare as today's defaults.
    ADDED_DEFAULTS = {name: (lambda saved, value=value: value) for name, value in (
        ("max_query_length", 64), ("doc_stride", 128), ("n_best_size", 20),
        ("max_answer_length", 30), ("answerable_classifier", True),
        ("answerable_uses_start_logits", True), ("answerable_weight", 0.5),
        ("joint_prediction", True), ("beam_size", 20), ("qa_na_threshold", -2.75))}

    model_name: str = setting("electra_small", help="The pretrained model's name: the encoder is "
                              "read from, and results go to, <data_dir>/models/<model_name>.")
    data_dir: str = setting("data", help="Holds finetuning_data/<task>/ and models/ (the "
                            "original's layout).")
    task_names: list[str] = setting(
        default_factory=lambda: ["sst2"], help="Comma-separated tasks: cola, sst2, mrpc, "
        "stsb, qqp, mnli, qnli, rte, wnli, sst2_mr, sst5_mr, stsb_mr, race, race_middle, "
        "race_high, pos* (a tagging folder). Several train together, one head each.")

    # where the encoder comes from: init_checkpoint, else
    # <data_dir>/models/<model_name>/encoder.keras, else (from_scratch) a fresh one
    init_checkpoint: str = setting(
        "", shown_default="none", help="Start from this encoder instead of the model dir's "
        "encoder.keras: a TF1 checkpoint, a Hugging Face folder, an electra-pretrain model "
        "dir or a .keras file.")
    from_scratch: bool = setting(False, help="No pretrained encoder: a freshly initialized "
                                 "--model_size one (a baseline).")
    model_size: str = setting("small", help="Size of a --from_scratch encoder.")
    model_hparam_overrides: dict = setting(default_factory=dict, help="JSON model config "
                                           "overrides for --from_scratch.")
    vocab_file: str | None = setting(
        None, help="WordPiece vocab.",
        shown_default="the encoder's vocab.txt, else <data_dir>/vocab.txt")
    do_lower_case: bool = setting(True, help="Lower-case the text (for an uncased vocab).")

    # optimization: the ELECTRA code's defaults (its paper used lr 3e-4 and weight decay 0
    # for small models: flags/finetune/glue_small_paper.flags)
    optimizer: str = setting("adamw", help="adamw (the original's AdamWeightDecay), lamb, or "
                             "adamw_hf (transformers' bias-corrected AdamW).")
    learning_rate: float | None = setting(
        None, help="Peak learning rate (the ELECTRA code's; its paper used 3e-4 for small "
        "models).", shown_default="as the original: 5e-5 for a large encoder (hidden size 1024, "
        "24 layers, or --from_scratch --model_size=large), else 1e-4")
    layerwise_lr_decay: float | None = setting(
        None, help="Layer-wise learning-rate decay (1 = off).",
        shown_default="as the original: 0.9 for a large encoder, else 0.8")
    fix_layerwise_lr_decay: bool = setting(
        False, help="Put the top encoder layer one factor of the decay below the head (layer "
        "i of n: decay^(n-i), embeddings decay^(n+1)) instead of the original's two: its "
        "_get_layer_lrs placed the head two depths above the top layer (layer i: "
        "decay^(n+1-i), embeddings decay^(n+2)). The original's published GLUE numbers and "
        "its decays 0.8 and 0.9 were tuned with that off-by-one.")
    weight_decay_rate: float = setting(0.01, help="Decoupled weight decay (the code's; its "
                                       "paper used 0).")
    num_train_epochs: float | None = setting(
        None, help="Epochs.",
        shown_default="as the original: 10 when the only task is RTE or STS-B, else 3")
    warmup_proportion: float = setting(0.1, help="Fraction of steps with linear warmup.")
    train_batch_size: int = setting(32, help="Global batch size.")
    eval_batch_size: int = setting(32, help="Prediction batch size.")
    max_seq_length: int | None = setting(
        None, help="Tokens per sequence (race.flags uses 512).",
        shown_default="as the original: 512 when the only task is a QA one (its name holds "
        "squad or qa), 256 when it is chunk, else 128")
    dropout_rate: float = setting(0.1, help="Dropout before each task head.")
    clip_norm: float = setting(1.0, help="Global gradient-norm clipping (0: none).")
    mean_loss: bool = setting(
        False, help="Average the loss over the batch's examples (over its words with a "
        "softmax tagging head) instead of summing it as the original. Adam and LAMB ignore a "
        "constant loss scale except through their epsilon, so the two differ mainly through "
        "clipping: the sum's gradient is as many times larger as the batch has examples "
        "(words), so --clip_norm cuts it far more often; with the mean, how often clipping "
        "acts does not depend on the batch size.")

    # question answering: the original's settings
    max_query_length: int = setting(64, help="QA: WordPieces of the question kept.")
    doc_stride: int = setting(128, help="QA: WordPieces between the starts of a context's "
                              "windows.")
    n_best_size: int = setting(20, help="QA: spans kept per question when decoding.")
    max_answer_length: int = setting(30, help="QA: the longest answer, in WordPieces.")
    joint_prediction: bool = setting(True, help="QA: predict the end given the start (a "
                                     "512-unit layer over [start; token], decoded with a "
                                     "beam) instead of independently.")
    beam_size: int = setting(20, help="QA: starts, and ends per start, kept by joint "
                             "prediction.")
    answerable_classifier: bool = setting(
        True, help="QA: an answerability logit (SQuAD 2.0's null score; trained on every QA "
        "task, as the original).")
    answerable_uses_start_logits: bool = setting(
        True, help="QA: the answerability logit also sees the start-probability-weighted "
        "token vector, through a 512-unit layer.")
    answerable_weight: float = setting(0.5, help="QA: weight of the answerability loss.")
    qa_na_threshold: float = setting(-2.75, help="SQuAD 2.0: answer \"\" when the null score "
                                     "exceeds this.")

    # tasks
    double_unordered: bool = setting(True, help="Train MRPC/STS-B pairs in both orders.")
    use_crf: bool = setting(False, help="Tagging heads end in a linear-chain CRF.")
    use_tfds: bool = setting(False, help="Read GLUE/RACE through tfds (prepared data) "
                             "instead of files.")
    tfds_data_dir: str | None = setting(None, help="tfds data_dir for --use_tfds.")

    # round(train_fraction * n) examples: a prefix of one permutation seeded by `seed`,
    # so a smaller fraction's examples lie in every larger one's, for every trial
    train_fraction: float = setting(1.0, help="Train on this fraction of each training set, "
                                    "in (0, 1]: a seeded subset, nested across fractions for "
                                    "the same --seed.")

    # runs and outputs
    output_dir: str = setting(
        "", help="Where the run's folders go.",
        shown_default="<data_dir>/models/<model_name>, beside the pretrained encoder")
    score_test: bool = setting(False, help="Also score each task's labelled test split (its "
                               "own labels or a test_labels.tsv beside it; for QA a test file "
                               "whose every question has its answers) at the best-dev epoch.")
    num_trials: int = setting(1, help="Runs with seeds seed, seed+1, ...; results report each, "
                              "their median and their max.")
    seed: int = setting(0, help="Seed of initialization, dropout and shuffling.")
    do_train: bool = setting(True, help="Train.")
    do_eval: bool = setting(True, help="Score the dev sets after each epoch.")
    write_test_outputs: bool = setting(False, help="Write test-set predictions (GLUE "
                                       "submission files) to <model dir>/test_predictions.")

    # speed: the hardware flagfiles set these (flags/hardware/)
    mixed_precision: str = setting("", help="'' (float32), bf16 or fp16.")
    # an execution never runs past an epoch's end by more than its own length, and the
    # last one is cut to end the run
    steps_per_execution: int = setting(
        1, help="Train steps per compiled call, like the original's iterations_per_loop "
        "(raise it on TPUs and GPUs). The dev sets are scored at the first call boundary at "
        "or past each epoch's end.")
    jit_compile: bool = setting(False, help="Compile the train step with XLA.")

    def __post_init__(self):
        if isinstance(self.task_names, str):
            self.task_names = [t for t in self.task_names.split(",") if t]
        if not self.task_names:
            raise ValueError("task_names is empty: name at least one task")
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"task_names lists a task twice: {self.task_names}")
        if self.max_seq_length is None:
            self.max_seq_length = self.default_max_seq_length()
        one_of("model_size", self.model_size, SIZES)
        one_of("optimizer", self.optimizer, OPTIMIZER_NAMES)
        one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        for name in ("train_batch_size", "eval_batch_size", "max_seq_length", "num_trials",
                     "steps_per_execution", "max_query_length", "doc_stride", "n_best_size",
                     "max_answer_length", "beam_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.num_train_epochs is not None and self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be positive")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction={self.train_fraction} must be in (0, 1]")
        if not 0.0 <= self.warmup_proportion < 1.0:
            raise ValueError(f"warmup_proportion={self.warmup_proportion} must be in [0, 1)")
        if self.layerwise_lr_decay is not None and not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ValueError(f"layerwise_lr_decay={self.layerwise_lr_decay} must be in (0, 1]")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be positive")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short (< 8)")

    @property
    def single_task(self) -> str | None:
        return self.task_names[0].lower() if len(self.task_names) == 1 else None

    def _single_qa(self) -> bool:
        # The original's test: "squad" or "qa" in the only task's name (not naturalqs).
        single = self.single_task or ""
        return "squad" in single or "qa" in single

    def default_max_seq_length(self) -> int:
        """The original's choice for a single task: 512 for QA, 256 for chunk, else 128."""
        return 512 if self._single_qa() else 256 if self.single_task == "chunk" else 128

    @property
    def epochs(self) -> float:
        """num_train_epochs, or the original's choice (``configure_finetuning.py``, for
        single-task runs only): 10 when the only task is RTE or STS-B, 2 for a QA task,
        else 3."""
        if self.num_train_epochs is not None:
            return self.num_train_epochs
        if self.single_task in ("rte", "stsb", "sts", "sts-b"):
            return 10.0
        return 2.0 if self._single_qa() else 3.0

    @property
    def qa_options(self) -> dict:
        """The QA tasks' featurization and decoding settings
        (:class:`~electra_tf.tasks.specs.QAOptions`)."""
        return {name: getattr(self, name) for name in (
            "max_query_length", "doc_stride", "n_best_size", "max_answer_length",
            "joint_prediction", "answerable_classifier", "qa_na_threshold")}

    @property
    def qa_head(self) -> dict:
        """The QA head's settings (:class:`~electra_tf.finetuning.model.FinetuningModel`)."""
        return {"joint_prediction": self.joint_prediction, "beam_size": self.beam_size,
                "answerable_classifier": self.answerable_classifier,
                "answerable_uses_start_logits": self.answerable_uses_start_logits,
                "answerable_weight": self.answerable_weight}

    def resolved(self, large_encoder: bool) -> dict:
        """The learning rate, layer-wise decay and epochs a run uses: the given values,
        else the original's defaults, which for a large encoder (`large_encoder`) are lr
        5e-5 and decay 0.9 (``configure_finetuning.py`` keys them on model_size=large)."""
        return {"learning_rate": (self.learning_rate if self.learning_rate is not None
                                  else 5e-5 if large_encoder else 1e-4),
                "layerwise_lr_decay": (self.layerwise_lr_decay
                                       if self.layerwise_lr_decay is not None
                                       else 0.9 if large_encoder else 0.8),
                "num_train_epochs": self.epochs,
                "large_encoder": large_encoder}

    @property
    def model_dir(self) -> str:
        """Where the run's folders go: --output_dir, else ``<data_dir>/models/<model_name>``
        (which also holds the encoder electra-pretrain exported)."""
        return self.output_dir or self.pretrained_dir

    @property
    def pretrained_dir(self) -> str:
        """``<data_dir>/models/<model_name>``: where electra-pretrain exported the encoder."""
        return join(self.data_dir, "models", self.model_name)

    @property
    def run_name(self) -> str:
        """``sst2``, ``mrpc+rte+stsb`` or ``pos-crf``: names the run's folders."""
        return "+".join(self.task_names) + ("-crf" if self.use_crf else "")

    @property
    def run_dir(self) -> str:
        """Checkpoints, events, tag sets: ``<model_dir>/finetuning/<run_name>``."""
        return join(self.model_dir, "finetuning", self.run_name)

    @property
    def cache_dir(self) -> str:
        """Featurized splits: ``<model_dir>/finetuning_tfrecords`` (the original's place)."""
        return join(self.model_dir, "finetuning_tfrecords")

    @property
    def results_path(self) -> str:
        return join(self.model_dir, "results", f"{self.run_name}.json")

    @property
    def test_predictions_dir(self) -> str:
        return join(self.model_dir, "test_predictions")

    @property
    def qa_predictions_dir(self) -> str:
        """The best trial's official QA prediction files of the dev sets."""
        return join(self.model_dir, "qa_predictions")

    @property
    def policy(self) -> str:
        return MIXED_PRECISION[self.mixed_precision]
