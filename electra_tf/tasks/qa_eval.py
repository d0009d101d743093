"""Extractive-QA scores as the official SQuAD v1.1, SQuAD v2.0 and MRQA scripts compute them.

Scores are percentages (0-100), as those scripts print them, unlike ``scorers``.

* ``squad_v1_scores``: the SQuAD v1.1 script, which the MRQA shared task reuses. Exact match
  and token F1 are maxima over every gold text; a question without a prediction scores 0,
  or with ``skip_missing=True`` is left out of the totals (MRQA's ``skip_no_answer``, as
  ELECTRA calls it).
* ``squad_v2_scores``: the SQuAD v2.0 script, with unanswerable questions, no-answer
  probabilities, the ``HasAns``/``NoAns`` splits and the best no-answer thresholds.

Gold answers are ``{question id: [gold texts]}``, in the order of the dataset (the order
the sums run in); an unanswerable question has an empty list. ``gold_from_squad`` and
``gold_from_mrqa`` build it from the released files. As in the official scripts,
predictions for question ids outside the gold set are ignored.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """The scripts' ``normalize_answer``: lower-case, drop ASCII punctuation, drop the
    words a/an/the, collapse whitespace (in that order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    # Articles become a space, not nothing, so their neighbours never fuse into one token.
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, pred: str) -> int:
    """1 if both texts normalize to the same string. Both scripts' exact match (v1.1
    ``exact_match_score``, v2.0 ``compute_exact``): they agree, also on empty strings."""
    return int(normalize_answer(gold) == normalize_answer(pred))


def _overlap_f1(gold_tokens: list[str], pred_tokens: list[str]) -> float:
    # A bag-of-tokens overlap: a token repeated in both counts min(repeats) times.
    num_same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(gold: str, pred: str) -> float:
    """SQuAD v1.1 / MRQA ``f1_score``: F1 of the normalized tokens. Two texts without
    tokens share none, so they score 0 (``f1_v2`` gives 1)."""
    return _overlap_f1(normalize_answer(gold).split(), normalize_answer(pred).split())


def f1_v2(gold: str, pred: str) -> float:
    """SQuAD v2.0 ``compute_f1``: as ``token_f1``, except that when either text has no
    tokens the score is 1 if both have none and 0 otherwise (a correct no-answer)."""
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(pred).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    return _overlap_f1(gold_tokens, pred_tokens)


def squad_v1_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str],
                    skip_missing: bool = False) -> dict[str, float]:
    """SQuAD v1.1 ``evaluate`` (``skip_missing=False``) or MRQA ``evaluate`` with
    ``skip_no_answer=True`` (``skip_missing=True``): ``{"exact_match", "f1"}`` in percent."""
    exact = f1 = 0.0
    total = 0
    for qid, gold_texts in gold.items():
        if qid not in predictions:
            if not skip_missing:
                total += 1  # counted, scoring 0
            continue
        if not gold_texts:
            # The script takes max() over an empty list here and crashes.
            raise ValueError(f"question {qid!r} has no gold answer; SQuAD v1.1 and MRQA "
                             "scoring needs at least one (use squad_v2_scores)")
        total += 1
        pred = predictions[qid]
        # Accumulated in dataset order with +=, as the script does, for identical floats.
        exact += max(exact_match(g, pred) for g in gold_texts)
        f1 += max(token_f1(g, pred) for g in gold_texts)
    if total == 0:
        raise ValueError("no question to score (empty gold set, or no prediction for any "
                         "question with skip_missing=True)")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _split_scores(exact: Mapping[str, float], f1: Mapping[str, float],
                  qids: list[str]) -> dict[str, float]:
    # The script's make_eval_dict: plain sum() in dataset order, then percent.
    total = len(qids)
    return {"exact": 100.0 * sum(exact[q] for q in qids) / total,
            "f1": 100.0 * sum(f1[q] for q in qids) / total,
            "total": total}


