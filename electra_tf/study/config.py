"""One config object for the equal-FLOP study (and the demo, which is a small study).

The study pretrains each objective (BERT, ELECTRA, ALE) of one size on the same corpus for
the same FLOP budget, finetunes every pretrained encoder (and a from-scratch control) on
every task with several seeds, and writes the Table IV layout of Shao's "Pretraining Deep
Learning Models for NLU". Its
``output_dir`` is a data dir in the original's layout, so every stage is the package's
own command run on it: ``vocab.txt``, ``pretrain_tfrecords/``, ``finetuning_data/``,
``models/<objective>_<size>/`` (pretraining and finetuning), ``models/scratch_<size>/``,
``models/tlm_<task>/``, ``models/bilstm_<task>/`` and ``study_results.{json,md,png}``.
"""

from __future__ import annotations

import dataclasses

from electra_tf.baselines.config import parse_lstm_model
from electra_tf.configs import (
    MIXED_PRECISION,
    MODEL_TYPES,
    SIZES,
    RunConfig,
    join,
    one_of,
    setting,
)

# Sample corpora (data_prep.samples names) the pretraining data can be built from.
CORPORA = {"wiki_leads": "text", "enwiki_dump": "wikipedia", "shakespeare": "books",
           "news": "text"}

# The real tasks the samples carry, each with the metric that goes into the table.
TASK_METRICS = {"sst2_mr": "accuracy", "sst5_mr": "accuracy", "stsb_mr": "spearman",
                "wiki_topics": "accuracy", "pos_wsj": "accuracy", "pos_wsj-crf": "accuracy"}
CLASSIFICATION_TASKS = ("sst2_mr", "sst5_mr", "wiki_topics")  # what TLM and BiLSTMs can run

# What a re-run may change without invalidating the results it finds: adding seeds,
# tasks, rows or checkpoints adds only their cells (the BiLSTM sweep checks its own
# settings).


# For each stage (by the study field of its JSON overrides): the study settings that
# decide some of its settings, and which.
_STAGE_FIELDS = {
    "pretrain_hparams": {"seed": ("seed",),
                         "flop_budget": ("flop_budget", "num_warmup_steps"),
                         "learning_rate": ("learning_rate",),
                         "mixed_precision": ("mixed_precision",),
                         "warmup_fraction": ("num_warmup_steps",),
                         "checkpoint_fractions": ("encoder_snapshots",)},
    "finetune_hparams": {"seed": ("seed",)},
    "tlm_hparams": {"seed": ("seed",), "mixed_precision": ("mixed_precision",),
                    "flop_budget": ("flop_budget",), "tlm_budget_fraction": ("flop_budget",)},
    "lstm_hparams": {"seed": ("seed",), "num_trials": ("num_trials",),
                     "finetune_hparams": ("max_seq_length",)},
}


