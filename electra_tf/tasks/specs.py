"""The task registry: what a finetuning task reads, how it featurizes, and how it scores.

Four kinds, as in the original ``finetune/`` package:

* ``classification`` and ``regression`` (GLUE and the sample tasks): ``[CLS] a [SEP]``
  or ``[CLS] a [SEP] b [SEP]``, the longer side truncated first; STS-B's label is scaled
  to [0, 1] by its range (label / 5) and predictions scaled back.
* ``multiple_choice`` (RACE): per option ``[CLS] article [SEP] question option [SEP]``,
  or for a cloze question (one with a ``_`` blank) ``[CLS] article [SEP] question with
  the option in the blank [SEP]``, as the common RACE finetuning code builds them; the
  article truncated first; one score per option.
* ``tagging`` (POS, chunking): the first WordPiece of each word carries the word's tag,
  the other pieces label -1; scored over every word, words cut off beyond
  ``max_seq_length`` counting as errors (as tag "O" for chunking). Chunk tags are read
  as BIO and trained as BIOES, as the original; chunking is scored by span F1.
* ``qa`` (SQuAD 1.1/2.0, MRQA): ``[CLS] question [SEP] context window [SEP]`` per
  window of the context (:mod:`qa`); labels (start, end, unanswerable) per window;
  predictions decoded per question over its windows and scored as the official scripts.

Features are NumPy arrays keyed like the model's inputs; labels sit under ``label``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import numpy as np
from absl import logging

from electra_tf import files
from electra_tf.tasks import qa, qa_eval, readers, scorers

KINDS = ("classification", "regression", "multiple_choice", "tagging", "qa")
NUM_CHOICES = 4
# Label ranges of the regression tasks: the model learns (label - low) / (high - low).
REGRESSION_RANGES = {"stsb": (0.0, 5.0), "stsb_mr": (-4.0, 4.0)}  # VADER valence: [-4, 4]


@dataclasses.dataclass
class Features:
    """A featurized split: model inputs, labels (None when unlabelled), example ids."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    guids: list[str]
    extra: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.guids)

    def subset(self, indices) -> Features:
        """The examples at `indices` (per-example extras sliced too)."""
        indices = np.asarray(indices, np.int64)
        n = len(self)
        extra = {k: (np.asarray(v)[indices] if len(np.shape(v)) and np.shape(v)[0] == n else v)
                 for k, v in self.extra.items()}
        return Features({k: v[indices] for k, v in self.inputs.items()},
                        None if self.labels is None else self.labels[indices],
                        [self.guids[i] for i in indices], extra)


def nested_subset(num_examples: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of round(fraction * num_examples) examples (at least one): a prefix
    of one seeded permutation, so with the same seed a smaller fraction's subset lies
    inside every larger one's."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1]")
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[:max(1, round(fraction * num_examples))])


def truncate_pair(a: list, b: list, max_length: int) -> None:
    """The original's ``_truncate_seq_pair``: drop the last token of the longer side until
    both fit (in place)."""
    while len(a) + len(b) > max_length:
        (a if len(a) > len(b) else b).pop()


def pack(segments: Sequence[list[int]], max_seq_length: int, cls: int, sep: int):
    """``[CLS] s0 [SEP] s1 [SEP] ...`` as (ids, segment ids), already truncated to fit."""
    ids, segment_ids = [cls], [0]
    for index, segment in enumerate(segments):
        ids += list(segment) + [sep]
        segment_ids += [min(index, 1)] * (len(segment) + 1)
    if len(ids) > max_seq_length:
        raise ValueError(f"packed length {len(ids)} > max_seq_length {max_seq_length}")
    return ids, segment_ids