def _best_thresh(raw: Mapping[str, float], predictions: Mapping[str, str],
                 na_probs: Mapping[str, float],
                 has_ans: Mapping[str, bool]) -> tuple[float, float]:
    # The script's find_best_thresh: starting from "answer nothing" (every unanswerable
    # question right), walk the questions by rising no-answer probability and add what
    # answering each one gains; keep the best running total and the probability there.
    # Note the start counts every unanswerable gold question, scored or not, as it does.
    best = cur = sum(1 for q in has_ans if not has_ans[q])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):  # stable: ties keep dict order
        if qid not in raw:
            continue
        if has_ans[qid]:
            cur += raw[qid]
        elif predictions[qid]:
            cur -= 1  # answered an unanswerable question
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(raw), best_thresh


def squad_v2_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str],
                    na_probs: Mapping[str, float] | None = None,
                    na_prob_thresh: float = 1.0) -> dict[str, float]:
    """SQuAD v2.0 evaluation: ``exact``, ``f1``, ``total``; ``HasAns_*`` / ``NoAns_*`` when
    such questions were scored; ``best_exact(_thresh)``, ``best_f1(_thresh)`` when
    ``na_probs`` is given. An empty prediction means "no answer".

    A question whose no-answer probability exceeds ``na_prob_thresh`` counts as answered
    with no answer. Questions without a prediction are skipped, as the script skips them.
    (The script then crashes computing the splits; here the splits cover the scored
    questions only.)
    """
    has_ans = {qid: bool(texts) for qid, texts in gold.items()}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, texts in gold.items():
        if qid not in predictions:
            continue
        # Gold texts that normalize to nothing are dropped; none left means "no answer",
        # although has_ans above still counts the question as answerable.
        golds = [t for t in texts if normalize_answer(t)] or [""]
        pred = predictions[qid]
        exact_raw[qid] = max(exact_match(g, pred) for g in golds)
        f1_raw[qid] = max(f1_v2(g, pred) for g in golds)
    if not exact_raw:
        raise ValueError("no question to score (empty gold set or no prediction for any "
                         "gold question)")

    probs = dict.fromkeys(predictions, 0.0) if na_probs is None else na_probs
    missing = [qid for qid in exact_raw if qid not in probs]
    if missing:
        raise ValueError(f"na_probs has no probability for {len(missing)} scored "
                         f"question(s), e.g. {missing[0]!r}")

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {qid: float(not has_ans[qid]) if probs[qid] > na_prob_thresh else score
                for qid, score in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)
    out = _split_scores(exact, f1, list(exact))
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid in gold if qid in exact and has_ans[qid] == wanted]
        if qids:
            out.update({f"{name}_{k}": v for k, v in _split_scores(exact, f1, qids).items()})
    if na_probs is not None:
        # The best thresholds are searched on the raw scores, whatever na_prob_thresh is.
        out["best_exact"], out["best_exact_thresh"] = _best_thresh(
            exact_raw, predictions, na_probs, has_ans)
        out["best_f1"], out["best_f1_thresh"] = _best_thresh(
            f1_raw, predictions, na_probs, has_ans)
    return out


def gold_from_squad(dataset_json: Mapping) -> dict[str, list[str]]:
    """``{id: [answer texts]}`` from a SQuAD v1.1/v2.0 file's json (``data`` →
    ``paragraphs`` → ``qas``); v2.0 unanswerable questions get ``[]``."""
    return {qa["id"]: [a["text"] for a in qa["answers"]]
            for article in dataset_json["data"]
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]}


def gold_from_mrqa(records: Iterable[Mapping]) -> dict[str, list[str]]:
    """``{qid: answers}`` from MRQA records: the json lines of an MRQA file (a ``header``
    line, then contexts with ``qas``), or question records with ``qid`` and ``answers``."""
    gold: dict[str, list[str]] = {}
    for record in records:
        if "header" in record:
            continue
        for qa in record["qas"] if "qas" in record else [record]:
            gold[qa["qid"]] = list(qa["answers"])
    return gold