@dataclasses.dataclass
class StudyConfig(RunConfig):
    """Everything the study reads. Defaults: the tiny study on the sample data."""

    # Not even knowingly: the data and the models' shape, which every stage is built on.
    FIXED = ("corpora", "max_seq_length", "num_shards", "data_seed", "model_size",
             "train_batch_size")
    MAY_CHANGE = ("output_dir", "samples_dir", "num_trials", "tasks", "curve_tasks", "curve_trials",
                  "scratch", "tlm_task", "lstm_model", "lstm_hparams", "num_processes")

    output_dir: str = setting("data/study", help="The study's data dir (original layout): "
                              "vocab.txt, pretrain_tfrecords/, finetuning_data/, models/, "
                              "study_results.*.")
    samples_dir: str = setting("data/samples", help="Where electra-samples keeps the fetched "
                               "samples.")

    # pretraining data: the sample prose, with BERT's uncased WordPiece vocab (what the
    # original's quick start uses; the published parameter counts assume its 30,522 ids)
    corpora: list[str] = setting(default_factory=lambda: list(CORPORA),
                                 help="Sample corpora to pretrain on.")
    max_seq_length: int = setting(128, help="Sequence length of the pretraining data and "
                                  "runs.")
    num_shards: int = setting(8, help="TFRecord files of the pretraining data.")
    data_seed: int = setting(1, help="Seed of the pretraining data's building.")
    num_processes: int = setting(2, help="Worker processes building the TFRecords.")

    # pretraining: one run per objective, all with the same FLOP budget
    objectives: list[str] = setting(default_factory=lambda: list(MODEL_TYPES),
                                    help="Pretrained rows: bert, electra, ale.")
    model_size: str = setting("tiny", help="debug, tiny, small, base or large.")
    flop_budget: float = setting(8.7e13, help="Pretraining FLOPs of every objective.")
    train_batch_size: int = setting(32, help="Pretraining batch size.")
    learning_rate: float = setting(5e-3, help="Pretraining peak learning rate, LAMB.")
    warmup_fraction: float = setting(0.1, help="Warmup as a fraction of each run's steps.")
    mixed_precision: str = setting("bf16", help="'' (float32), bf16 or fp16.")
    pretrain_hparams: dict = setting(default_factory=dict, help="JSON of other "
                                     "PretrainingConfig fields, e.g. {\"disc_weight\": 50}.")
    # checkpoints kept, exported and finetuned on curve_tasks for the FLOPs plot
    checkpoint_fractions: list[float] = setting(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0], help="Where the FLOPs plot's points "
        "are: encoder snapshots at these fractions of each run.")

    # finetuning: every task, num_trials seeds each, for each pretrained model and the
    # from-scratch control
    tasks: list[str] = setting(
        default_factory=lambda: ["sst2_mr", "stsb_mr", "wiki_topics", "pos_wsj",
                                 "pos_wsj-crf"],
        help=f"Finetuning tasks, of {', '.join(TASK_METRICS)}.")
    curve_tasks: list[str] = setting(default_factory=lambda: ["sst2_mr"],
                                     help="Tasks the snapshots are finetuned on.")
    curve_trials: int = setting(1, help="Seeds per plotted point (the first of "
                                "--num_trials).")
    num_trials: int = setting(3, help="Finetuning seeds per cell.")
    scratch: bool = setting(True, help="Add the no-pretraining control.")
    finetune_hparams: dict = setting(
        default_factory=lambda: {"learning_rate": 3e-4, "weight_decay_rate": 0.0,
                                 "num_train_epochs": 2.0, "max_seq_length": 128},
        help="JSON of FinetuningConfig fields for every finetuning run; the default is the "
        "paper's small-model recipe.")

    # extra rows: TLM on one classification task with a fraction of the budget, and the
    # BiLSTM baseline on every classification task ("" turns a row off)
    tlm_task: str = setting("sst2_mr", help="Task of the TLM row; '' for none.")
    tlm_budget_fraction: float = setting(0.5, help="TLM's stage-1 FLOPs as a fraction of "
                                         "--flop_budget.")
    tlm_hparams: dict = setting(default_factory=dict, help="JSON of TlmConfig fields for the "
                                "TLM row.")
    lstm_model: str = setting("LSTM-2-256", help="BiLSTM row (LSTM-<layers>-<units>); '' for "
                              "none.")
    lstm_hparams: dict = setting(default_factory=dict, help="JSON of BaselinesConfig fields "
                                 "for the BiLSTM row.")

    seed: int = setting(0, help="Base seed.")

    def __post_init__(self):
        for name in ("corpora", "objectives", "tasks", "curve_tasks"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v for v in value.split(",") if v])
        fractions = self.checkpoint_fractions
        if isinstance(fractions, str):
            fractions = [v for v in fractions.split(",") if v]
        try:
            self.checkpoint_fractions = [float(v) for v in fractions]
        except ValueError:
            raise ValueError(f"checkpoint_fractions={fractions}: numbers such as "
                             f"0.25,0.5,0.75,1") from None
        for corpus in self.corpora:
            one_of("corpus", corpus, CORPORA)
        for objective in self.objectives:
            one_of("objective", objective, MODEL_TYPES)
        for task in self.tasks:
            one_of("task", task, TASK_METRICS)
        for task in self.curve_tasks:
            if task not in self.tasks:
                raise ValueError(f"curve task {task!r} is not among tasks {self.tasks}")
        one_of("model_size", self.model_size, SIZES)
        one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if not self.corpora:
            raise ValueError("corpora is empty: name at least one sample corpus")
        if not self.tasks:
            raise ValueError("tasks is empty: name at least one task")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives lists one twice: {self.objectives}")
        if not self.flop_budget > 0:
            raise ValueError(f"flop_budget={self.flop_budget} must be positive")
        if self.num_trials < 1:
            raise ValueError(f"num_trials={self.num_trials} must be positive")
        if not 1 <= self.curve_trials <= self.num_trials:
            raise ValueError(f"curve_trials={self.curve_trials} must be in [1, num_trials="
                             f"{self.num_trials}]")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction={self.warmup_fraction} must be in [0, 1)")
        fractions = self.checkpoint_fractions
        if (not fractions or any(not 0.0 < f <= 1.0 for f in fractions)
                or sorted(set(fractions)) != fractions or fractions[-1] != 1.0):
            raise ValueError(f"checkpoint_fractions={fractions} must rise within (0, 1] and "
                             f"end at 1.0 (the finished run)")
        if self.tlm_task:
            one_of("tlm_task", self.tlm_task, CLASSIFICATION_TASKS)
            if not 0.0 < self.tlm_budget_fraction <= 1.0:
                raise ValueError(f"tlm_budget_fraction={self.tlm_budget_fraction} must be "
                                 f"in (0, 1]")
        if self.lstm_model:
            parse_lstm_model(self.lstm_model)

    def stage_changes(self, hparams: str) -> list[str]:
        """The ``change_settings`` of a stage run this study builds, the stage named by
        its JSON overrides field `hparams` (e.g. ``pretrain_hparams``): the stage
        settings that the study's own ``change_settings`` decide (every key of `hparams`
        when it is named), and those `hparams` names itself."""
        overrides = getattr(self, hparams)
        names = set(overrides.get("change_settings", []))
        for name in self.change_settings:
            if name == hparams:
                names.update(k for k in overrides if k != "change_settings")
            elif name in _STAGE_FIELDS[hparams]:
                names.update(_STAGE_FIELDS[hparams][name])
        return sorted(names)

    # -- names and paths -----------------------------------------------------------------

    def model_name(self, objective: str) -> str:
        """``electra_tiny``: the pretraining run of `objective` (``scratch`` included)."""
        return f"{objective}_{self.model_size}"

    def model_dir(self, objective: str) -> str:
        return join(self.output_dir, "models", self.model_name(objective))

    @property
    def tfrecords_dir(self) -> str:
        return join(self.output_dir, "pretrain_tfrecords")

    @property
    def results_path(self) -> str:
        return join(self.output_dir, "study_results.json")

    @property
    def rows(self) -> list[str]:
        """The table's pretrained rows and the control, in order."""
        return list(self.objectives) + (["scratch"] if self.scratch else [])

    @property
    def lstm_tasks(self) -> list[str]:
        return [t for t in self.tasks if t in CLASSIFICATION_TASKS] if self.lstm_model else []
