"""Scores of the finetuning tasks, the GLUE average and GLUE submission files.

Every metric is a fraction, not a percentage: accuracy and F1 in [0, 1], Matthews
correlation, Pearson and Spearman in [-1, 1]. Metric names: ``accuracy``, ``f1``,
``mcc``, ``pearson``, ``spearman``. Classification predictions and labels may be label
ids (indices into the task's label list, as the heads predict) or label strings.
Correlations of a constant series are undefined; they count as 0.0 (no correlation), as
scikit-learn does for the Matthews correlation, so a collapsed model does not turn a
whole results table into NaN.

Submissions: ``write_glue_submission`` writes ``<out_dir>/<TASK>.tsv`` (``index<TAB>
prediction``, label names as the GLUE server expects: 0/1 for CoLA, SST-2, MRPC, QQP and
WNLI, entailment/neutral/contradiction for MNLI and AX, entailment/not_entailment for QNLI
and RTE, STS-B scores clipped to [0, 5] with 3 decimals), ``evaluate_predictions`` scores
such a file against a labelled TSV.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from electra_tf import files
from electra_tf.tasks import readers

# ----------------------------------------------------------------------------- metrics


def _check(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0] if predictions.ndim else 0} predictions for "
                         f"{labels.shape[0] if labels.ndim else 0} labels "
                         f"(shapes {predictions.shape} vs {labels.shape})")
    if labels.size == 0:
        raise ValueError("no examples to score")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    predictions, labels = _check(predictions, labels)
    return float(np.mean(predictions == labels))


def f1_accuracy(predictions, labels) -> dict[str, float]:
    """Binary F1 of the positive class (id 1: paraphrase, duplicate) and accuracy."""
    from sklearn.metrics import f1_score

    predictions, labels = _check(predictions, labels)
    return {"f1": float(f1_score(labels, predictions, pos_label=1, average="binary",
                                 zero_division=0.0)),
            "accuracy": float(np.mean(predictions == labels))}


def classification_scores(predictions, labels) -> dict[str, float]:
    """Accuracy, micro F1 and macro F1 over the classes present (the TLM paper's
    metrics; micro F1 equals accuracy for single-label classification)."""
    from sklearn.metrics import f1_score

    predictions, labels = _check(predictions, labels)
    return {"accuracy": float(np.mean(predictions == labels)),
            "micro_f1": float(f1_score(labels, predictions, average="micro")),
            "macro_f1": float(f1_score(labels, predictions, average="macro",
                                       zero_division=0.0))}


def matthews_corr(predictions, labels) -> float:
    from sklearn.metrics import matthews_corrcoef

    predictions, labels = _check(predictions, labels)
    return float(matthews_corrcoef(labels, predictions))


def _correlation(function, predictions, labels) -> float:
    from scipy.stats import ConstantInputWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        value = float(function(predictions, labels)[0])
    return 0.0 if math.isnan(value) else value


def pearson_spearman(predictions, labels) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    predictions, labels = _check(np.asarray(predictions, np.float64),
                                 np.asarray(labels, np.float64))
    if labels.size < 2:
        raise ValueError("correlations need at least 2 examples")
    return {"pearson": _correlation(pearsonr, predictions, labels),
            "spearman": _correlation(spearmanr, predictions, labels)}


def token_accuracy(predictions, labels, ignore_label: int = -1, unpredicted: int = 0) -> float:
    """Accuracy over words: positions whose label is `ignore_label` (padding, non-first
    sub-tokens) do not count; `unpredicted` more words (cut off beyond max_seq_length)
    count as errors. Accepts padded arrays or lists of per-sentence lists."""
    if isinstance(labels, list | tuple) and labels and not np.isscalar(labels[0]):
        if len(predictions) != len(labels):
            raise ValueError(f"{len(predictions)} predicted sentences for {len(labels)}")
        for i, (p, t) in enumerate(zip(predictions, labels, strict=True)):
            if len(p) != len(t):
                raise ValueError(f"sentence {i}: {len(p)} predictions for {len(t)} labels")
        predictions = [x for sentence in predictions for x in sentence]
        labels = [x for sentence in labels for x in sentence]
    predictions, labels = _check(predictions, labels)
    predictions, labels = predictions.ravel(), labels.ravel()
    keep = labels != ignore_label
    if unpredicted < 0:
        raise ValueError(f"unpredicted={unpredicted} must be >= 0")
    if not keep.any() and not unpredicted:
        raise ValueError("no labelled words to score")
    correct = int(np.sum(predictions[keep] == labels[keep]))
    return correct / (int(keep.sum()) + int(unpredicted))


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each chunk in a BIO or BIOES tag sequence, as conlleval
    (CoNLL-2000's scorer) reads them: a chunk also ends where the type changes, and an
    I- tag after O starts one (seqeval's default mode)."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, first, last) for kind, first, last in get_entities(list(tags))]


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO chunk tags as BIOES (the original trains chunking on BIOES): a one-word chunk
    S-, a longer one B- I-... E-; O stays."""
    out = ["O"] * len(tags)
    for kind, first, last in chunks(tags):
        if first == last:
            out[first] = f"S-{kind}"
            continue
        out[first] = f"B-{kind}"
        out[first + 1:last] = [f"I-{kind}"] * (last - first - 1)
        out[last] = f"E-{kind}"
    return out