def _pad(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _encoder_inputs(packed, max_seq_length):
    ids = [p[0] for p in packed]
    return {"input_ids": _pad(ids, max_seq_length),
            "input_mask": _pad([[1] * len(x) for x in ids], max_seq_length),
            "segment_ids": _pad([p[1] for p in packed], max_seq_length)}



class Task(abc.ABC):
    """A task: its name and kind, how it reads and featurizes a split, how it turns the
    model's outputs into predictions and scores them."""

    kind: str
    name: str
    eval_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)

    @abc.abstractmethod
    def read(self, data_dir: str, split: str) -> list:
        """The examples of one split."""

    @abc.abstractmethod
    def featurize(self, examples, tokenizer, max_seq_length: int) -> Features:
        """Model inputs and labels of a list of examples."""

    @abc.abstractmethod
    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions from the head's outputs."""

    def score(self, predictions: np.ndarray, features: Features) -> dict[str, float]:
        return scorers.score(self.name, predictions, features.labels)

    def cache_options(self) -> dict:
        """Settings besides the examples that change the features (for the cache key)."""
        return {}

    def read_labelled_test(self, data_dir: str) -> list | None:
        """The test split with its labels, when they are known here (None: they are not)."""
        return None

    def labelled_splits(self, data_dir: str, tokenizer, max_seq_length: int
                        ) -> tuple[dict[str, list], dict[str, Features]]:
        """Examples and features of train, dev and (when its labels are known) test; an
        empty or unlabelled split is an error. For tasks whose examples carry a ``label``
        (TLM and the BiLSTM sweep use it with classification tasks)."""
        examples = {"train": self.read(data_dir, "train"), "dev": self.read(data_dir, "dev")}
        test = self.read_labelled_test(data_dir)
        if test is not None:
            examples["test"] = test
        for split, rows in examples.items():
            if not rows:
                raise ValueError(f"{self.name}: the {split} split has no examples")
            if any(e.label is None for e in rows):
                raise ValueError(f"{self.name}: the {split} split has unlabelled examples")
        features = {split: self.featurize(rows, tokenizer, max_seq_length)
                    for split, rows in examples.items()}
        return examples, features

    @property
    def num_outputs(self) -> int:
        return 1


