"""One config object for a "to pretrain or not" sweep: which task, which training-set
fractions, which BiLSTMs, which pretrained encoder, and how each is trained."""

from __future__ import annotations

import dataclasses
import re

from electra_tf.configs import RunConfig, join, setting
from electra_tf.finetuning.config import FinetuningConfig

DEFAULT_FRACTIONS = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9)  # the paper's 1, 10, 30, 50, 70, 90 %
LSTM_LEARNING_RATES = (2.5e-4, 5e-4, 7.5e-4, 1e-3)  # the paper's grid for the BiLSTMs
LR_SCHEDULES = ("constant", "linear")
EMBEDDINGS = ("scratch", "pretrained")
PRETRAINED = "pretrained"  # the finetuned encoder's row in results and tables

# What a re-run may change: more fractions, models or trials (new cells), the eval batch.


def parse_lstm_model(name: str) -> tuple[int, int]:
    """(layers, units) of ``LSTM-<layers>-<units>`` (the paper's names)."""
    match = re.fullmatch(r"LSTM-(\d+)-(\d+)", name.strip())
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(f"lstm model {name!r}: expected LSTM-<layers>-<units> with both at "
                         f"least 1, e.g. LSTM-2-256")
    return int(match[1]), int(match[2])


def check_numbers(name: str, values, upper: float | None = None,
                  example: str = "") -> list[float]:
    """`values` (a list, or a comma-separated string) as sorted floats, each once, each
    positive and at most `upper`; `name` and `example` make the errors."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v]
    numbers = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if not number > 0.0 or (upper is not None and number > upper):
            allowed = f"in (0, {upper:g}]" if upper is not None else "positive"
            raise ValueError(f"{name}: {value!r} must be {allowed}{example}")
        numbers.append(number)
    if not numbers:
        raise ValueError(f"{name} is empty")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{name} lists a value twice: {numbers}")
    return sorted(numbers)


def check_fractions(fractions) -> list[float]:
    """Training-set fractions as sorted floats in (0, 1], each once."""
    return check_numbers("fractions", fractions, 1.0,
                         ": give fractions of the training set such as 0.01,0.1,0.5")


@dataclasses.dataclass
class BaselinesConfig(RunConfig):
    """Everything a sweep reads. Each cell (model, fraction, trial) trains on the same
    nested subset of the training set: trial k draws it with seed ``seed + k`` for every
    model, so the pretrained encoder and the BiLSTMs see exactly the same examples.

    The BiLSTM defaults are the paper's recipe: Adam at a constant learning rate, the
    best on dev of ``lstm_learning_rates``, batch 64, up to 10 epochs with early stopping
    on dev."""

    MAY_CHANGE = ("model_name", "data_dir", "fractions", "lstm_models", "lstm_embeddings",
                  "num_trials", "eval_batch_size", "finetune")

    model_name: str = setting("baselines", help="Outputs go to <data_dir>/models/<model_name>.")
    data_dir: str = setting("data", help="Holds finetuning_data/<task>/ (and vocab.txt).")
    task_name: str = setting("sst2_mr", help="A sentence or sentence-pair classification task "
                             "(sst5_mr is 5-class rating).")
    fractions: list[float] = setting(default_factory=lambda: list(DEFAULT_FRACTIONS),
                                     help="Fractions of the training set, each in (0, 1].")
    num_trials: int = setting(1, help="Seeds per cell: trial k uses seed+k for its subset, "
                              "initialization and shuffling.")
    seed: int = setting(0, help="Base seed.")

    # the pretrained encoder: finetuned, and the source of the frozen embeddings
    init_checkpoint: str = setting(
        "", shown_default="none: BiLSTMs only", help="The pretrained encoder to finetune and "
        "take embeddings from: an electra-pretrain model dir or encoder.keras (also a TF1 "
        "checkpoint or a Hugging Face folder when only finetuned).")
    vocab_file: str | None = setting(
        None, help="WordPiece vocab.",
        shown_default="the encoder's vocab.txt, else <data_dir>/vocab.txt")
    do_lower_case: bool = setting(True, help="Lower-case the text (for an uncased vocab).")
    max_seq_length: int = setting(128, help="Tokens per example.")
    train_batch_size: int = setting(32, help="Batch size of the pretrained encoder's "
                                    "finetuning.")
    eval_batch_size: int = setting(128, help="Prediction batch size.")
    min_train_steps: int = setting(100, help="Every cell trains at least this many steps (a "
                                   "1 % subset would otherwise stop after a handful of "
                                   "updates). A BiLSTM run it stretches past "
                                   "--lstm_num_train_epochs epochs scores dev every "
                                   "1/lstm_num_train_epochs of its steps instead of every "
                                   "epoch, so it still has that many scoring points.")

    # the BiLSTMs
    lstm_models: list[str] = setting(default_factory=lambda: ["LSTM-2-256"],
                                     help="BiLSTMs LSTM-<layers>-<units>.")
    lstm_embeddings: list[str] = setting(
        default_factory=lambda: ["scratch"], help="scratch (a trained table) and/or "
        "pretrained (the encoder's token table, frozen, fed straight into the LSTM: the "
        "paper's +emb rows).")
    embedding_size: int = setting(128, help="Width of the BiLSTM's token table trained from "
                                  "scratch (the default is the paper's).")
    lstm_project_embeddings: bool = setting(
        False, help="Put a trainable linear projection to --embedding_size between the frozen "
        "pretrained table and the LSTM. Not the paper's model (it feeds the table straight "
        "in): fewer parameters and a cheaper first layer on a wide table.")
    lstm_learning_rates: list[float] = setting(
        default_factory=lambda: list(LSTM_LEARNING_RATES),
        help="Adam learning rates of the BiLSTMs: each cell trains one run per rate and "
        "keeps the best on dev (the paper's grid).")
    lstm_lr_schedule: str = setting(
        "constant", help="constant (the paper's) or linear (decay to 0 over "
        "--lstm_num_train_epochs, as the finetuning recipes do).")
    lstm_train_batch_size: int = setting(64, help="BiLSTM batch size (the paper's).")
    lstm_num_train_epochs: float = setting(10.0, help="Most epochs a BiLSTM run trains (the "
                                           "paper's).")
    lstm_early_stopping_patience: int = setting(
        3, help="Stop a BiLSTM run once its dev score has not improved for this many "
        "epochs (never before --min_train_steps); the best-dev epoch is kept. 0 trains every "
        "epoch. The paper stops early on dev without giving a patience.")
    lstm_dropout_rate: float = setting(0.1, help="Dropout before the output layer.")

    finetune: dict = setting(
        default_factory=lambda: {"learning_rate": 3e-4, "num_train_epochs": 3.0,
                                 "weight_decay_rate": 0.0},
        help="JSON of FinetuningConfig fields (learning_rate, layerwise_lr_decay, "
        "num_train_epochs, ...) for the pretrained encoder's cells, on top of the sweep's own.")

    def __post_init__(self):
        self.fractions = check_fractions(self.fractions)
        self.lstm_learning_rates = check_numbers("lstm_learning_rates",
                                                 self.lstm_learning_rates)
        for name in ("lstm_models", "lstm_embeddings"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v for v in value.split(",") if v])
        for name in self.lstm_models:
            parse_lstm_model(name)
        for kind in self.lstm_embeddings:
            if kind not in EMBEDDINGS:
                raise ValueError(f"lstm_embeddings={kind!r}; allowed: {', '.join(EMBEDDINGS)}")
        if "pretrained" in self.lstm_embeddings and not self.init_checkpoint:
            raise ValueError("lstm_embeddings=pretrained needs --init_checkpoint (the encoder "
                             "whose token table the BiLSTM takes)")
        if not self.lstm_models and not self.init_checkpoint:
            raise ValueError("nothing to run: no --lstm_models and no --init_checkpoint")
        for name in ("num_trials", "max_seq_length", "train_batch_size", "eval_batch_size",
                     "embedding_size", "min_train_steps", "lstm_train_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.lstm_num_train_epochs <= 0:
            raise ValueError(f"lstm_num_train_epochs={self.lstm_num_train_epochs} must be "
                             f"positive")
        if self.lstm_early_stopping_patience < 0:
            raise ValueError(f"lstm_early_stopping_patience="
                             f"{self.lstm_early_stopping_patience} must be >= 0 (0: no early "
                             f"stopping)")
        if self.lstm_lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lstm_lr_schedule={self.lstm_lr_schedule!r}; allowed: "
                             f"{', '.join(LR_SCHEDULES)}")
        owned = {"data_dir", "model_name", "task_names", "init_checkpoint", "vocab_file",
                 "do_lower_case", "max_seq_length", "train_batch_size", "eval_batch_size",
                 "seed", "num_trials", "train_fraction", "output_dir", "score_test"}
        clash = sorted(owned & set(self.finetune))
        if clash:
            raise ValueError(f"finetune sets {', '.join(clash)}: the sweep sets those itself "
                             f"(give them as its own flags)")
        FinetuningConfig.from_dict(self.finetune)  # unknown keys and bad values, now

    @property
    def models(self) -> list[str]:
        """Row names: ``pretrained`` (when an encoder is given), then each BiLSTM, with
        ``+emb`` for the frozen pretrained-embedding variant."""
        rows = [PRETRAINED] if self.init_checkpoint else []
        for name in self.lstm_models:
            rows += [name + ("+emb" if kind == "pretrained" else "")
                     for kind in self.lstm_embeddings]
        return rows

    @property
    def output_dir(self) -> str:
        return join(self.data_dir, "models", self.model_name)

    @property
    def results_path(self) -> str:
        return join(self.output_dir, "results.json")

    def cell_dir(self, model: str, fraction: float, trial: int) -> str:
        """``<output_dir>/cells/<model>/fraction_<f>/trial_<k>``."""
        return join(self.output_dir, "cells", model, f"fraction_{fraction:g}",
                    f"trial_{trial}")

    @staticmethod
    def lr_dir(cell_dir: str, learning_rate: float) -> str:
        """``<cell_dir>/lr_<rate>``: one BiLSTM run of the learning-rate grid."""
        return join(cell_dir, f"lr_{learning_rate:g}")