def span_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
                ) -> dict[str, float]:
    """Chunk precision, recall and F1 over sentences of BIO/BIOES tags (seqeval, micro
    average over chunks, as conlleval); 0 when nothing is predicted or nothing is gold."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)}")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(g)}")
    gold, predicted = [list(g) for g in gold], [list(p) for p in predicted]
    with warnings.catch_warnings():  # seqeval warns when a side has no chunk
        warnings.simplefilter("ignore")
        return {"precision": float(precision_score(gold, predicted, zero_division=0)),
                "recall": float(recall_score(gold, predicted, zero_division=0)),
                "f1": float(f1_score(gold, predicted, zero_division=0))}


# ----------------------------------------------------------------------------- by task

_MNLI_NAMES = {"mnli": "mnli", "mnli-m": "mnli", "mnli_matched": "mnli", "mnli-mm": "mnli",
               "mnli_mismatched": "mnli", "ax": "mnli", "diagnostic": "mnli"}


def _spec(task: str) -> readers.GlueTask | None:
    try:
        return readers.get_task(_MNLI_NAMES.get(task.lower(), task))
    except ValueError:
        return None


def _kind(task: str) -> str:
    name = task.lower()
    if _spec(task) is not None:
        return "glue"
    if name.startswith("race"):
        return "race"
    if name.startswith("pos") or name in ("ptb", "tagging"):
        return "pos"
    raise ValueError(f"unknown task {task!r}: not a GLUE or sample task, race* or pos*")


def label_ids(spec: readers.GlueTask, values, source: str = "") -> np.ndarray:
    """Label ids from ids or label strings of a classification task."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        ids = values.astype(np.int64)
        bad = ids[(ids < 0) | (ids >= len(spec.labels))]
        if bad.size:
            raise ValueError(f"{source}label id {bad[0]} out of range for {spec.name} "
                             f"({len(spec.labels)} labels)")
        return ids
    if values.dtype.kind in "USO":
        index = {label: i for i, label in enumerate(spec.labels)}
        try:
            return np.array([index[str(v)] for v in values.ravel()], np.int64)
        except KeyError as e:
            raise ValueError(f"{source}label {e.args[0]!r} is not one of {spec.name}'s labels "
                             f"{list(spec.labels)}") from None
    raise ValueError(f"{source}{spec.name} predictions must be label ids or label names, got "
                     f"dtype {values.dtype}")


def metrics_of(task: str) -> tuple[str, ...]:
    """The metrics `score` reports for `task`."""
    kind = _kind(task)
    return _spec(task).metrics if kind == "glue" else ("accuracy",)


def score(task: str, predictions, labels) -> dict[str, float]:
    """The task's metrics: GLUE/sample tasks by their spec (MNLI variants and AX count as
    MNLI), ``race*`` accuracy, ``pos*`` word accuracy (label -1 ignored)."""
    kind = _kind(task)
    if kind == "race":
        return {"accuracy": accuracy(predictions, labels)}
    if kind == "pos":
        return {"accuracy": token_accuracy(predictions, labels)}
    spec = _spec(task)
    if spec.is_regression:
        return pearson_spearman(predictions, labels)
    predictions, labels = label_ids(spec, predictions), label_ids(spec, labels)
    result = {}
    for metric in spec.metrics:
        if metric == "accuracy":
            result["accuracy"] = accuracy(predictions, labels)
        elif metric == "f1":
            result["f1"] = f1_accuracy(predictions, labels)["f1"]
        elif metric == "mcc":
            result["mcc"] = matthews_corr(predictions, labels)
        else:
            raise ValueError(f"{spec.name}: unknown metric {metric!r}")
    return result


def race_scores(predictions, labels, levels: Sequence[str]) -> dict[str, float]:
    """RACE accuracy over all questions and per level (``accuracy_middle``, ...)."""
    predictions, labels = _check(predictions, labels)
    levels = np.asarray(levels)
    result = {"accuracy": accuracy(predictions, labels)}
    for level in readers.RACE_LEVELS:
        keep = levels == level
        if keep.any():
            result[f"accuracy_{level}"] = accuracy(predictions[keep], labels[keep])
    return result


# ----------------------------------------------------------------------------- GLUE score