class PairTask(Task):
    """A GLUE-style sentence or sentence-pair task (classification or regression).

    Args:
      name: a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli) or a sample
        task of :mod:`readers` (sst2_mr, stsb_mr).
      source: "tsv" (``finetuning_data/<task>/``) or "tfds" (``glue/<task>``, prepared).
      double_unordered: train on each MRPC/STS-B pair in both orders, as the original.
    """

    def __init__(self, name: str, source: str = "tsv", double_unordered: bool = True,
                 tfds_data_dir: str | None = None):
        self.spec = readers.get_task(name)
        self.name = self.spec.name
        self.kind = "regression" if self.spec.is_regression else "classification"
        self.source = source
        self.double_unordered = double_unordered and self.name in ("mrpc", "stsb")
        self.tfds_data_dir = tfds_data_dir
        self.label_range = REGRESSION_RANGES.get(self.name, (0.0, 1.0))

    @property
    def num_outputs(self) -> int:
        return 1 if self.spec.is_regression else len(self.spec.labels)

    def cache_options(self):
        return {"source": self.source, "label_range": self.label_range}

    @property
    def eval_splits(self) -> tuple[str, ...]:
        return ("dev_matched", "dev_mismatched") if self.name == "mnli" else ("dev",)

    @property
    def test_splits(self) -> tuple[str, ...]:
        # MNLI's model also labels GLUE's diagnostic set (AX.tsv in a submission).
        return (("test_matched", "test_mismatched", "diagnostic") if self.name == "mnli"
                else ("test",))

    def read(self, data_dir, split):
        if self.source == "tfds":
            examples = readers.read_tfds_glue(self.name, split, self.tfds_data_dir)
        else:
            examples = readers.read_glue(self.name, data_dir, split)
        if split == "train" and self.double_unordered:
            examples = examples + [
                readers.PairExample(e.guid + "-swapped", e.text_b, e.text_a, e.label)
                for e in examples]
        return examples

    def read_labelled_test(self, data_dir: str) -> list[readers.PairExample] | None:
        """The test split with labels: its own, or from ``test_labels.tsv`` (index, label)
        beside it (GLUE hides test labels; the sample tasks ship them apart); None if
        neither."""
        try:
            examples = self.read(data_dir, "test")
        except FileNotFoundError:
            return None
        if all(e.label is not None for e in examples):
            return examples
        path = files.join(files.parent(readers.glue_file(self.spec, data_dir, "test")),
                          "test_labels.tsv")
        if not files.isfile(path):
            return None
        gold = scorers._read_gold(self.name, path)
        try:
            return [readers.PairExample(e.guid, e.text_a, e.text_b,
                                        gold[readers.example_index(e.guid)]) for e in examples]
        except KeyError as e:
            raise ValueError(f"{path}: no label for test example index {e.args[0]}") from None

    def featurize(self, examples, tokenizer, max_seq_length):
        special = tokenizer.special
        a = tokenizer.tokenize_each([e.text_a for e in examples])
        pair = any(e.text_b is not None for e in examples)
        b = tokenizer.tokenize_each([e.text_b or "" for e in examples]) if pair else None
        packed = []
        for i in range(len(examples)):
            if b is None:
                packed.append(pack([a[i][:max_seq_length - 2]], max_seq_length,
                                   special.cls, special.sep))
            else:
                truncate_pair(a[i], b[i], max_seq_length - 3)
                packed.append(pack([a[i], b[i]], max_seq_length, special.cls, special.sep))
        labels = None
        if examples and all(e.label is not None for e in examples):
            if self.spec.is_regression:
                low, high = self.label_range
                labels = (np.array([float(e.label) for e in examples], np.float32) - low) \
                    / (high - low)
            else:
                labels = scorers.label_ids(self.spec, [str(e.label) for e in examples])
                labels = labels.astype(np.int32)
        return Features(_encoder_inputs(packed, max_seq_length), labels,
                        [e.guid for e in examples])

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Label ids (classification) or labels in the task's own range (regression)."""
        if self.spec.is_regression:
            low, high = self.label_range
            return outputs.reshape(-1) * (high - low) + low
        return outputs.argmax(-1)

    def score(self, predictions, features):
        labels = features.labels
        if self.spec.is_regression:
            low, high = self.label_range
            labels = labels * (high - low) + low
        return scorers.score(self.name, predictions, labels)

    def prediction_strings(self, predictions) -> list[str]:
        if self.spec.is_regression:
            return [f"{p:.3f}" for p in predictions]
        return [self.spec.labels[int(p)] for p in predictions]


class RaceTask(Task):
    """RACE multiple choice over ``race/{train,dev,test}/{middle,high}/*.txt`` (or tfds
    ``race/middle``, ``race/high``); ``levels`` picks middle, high or both."""

    kind = "multiple_choice"

    def __init__(self, name: str = "race", levels: Sequence[str] = ("middle", "high"),
                 source: str = "json", tfds_data_dir: str | None = None):
        self.name = name
        self.levels = tuple(levels)
        self.source = source
        self.tfds_data_dir = tfds_data_dir

    def cache_options(self):
        return {"levels": self.levels, "source": self.source}

    def read(self, data_dir, split):
        if self.source == "tfds":
            return [e for level in self.levels
                    for e in readers.read_tfds_race(split, level, self.tfds_data_dir)]
        return readers.read_race(files.join(data_dir, "finetuning_data", "race"), split,
                                 self.levels)

    def featurize(self, examples, tokenizer, max_seq_length):
        special = tokenizer.special
        articles = tokenizer.tokenize_each([e.article for e in examples])
        # The second segment: a cloze question with the option written into its blank,
        # else the question then the option (split apart here only for truncation:
        # WordPiece splits at spaces, so their pieces are those of "question option").
        questions, options = [], []
        for e in examples:
            for option in e.options:
                cloze = "_" in e.question
                questions.append(e.question.replace("_", option) if cloze else e.question)
                options.append("" if cloze else option)
        questions = tokenizer.tokenize_each(questions)
        options = tokenizer.tokenize_each(options)
        packed = []
        for i in range(len(examples)):
            for j in range(NUM_CHOICES):
                k = i * NUM_CHOICES + j
                question, option = questions[k], options[k]
                # The second segment keeps up to half the room; the article gets the rest.
                room = max_seq_length - 3
                truncate_pair(question, option, room // 2)
                article = articles[i][:room - len(question) - len(option)]
                packed.append(pack([article, question + option], max_seq_length,
                                   special.cls, special.sep))
        inputs = {key: value.reshape(len(examples), NUM_CHOICES, max_seq_length)
                  for key, value in _encoder_inputs(packed, max_seq_length).items()}
        labels = None
        if examples and all(e.label is not None for e in examples):
            labels = np.array([e.label for e in examples], np.int32)
        return Features(inputs, labels, [e.guid for e in examples],
                        {"levels": [e.level for e in examples]})

    def predictions(self, outputs):
        return outputs.argmax(-1)

    def score(self, predictions, features):
        return scorers.race_scores(predictions, features.labels, features.extra["levels"])


class TaggingTask(Task):
    """Tagging from ``finetuning_data/<name>/{train,dev,test}.<ext>`` (``word/TAG`` lines,
    CoNLL columns, the tag in the last one, or ``.pos`` files); the tag set is kept in
    ``<task>_tags.json`` of the run dir so dev/test and later runs use the same ids.

    POS (``spans`` off): tags as read, the tag set the training split's; scored by word
    accuracy. Chunking (``spans`` on): BIO tags read as chunks and written as BIOES, the
    tag set that of every split read (as the original, so a chunk type seen only in dev
    has an id); scored by chunk precision, recall and F1 and word accuracy."""

    kind = "tagging"

    def __init__(self, name: str = "pos", folder: str | None = None, spans: bool = False):
        self.name = name
        self.folder = folder or name
        self.spans = spans
        self.tags: list[str] | None = None

    @property
    def num_outputs(self) -> int:
        if self.tags is None:
            raise ValueError(f"{self.name}: tag set unknown; read the training split first")
        return len(self.tags)

    def cache_options(self):
        return {"tags": self.tags, **({"spans": "bioes"} if self.spans else {})}

    def read(self, data_dir, split):
        sentences = readers.read_pos(files.join(data_dir, "finetuning_data", self.folder),
                                     split)
        if self.spans:
            for sentence in sentences:
                if sentence.tags is not None:
                    sentence.tags = scorers.bio_to_bioes(sentence.tags)
        return sentences

    def set_tags(self, sentences: list[readers.TaggedSentence], path: str | None = None,
                 write: bool = True):
        """Fixes the tag set: from ``path`` when it exists, else from ``sentences`` (and
        written to ``path`` unless `write` is off)."""
        if path and files.exists(path):
            self.tags = files.read_json(path)
            return
        self.tags = sorted({t for s in sentences for t in (s.tags or [])})
        if path and write:
            files.write_json(path, self.tags, indent=1)

    def featurize(self, examples, tokenizer, max_seq_length):
        special = tokenizer.special
        words = [w for s in examples for w in s.words]
        pieces = tokenizer.tokenize_each(words)
        index = {t: i for i, t in enumerate(self.tags or [])}
        ids, labels, word_positions, truncated, cursor = [], [], [], [], 0
        labelled = examples and all(s.tags is not None for s in examples)
        for s in examples:
            row, row_labels, positions = [special.cls], [-1], []
            truncated.append(0)
            for w in range(len(s.words)):
                word_pieces = pieces[cursor + w] or [special.unk]  # e.g. a control char
                if len(row) + len(word_pieces) > max_seq_length - 1:
                    truncated[-1] = len(s.words) - w
                    break
                positions.append(len(row))
                tag = -1
                if labelled:
                    if s.tags[w] not in index:
                        raise ValueError(f"{self.name}: sentence {s.guid}: tag {s.tags[w]!r} "
                                         f"is not in the training tag set")
                    tag = index[s.tags[w]]
                row_labels += [tag] + [-1] * (len(word_pieces) - 1)
                row += word_pieces
            cursor += len(s.words)
            row.append(special.sep)
            row_labels.append(-1)
            ids.append(row)
            labels.append(row_labels)
            word_positions.append(positions)
        if sum(truncated):
            logging.warning("%s: %d words beyond max_seq_length=%d are not tagged (scored as "
                            "errors)", self.name, sum(truncated), max_seq_length)
        inputs = {"input_ids": _pad(ids, max_seq_length),
                  "input_mask": _pad([[1] * len(r) for r in ids], max_seq_length),
                  "segment_ids": np.zeros((len(ids), max_seq_length), np.int32),
                  "word_positions": _pad(word_positions, max_seq_length),
                  "word_mask": _pad([[1] * len(p) for p in word_positions], max_seq_length)}
        label_array = None
        if labelled:
            label_array = np.full((len(ids), max_seq_length), -1, np.int32)
            for i, row in enumerate(labels):
                label_array[i, :len(row)] = row
        # per sentence, so that a subset of the split keeps its own count
        return Features(inputs, label_array, [s.guid for s in examples],
                        {"truncated_words": truncated})

    def word_labels(self, features: Features) -> np.ndarray:
        """Labels at the word positions: (examples, max_seq_length), -1 past the words."""
        rows = np.arange(len(features))[:, None]
        tags = features.labels[rows, features.inputs["word_positions"]]
        return np.where(features.inputs["word_mask"] > 0, tags, -1)

    def predictions(self, outputs):
        return outputs  # word-level tag ids (the model decodes)

    def score(self, predictions, features):
        """Accuracy over every word of the split, words cut off beyond max_seq_length
        counting as errors; for chunking also chunk precision, recall and F1 over the
        words within max_seq_length (the cut-off words' tags are not in the features)."""
        labels = self.word_labels(features)
        truncated = int(np.sum(features.extra.get("truncated_words", 0)))
        scores = {"accuracy": scorers.token_accuracy(predictions, labels,
                                                     unpredicted=truncated)}
        if self.spans:
            gold, predicted = [], []
            for i in range(len(features)):
                n = int((labels[i] >= 0).sum())
                gold.append([self.tags[t] for t in labels[i, :n]])
                predicted.append([self.tags[t] if t >= 0 else "O"
                                  for t in np.asarray(predictions[i])[:n]])
            scores.update(scorers.span_scores(gold, predicted))
        return scores


# The original's QA tasks: name -> (format, SQuAD 2.0). Other names: squadv1* read as SQuAD
# 1.1, squad* as SQuAD 2.0, mrqa_* as MRQA (their folder under finetuning_data/).
QA_TASKS = {"squadv1": ("squad", False), "squad": ("squad", True), "newsqa": ("mrqa", False),
            "naturalqs": ("mrqa", False), "triviaqa": ("mrqa", False),
            "searchqa": ("mrqa", False)}


def qa_family(name: str) -> tuple[str, bool] | None:
    """(format, SQuAD 2.0) of a QA task name, None for other tasks."""
    key = name.lower()
    if key in QA_TASKS:
        return QA_TASKS[key]
    if key.startswith("squadv1"):
        return "squad", False
    if key.startswith("squad"):
        return "squad", True
    if key.startswith("mrqa_"):
        return "mrqa", False
    return None


@dataclasses.dataclass(frozen=True)
class QAOptions:
    """The original's QA settings (``configure_finetuning.py``): featurization
    (``max_query_length``, ``doc_stride``), decoding (``n_best_size``,
    ``max_answer_length``, ``joint_prediction``, ``answerable_classifier``) and the
    SQuAD 2.0 no-answer threshold on the null score (``qa_na_threshold``)."""

    max_query_length: int = 64
    doc_stride: int = 128
    n_best_size: int = 20
    max_answer_length: int = 30
    joint_prediction: bool = True
    answerable_classifier: bool = True
    qa_na_threshold: float = -2.75


class QATask(Task):
    """Extractive QA from ``finetuning_data/<name>/``: SQuAD JSON ``{train,dev,test}.json``
    or MRQA ``{train,dev,test}.jsonl[.gz]``. Scores as the official scripts, as fractions
    (the scripts print percentages): SQuAD 1.1 and MRQA ``exact_match`` and ``f1`` (MRQA
    skips questions without a prediction, as ELECTRA's copy of its script); SQuAD 2.0
    ``exact``, ``f1`` with the null score thresholded at ``qa_na_threshold``, their
    ``HasAns_``/``NoAns_`` parts and ``best_exact``/``best_f1`` at the best threshold."""

    kind = "qa"
    test_splits = ("test",)

    def __init__(self, name: str, options: QAOptions | None = None):
        family = qa_family(name)
        if family is None:
            raise ValueError(f"{name!r} is not a QA task")
        self.name = name.lower()
        self.format, self.v2 = family
        self.options = options or QAOptions()

    def cache_options(self):
        return {"format": self.format, "v2": self.v2,
                "max_query_length": self.options.max_query_length,
                "doc_stride": self.options.doc_stride}

    def path(self, data_dir: str, split: str) -> str:
        """The split's file: ``<split>.json`` (SQuAD) or ``<split>.jsonl[.gz]`` (MRQA)."""
        folder = files.join(data_dir, "finetuning_data", self.name)
        if self.format == "squad":
            return files.join(folder, f"{split}.json")
        found = [files.join(folder, f"{split}.{ext}") for ext in ("jsonl", "jsonl.gz")
                 if files.isfile(files.join(folder, f"{split}.{ext}"))]
        if len(found) > 1:
            raise ValueError(f"both {found[0]} and {found[1]} exist; keep one")
        return found[0] if found else files.join(folder, f"{split}.jsonl.gz")

    def read(self, data_dir, split):
        path = self.path(data_dir, split)
        if not files.isfile(path):
            raise FileNotFoundError(f"{path}: no {self.name} {split} file")
        if self.format == "squad":
            return qa.read_squad(path, self.v2, training=split == "train")
        return qa.read_mrqa(path, training=split == "train")

    def read_labelled_test(self, data_dir: str) -> list[qa.QAExample] | None:
        """The test split when every question has its gold answers (SQuAD 2.0: or is
        marked unanswerable), else None (SQuAD's own test sets are hidden)."""
        if not files.isfile(self.path(data_dir, "test")):
            return None
        examples = self.read(data_dir, "test")
        labelled = all(e.answers or e.is_impossible for e in examples)
        return examples if examples and labelled else None

    def featurize(self, examples, tokenizer, max_seq_length):
        out = qa.featurize(examples, tokenizer, max_seq_length, self.options.doc_stride,
                           self.options.max_query_length)
        return Features(out["inputs"], out["labels"], out["guids"], out["extra"])

    def predictions(self, outputs):
        return outputs  # per-window head outputs: decoded per question in `answers`

    def decode_options(self) -> qa.DecodeOptions:
        o = self.options
        return qa.DecodeOptions(o.n_best_size, o.max_answer_length, o.joint_prediction,
                                o.answerable_classifier, self.v2)

    def answers(self, predictions: dict, features: Features
                ) -> tuple[dict[str, str], dict[str, float], dict[str, list]]:
        """(best non-null answer, null score, n-best list) per question id."""
        return qa.decode(predictions, features.extra, self.decode_options())

    def official_predictions(self, answers: dict[str, str], null_scores: dict[str, float]
                             ) -> dict[str, str]:
        """What the official scripts read: SQuAD 2.0 questions whose null score exceeds
        ``qa_na_threshold`` answered with ""."""
        if not self.v2:
            return dict(answers)
        threshold = self.options.qa_na_threshold
        return {qid: ("" if null_scores[qid] > threshold else text)
                for qid, text in answers.items()}

    def score_answers(self, answers: dict[str, str], null_scores: dict[str, float] | None,
                      gold: dict[str, list[str]]) -> dict[str, float]:
        """Official scores of `answers` (fractions; thresholds as they are)."""
        if self.v2:
            scores = qa_eval.squad_v2_scores(gold, answers, null_scores,
                                             self.options.qa_na_threshold
                                             if null_scores is not None else 1.0)
        else:
            scores = qa_eval.squad_v1_scores(gold, answers,
                                             skip_missing=self.format == "mrqa")
        return {key: (float(value) if key.endswith("_thresh") else float(value) / 100.0)
                for key, value in scores.items() if not key.endswith("total")}

    def score(self, predictions, features):
        answers, null_scores, _ = self.answers(predictions, features)
        return self.score_answers(answers, null_scores if self.v2 else None,
                                  qa.gold_answers(features.extra))

    def baseline_scores(self, features: Features) -> dict[str, dict[str, float]]:
        """Scores of the trivial baselines on a featurized split: the context's first
        sentence, and the sentence sharing the most words with the question."""
        extra = features.extra["qa"]
        gold = qa.gold_answers(features.extra)
        return {"first_sentence": self.score_answers(
                    qa.first_sentence_answers(extra["questions"], extra["contexts"]), None,
                    gold),
                "overlap_sentence": self.score_answers(
                    qa.overlap_sentence_answers(extra["questions"], extra["contexts"]), None,
                    gold)}


def classification_task(name: str, purpose: str) -> PairTask:
    """The sentence or sentence-pair classification task `name`; any other kind is an
    error saying that `purpose` needs a classifier."""
    task = get_task(name)
    if not isinstance(task, PairTask) or task.kind != "classification":
        raise ValueError(f"task {name!r} is a {task.kind} task; {purpose} needs a sentence or "
                         f"sentence-pair classification task (sst2_mr, sst5_mr, sst2, cola, "
                         f"mrpc, qqp, mnli, qnli, rte, ...)")
    return task


def get_task(name: str, **options) -> Task:
    """A task by name: a GLUE or sample task, ``race`` (``race_middle``, ``race_high``),
    a tagging task ``pos*`` or ``chunk*`` (its folder under ``finetuning_data/``), or a QA
    task (``squadv1``, ``squad`` for 2.0, ``newsqa``, ``naturalqs``, ``triviaqa``,
    ``searchqa``; ``squadv1*``, ``squad*``, ``mrqa_*``); ``qa_options`` are
    :class:`QAOptions` (or a dict of its fields)."""
    key = name.lower()
    if qa_family(key) is not None:
        qa_options = options.get("qa_options")
        if isinstance(qa_options, dict):
            qa_options = QAOptions(**qa_options)
        return QATask(key, qa_options)
    if key.startswith("chunk"):
        return TaggingTask(key, spans=True)
    if key.startswith("race"):
        levels = {"race": ("middle", "high"), "race_middle": ("middle",),
                  "race_high": ("high",)}.get(key)
        if levels is None:
            raise ValueError(f"unknown RACE task {name!r}; allowed: race, race_middle, "
                             f"race_high")
        return RaceTask(key, levels, source="tfds" if options.get("source") == "tfds"
                        else "json", tfds_data_dir=options.get("tfds_data_dir"))
    if key.startswith("pos"):
        return TaggingTask(key)
    try:
        readers.get_task(name)
    except ValueError:  # readers know the sentence tasks only: name every kind here
        raise ValueError(
            f"unknown task {name!r}; known: "
            f"{', '.join([*readers.GLUE_TASKS, *readers.SAMPLE_TASKS])}, race, race_middle, "
            f"race_high, {', '.join(QA_TASKS)}, squadv1* and squad* (SQuAD 1.1 and 2.0 "
            f"folders), mrqa_*, pos* and chunk* (tagging folders)") from None
    return PairTask(name, source=options.get("source", "tsv"),
                    double_unordered=options.get("double_unordered", True),
                    tfds_data_dir=options.get("tfds_data_dir"))


def majority_predictions(task: Task, train: Features, dev: Features) -> np.ndarray:
    """What a model has to beat, as predictions on `dev`: the training split's most
    frequent label (tag, answer) everywhere, or its mean for regression."""
    if task.kind == "regression":
        value = task.predictions(np.array([[train.labels.mean()]]))[0]
        return np.full(len(dev), value)
    labels = train.labels[train.labels >= 0]
    majority = int(np.bincount(labels.reshape(-1)).argmax())
    if task.kind == "tagging":
        return np.where(dev.inputs["word_mask"] > 0, majority, -1)
    return np.full(len(dev), majority)