GLUE_SCORE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
_MATCHED = ("mnli", "mnli-m", "mnli_matched")
_MISMATCHED = ("mnli-mm", "mnli_mismatched")


def task_score(task: str, metrics: Mapping[str, float]) -> float:
    """One task's GLUE score: the mean of its metrics (MRPC/QQP (F1 + acc) / 2, STS-B
    (Pearson + Spearman) / 2); extra keys in `metrics` (loss, ...) are ignored."""
    names = metrics_of(task)
    missing = [name for name in names if name not in metrics]
    if missing:
        raise ValueError(f"{task}: results lack {', '.join(missing)} (have "
                         f"{', '.join(metrics)})")
    return float(np.mean([metrics[name] for name in names]))


def glue_score(results: Mapping[str, Mapping[str, float]],
               exclude: Sequence[str] = ("wnli",)) -> float:
    """The GLUE average over the 9 tasks minus `exclude`, as the leaderboard computes it.

    Each task scores the mean of its metrics (``task_score``); MNLI is one task scoring
    the mean of its matched and mismatched accuracies (give ``mnli``/``mnli-m`` and
    ``mnli-mm``/``mnli_mismatched`` entries; with the matched one only, that is used); the
    diagnostic set (AX) does not count. The score is the unweighted mean of the task
    scores. This reproduces the leaderboard's numbers: BERT-Large's test results (CoLA
    60.5, SST-2 94.9, MRPC 89.3/85.4, STS-B 87.6/86.5, QQP 72.1/89.3, MNLI 86.7/85.9,
    QNLI 92.7, RTE 70.1, WNLI 65.1) give its published 80.5 this way, not with MNLI-m and
    -mm as two entries (81.1).

    ``exclude`` defaults to WNLI, as the ELECTRA paper's dev-set GLUE score leaves it
    out; pass ``exclude=()`` for the leaderboard's 9-task average. A task that is neither
    present nor excluded is an error. Fractions in, a fraction out.
    """
    by_name = {name.lower(): metrics for name, metrics in results.items()}
    excluded = {name.lower() if name.lower() in ("ax", "diagnostic")
                else "mnli" if name.lower() in _MNLI_NAMES else readers.get_task(name).name
                for name in exclude}
    scores = {}
    for task in GLUE_SCORE_TASKS:
        if task in excluded:
            continue
        if task == "mnli":
            matched = [by_name[n] for n in _MATCHED if n in by_name]
            mismatched = [by_name[n] for n in _MISMATCHED if n in by_name]
            parts = [task_score("mnli", m[0]) for m in (matched, mismatched) if m]
            if parts and not matched:
                raise ValueError("results have MNLI mismatched but not matched")
        else:
            entry = next((by_name[n] for n in by_name
                          if _spec(n) is not None and _spec(n).name == task
                          and n not in _MNLI_NAMES), None)
            parts = [task_score(task, entry)] if entry is not None else []
        if not parts:
            raise ValueError(f"results lack {task} (have {', '.join(results)}); pass "
                             f"exclude=(..., {task!r}) to score without it")
        scores[task] = float(np.mean(parts))
    return float(np.mean(list(scores.values())))


# ----------------------------------------------------------------------------- submissions

SUBMISSION_FILES = {
    "cola": "CoLA.tsv", "sst2": "SST-2.tsv", "mrpc": "MRPC.tsv", "stsb": "STS-B.tsv",
    "qqp": "QQP.tsv", "mnli": "MNLI-m.tsv", "mnli-m": "MNLI-m.tsv",
    "mnli_matched": "MNLI-m.tsv", "mnli-mm": "MNLI-mm.tsv", "mnli_mismatched": "MNLI-mm.tsv",
    "qnli": "QNLI.tsv", "rte": "RTE.tsv", "wnli": "WNLI.tsv", "ax": "AX.tsv",
    "diagnostic": "AX.tsv",
}
_HEADER = ("index", "prediction")


def submission_file(task: str) -> str:
    """``MNLI-m.tsv``, ``STS-B.tsv``, ...; other tasks ``<task>.tsv``."""
    key = task.lower()
    if key in SUBMISSION_FILES:
        return SUBMISSION_FILES[key]
    return SUBMISSION_FILES.get(readers.get_task(task).name, f"{task}.tsv")


def _prediction_strings(task: str, predictions) -> list[str]:
    spec = _spec(task)
    if spec is None:
        raise ValueError(f"unknown task {task!r} for a GLUE submission")
    if spec.is_regression:
        values = np.asarray(predictions, np.float64)
        if spec.name == "stsb":  # the benchmark's scores are 0..5
            values = np.clip(values, 0.0, 5.0)
        return [f"{v:.3f}" for v in values]
    return [spec.labels[i] for i in label_ids(spec, predictions)]


def write_glue_submission(task: str, ids: Sequence, predictions, out_dir: str) -> str:
    """Write ``<out_dir>/<TASK>.tsv`` (``index<TAB>prediction``) atomically; its path.

    `ids` are the test files' index values (``readers.example_index(guid)``);
    predictions label ids, label names or (STS-B) scores.
    """
    ids = [str(i) for i in ids]
    lines = _prediction_strings(task, predictions)
    if len(ids) != len(lines):
        raise ValueError(f"{task}: {len(ids)} ids for {len(lines)} predictions")
    seen = set()
    for example_id in ids:
        if example_id in seen or not example_id or "\t" in example_id:
            raise ValueError(f"{task}: duplicate or malformed id {example_id!r}")
        seen.add(example_id)
    text = "".join(f"{a}\t{b}\n" for a, b in [_HEADER, *zip(ids, lines, strict=True)])
    path = files.join(out_dir, submission_file(task))
    files.atomic_write(path, text)
    return path


def _read_two_columns(path: str, header: tuple[str, ...]) -> dict[str, str]:
    """A headed ``index<TAB>value`` file as {index: value}, in file order."""
    rows: dict[str, str] = {}
    with files.open_file(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if line == 1:
                if tuple(row) not in header:
                    raise ValueError(f"{path}:1: expected the header "
                                     f"{' or '.join('<TAB>'.join(h) for h in header)}, got "
                                     f"{'<TAB>'.join(row)!r}")
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 tab-separated fields, got "
                                 f"{len(row)}")
            if row[0] in rows:
                raise ValueError(f"{path}:{line}: duplicate index {row[0]!r}")
            rows[row[0]] = row[1]
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def read_predictions(path: str) -> dict[str, str]:
    """A submission file as {index: prediction string}, in file order."""
    return _read_two_columns(path, (_HEADER,))


def _read_gold(task: str, path: str) -> dict[str, str | float]:
    with files.open_file(path, encoding="utf-8-sig") as f:
        first = f.readline().rstrip("\r\n").split("\t")
    if first == ["index", "label"]:
        return _read_two_columns(path, (("index", "label"),))
    spec = _spec(task)
    split = "dev_mismatched" if task.lower() in _MISMATCHED else "dev"
    examples = readers.read_glue_file(spec, path, split)
    if any(example.label is None for example in examples):
        raise ValueError(f"{path}: unlabelled (read in the {spec.name} {split} layout)")
    return {readers.example_index(e.guid): e.label for e in examples}


def evaluate_predictions(task: str, predictions_path: str,
                         labelled_tsv_path: str) -> dict[str, float]:
    """Score a submission file against a labelled TSV, matching rows by index.

    The labelled file is either ``index<TAB>label`` (with that header) or a file in the
    task's dev layout, whose ids are its 0-based data rows (or its index column).
    """
    spec = _spec(task)
    if spec is None:
        raise ValueError(f"unknown task {task!r}")
    predicted = read_predictions(predictions_path)
    gold = _read_gold(task, labelled_tsv_path)
    missing = [i for i in gold if i not in predicted]
    extra = [i for i in predicted if i not in gold]
    if missing or extra:
        raise ValueError(
            f"ids of {predictions_path} and {labelled_tsv_path} differ: {len(missing)} "
            f"missing from the predictions (e.g. {missing[:3]}), {len(extra)} not in the "
            f"labels (e.g. {extra[:3]})")
    order = list(gold)
    source = f"{predictions_path}: "
    if spec.is_regression:
        try:
            values = [float(predicted[i]) for i in order]
        except ValueError as e:
            raise ValueError(f"{source}{e}") from None
        return score(task, values, [float(gold[i]) for i in order])
    return score(task, label_ids(spec, [predicted[i] for i in order], source),
                 label_ids(spec, [str(gold[i]) for i in order], f"{labelled_tsv_path}: "))


# What picks the best epoch of a span task: EM and F1 for QA, F1 for chunking.
SELECTION_METRICS = ("exact_match", "exact", "f1")


def dev_score(scores: dict) -> float:
    """One number to pick the best epoch and trial by, from ``{task: {split: metrics}}``:
    the mean task score (GLUE's two-metric tasks count their mean, MNLI the mean of
    matched and mismatched; QA the mean of EM and F1, chunking its F1; other tasks the
    mean of their metrics)."""
    values = []
    for task, splits in scores.items():
        for metrics in splits.values():
            span_task = any(m in metrics for m in ("exact_match", "exact", "precision"))
            chosen = [metrics[m] for m in SELECTION_METRICS if m in metrics and span_task]
            values.append(task_score(task, metrics) if task in GLUE_SCORE_TASKS
                          else float(np.mean(chosen)) if chosen
                          else float(np.mean(list(metrics.values()))))
    return float(np.mean(values)) if values else 0.0
