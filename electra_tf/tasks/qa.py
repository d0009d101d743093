"""Extractive question answering as the original ``finetune/qa``: SQuAD 1.1/2.0 and MRQA
readers, featurization into overlapping document windows, and n-best span decoding.

* **Reading.** SQuAD JSON (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``) and the
  MRQA shared task's ``.jsonl`` / ``.jsonl.gz`` (a ``{"header": ...}`` line, then one
  context with its ``qas`` per line). A context is split into words at whitespace, each
  character mapped to its word; a training answer becomes the words its characters
  cover. As in the original, a training question whose answer cannot be found again in
  those words (lower-cased) is dropped and counted; dev questions are all kept.
* **Featurization.** ``[CLS] question [SEP] window [SEP]``: the question cut to
  ``max_query_length`` WordPieces, the context's WordPieces (each word tokenized alone)
  cut into windows of ``max_seq_length - len(question) - 3`` pieces that start
  ``doc_stride`` pieces apart. A training answer is first moved to the WordPieces that
  spell it exactly (``(1895-1943)`` -> ``1895``); a window that does not hold the whole
  answer, and every window of an unanswerable question, points at [CLS] (position 0).
* **Decoding.** Per question over all its windows: the top start and end positions,
  kept when both lie in the window's context, the start is in the window where it has
  the most context on both sides, and the span is at most ``max_answer_length`` pieces;
  ranked by start + end score; each span's text projected back onto the original
  characters (``final_text``). For SQuAD 2.0 the question's null score is the lowest
  over its windows of the answerability logit (or of the [CLS] start + end score).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import math
import re
import zlib
from collections.abc import Iterable

import numpy as np
from absl import logging

from electra_tf import files
from electra_tf.tokenization import basic_tokenize


@dataclasses.dataclass
class QAExample:
    """One question on one context.

    ``answers`` holds the gold answer texts scored against (empty for an unanswerable
    question); ``answer_text`` at character ``answer_start`` is the span trained on (the
    first SQuAD answer, MRQA's first detected span; None without one)."""

    guid: str
    question: str
    context: str
    answers: list[str]
    answer_text: str | None = None
    answer_start: int | None = None
    is_impossible: bool = False


# ----------------------------------------------------------------------------- reading

def _is_whitespace(c: str) -> bool:
    # The original's split: no other Unicode space separates words here.
    return c in " \t\r\n" or ord(c) == 0x202F


def context_words(context: str) -> tuple[list[str], list[int]]:
    """(words, word index of each character): the context split at whitespace."""
    words: list[str] = []
    char_to_word: list[int] = []
    previous_space = True
    for c in context:
        if _is_whitespace(c):
            previous_space = True
        else:
            if previous_space:
                words.append(c)
            else:
                words[-1] += c
            previous_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


def answer_words(example: QAExample, words: list[str], char_to_word: list[int]
                 ) -> tuple[int, int] | None:
    """(first, last) word of the example's training answer, or None when there is none,
    its characters run past the context or its text is not found again in those words
    (the original drops such training questions)."""
    text, start = example.answer_text, example.answer_start
    if not text or start is None or example.is_impossible:
        return None
    end = start + len(text) - 1
    if end >= len(char_to_word):
        return None
    first, last = char_to_word[start], char_to_word[end]
    found = " ".join(words[first:last + 1]).lower()
    if found.find(" ".join(text.split()).lower()) == -1:
        return None
    return first, last


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _string(value, source: str, path: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_where(source, path)}: {what} is {type(value).__name__}, "
                         f"expected a string")
    return value


def _list(value, source: str, path: str, what: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{_where(source, path)}: {what} is {type(value).__name__}, "
                         f"expected a list")
    return value


def _offset(value, context: str, source: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(context):
        raise ValueError(f"{_where(source, where)}: answer start {value!r} is not a character "
                         f"offset in the context (0..{len(context) - 1})")
    return value


def _squad_answers(qa: dict, context: str, source: str, where: str
                   ) -> tuple[list[str], str | None, int | None]:
    """(gold texts, training text, its start) of a SQuAD question."""
    texts, start = [], None
    for a, answer in enumerate(_list(qa.get("answers", []), source, where, "'answers'")):
        at = f"{where}.answers[{a}]"
        if not isinstance(answer, dict) or "text" not in answer:
            raise ValueError(f"{_where(source, at)}: expected an object with 'text' and "
                             f"'answer_start'")
        texts.append(_string(answer["text"], source, at, "'text'"))
        if a == 0:
            start = _offset(answer.get("answer_start"), context, source, at)
    return texts, (texts[0] if texts else None), start


def _mrqa_answers(qa: dict, context: str, source: str, where: str
                  ) -> tuple[list[str], str | None, int | None]:
    """(gold texts, training text, its start) of an MRQA question: the gold strings of
    ``answers``, trained on the first of ``detected_answers``."""
    gold = [_string(a, source, where, "an answer")
            for a in _list(qa.get("answers", []), source, where, "'answers'")]
    detected = _list(qa["detected_answers"], source, where, "'detected_answers'")
    if not detected:
        return gold, None, None
    first = detected[0]
    spans = first.get("char_spans") if isinstance(first, dict) else None
    if (not isinstance(first, dict) or "text" not in first or not isinstance(spans, list)
            or not spans or not isinstance(spans[0], list) or not spans[0]):
        raise ValueError(f"{_where(source, where)}.detected_answers[0]: expected an object "
                         f"with 'text' and 'char_spans' ([[start, end], ...])")
    text = _string(first["text"], source, f"{where}.detected_answers[0]", "'text'")
    start = _offset(spans[0][0], context, source, f"{where}.detected_answers[0]")
    return gold or [text], text, start


def _paragraph_examples(paragraph, source: str, path: str, v2: bool, mrqa: bool = False
                        ) -> list[QAExample]:
    """The questions of one SQuAD paragraph or MRQA line (`mrqa`), checked."""
    if not isinstance(paragraph, dict):
        raise ValueError(f"{_where(source, path)}: expected an object with 'context' and "
                         f"'qas', got {type(paragraph).__name__}")
    for key in ("context", "qas"):
        if key not in paragraph:
            raise ValueError(f"{_where(source, path)}: no {key!r}")
    context = _string(paragraph["context"], source, path, "'context'")
    examples = []
    for q, qa in enumerate(_list(paragraph["qas"], source, path, "'qas'")):
        where = f"{path}.qas[{q}]" if path else f"qas[{q}]"
        if not isinstance(qa, dict):
            raise ValueError(f"{_where(source, where)}: expected an object, got "
                             f"{type(qa).__name__}")
        key = "qid" if mrqa else "id"  # the ids the official scripts score by
        if key not in qa or "question" not in qa:
            raise ValueError(f"{_where(source, where)}: needs 'question' and '{key}'")
        question = _string(qa["question"], source, where, "'question'")
        read = _mrqa_answers if "detected_answers" in qa else _squad_answers
        gold, text, start = read(qa, context, source, where)
        impossible = v2 and bool(qa.get("is_impossible", not gold))
        if impossible:
            gold, text, start = [], None, None
        examples.append(QAExample(str(qa[key]), question, context, gold, text, start,
                                  impossible))
    return examples


def _keep_trainable(examples: list[QAExample], source: str) -> list[QAExample]:
    kept = []
    for example in examples:
        if example.is_impossible or answer_words(example, *context_words(example.context)):
            kept.append(example)
    if len(kept) < len(examples):
        logging.warning("%s: %d of %d training questions dropped: no answer, or one not "
                        "found again in the context's words (as the original drops them)", source,
                        len(examples) - len(kept), len(examples))
    return kept


def _check_ids(examples: list[QAExample], source: str) -> None:
    seen = set()
    for example in examples:
        if example.guid in seen:
            raise ValueError(f"{source}: question id {example.guid!r} appears twice")
        seen.add(example.guid)


def read_squad(path: str, v2: bool, training: bool) -> list[QAExample]:
    """The questions of a SQuAD 1.1 / 2.0 JSON file; with `training` those whose answer
    cannot be found again are dropped (logged)."""
    data = files.read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: expected SQuAD JSON, an object with a 'data' list")
    examples = []
    for a, article in enumerate(data["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise ValueError(f"{path}: data[{a}]: expected an object with a 'paragraphs' list")
        for p, paragraph in enumerate(article["paragraphs"]):
            examples += _paragraph_examples(paragraph, path, f"data[{a}].paragraphs[{p}]", v2)
    _check_ids(examples, path)
    return _keep_trainable(examples, path) if training else examples


def read_mrqa(path: str, training: bool) -> list[QAExample]:
    """The questions of an MRQA ``.jsonl`` or ``.jsonl.gz`` file (the header line skipped);
    errors name the file and line."""
    data = files.read_bytes(path)
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a whole gzip file ({e})") from None
    examples = []
    for line_no, record in files.json_lines(files.decode_text(data, path), path):
        if isinstance(record, dict) and "header" in record:
            continue
        examples += _paragraph_examples(record, f"{path}:{line_no}", "", v2=False, mrqa=True)
    if not examples:
        raise ValueError(f"{path}: no questions (expected MRQA lines with 'context' and 'qas')")
    _check_ids(examples, path)
    return _keep_trainable(examples, path) if training else examples


# ----------------------------------------------------------------------------- features

def _improve_span(pieces: list[int], start: int, end: int, answer: list[int]
                  ) -> tuple[int, int]:
    """The sub-span of pieces[start..end] that spells the tokenized answer exactly, if
    any (the longest such from the earliest start), else (start, end)."""
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if pieces[new_start:new_end + 1] == answer:
                return new_start, new_end
    return start, end


def doc_windows(num_pieces: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window of at most `room` pieces, `stride` apart, the last
    one ending at the document's end."""
    windows, start = [], 0
    while start < num_pieces:
        length = min(num_pieces - start, room)
        windows.append((start, length))
        if start + length == num_pieces:
            break
        start += min(length, stride)
    return windows


def max_context(windows: list[tuple[int, int]], window: int, position: int) -> bool:
    """Whether `window` gives the piece at `position` its most context: the largest
    min(left, right) + 0.01 * window length, the first window on ties."""
    best, best_window = None, None
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if best is None or score > best:
                best, best_window = score, index
    return best_window == window



def featurize(examples: list[QAExample], tokenizer, max_seq_length: int, doc_stride: int,
              max_query_length: int) -> dict:
    """Model inputs, labels and what decoding needs, for `examples`.

    Returns ``{"inputs": {input_ids, input_mask, segment_ids}, "labels": (n, 3) int32
    [start, end, is_impossible], "guids", "extra"}``: one row per window. ``extra`` holds
    per window its question (``example_index``), where its context starts in the
    sequence (``doc_offset``) and in the context's pieces (``doc_start``, ``doc_length``),
    and under ``qa`` the contexts (words, pieces, each piece's word) and questions (id,
    text, context, gold answers, unanswerable) with the casing, for decoding and scoring."""
    cls, sep = tokenizer.special.cls, tokenizer.special.sep
    contexts: dict[str, int] = {}
    for example in examples:
        contexts.setdefault(example.context, len(contexts))
    context_list = list(contexts)
    split = [context_words(c) for c in context_list]
    all_words = [w for words, _ in split for w in words]
    word_pieces = tokenizer.tokenize_each(all_words)
    pieces, piece_word, word_first = [], [], []
    cursor = 0
    for words, _ in split:
        ids, owner, first = [], [], []
        for w in range(len(words)):
            first.append(len(ids))
            ids += word_pieces[cursor + w]
            owner += [w] * len(word_pieces[cursor + w])
        cursor += len(words)
        pieces.append(ids)
        piece_word.append(owner)
        word_first.append(first)
    questions = tokenizer.tokenize_each([e.question for e in examples])
    answers = tokenizer.tokenize_each([e.answer_text or "" for e in examples])

    rows, labels, extra = [], [], collections.defaultdict(list)
    guids = []
    for index, example in enumerate(examples):
        c = contexts[example.context]
        words, char_to_word = split[c]
        ids, first = pieces[c], word_first[c]
        query = questions[index][:max_query_length]
        room = max_seq_length - len(query) - 3
        if room < 1:
            raise ValueError(f"max_seq_length={max_seq_length} leaves no room for the context "
                             f"after a {len(query)}-piece question: raise it or lower "
                             f"max_query_length")
        target = None
        found = answer_words(example, words, char_to_word)
        if found is not None:
            start = first[found[0]]
            end = first[found[1] + 1] - 1 if found[1] + 1 < len(words) else len(ids) - 1
            target = _improve_span(ids, start, end, answers[index])
        windows = doc_windows(len(ids), room, doc_stride)
        offset = len(query) + 2
        for w, (start, length) in enumerate(windows):
            rows.append(([cls] + query + [sep] + ids[start:start + length] + [sep],
                         [0] * offset + [1] * (length + 1)))
            label = (0, 0)
            if target is not None and start <= target[0] and target[1] <= start + length - 1:
                label = (target[0] - start + offset, target[1] - start + offset)
            labels.append((*label, int(example.is_impossible)))
            guids.append(f"{example.guid}#{w}")
            extra["example_index"].append(index)
            extra["doc_offset"].append(offset)
            extra["doc_start"].append(start)
            extra["doc_length"].append(length)
    input_ids = np.zeros((len(rows), max_seq_length), np.int32)
    segment_ids, input_mask = np.zeros_like(input_ids), np.zeros_like(input_ids)
    for i, (row, segments) in enumerate(rows):
        input_ids[i, :len(row)] = row
        segment_ids[i, :len(row)] = segments
        input_mask[i, :len(row)] = 1
    inputs = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
    vocab = tokenizer.vocab
    extra = dict(extra)
    extra["qa"] = {
        "do_lower_case": tokenizer.do_lower_case,
        "contexts": [{"words": split[c][0], "pieces": [vocab[i] for i in pieces[c]],
                      "piece_word": piece_word[c]} for c in range(len(context_list))],
        "questions": [{"id": e.guid, "question": e.question, "context": contexts[e.context],
                       "answers": e.answers, "impossible": e.is_impossible}
                      for e in examples]}
    return {"inputs": inputs, "labels": np.array(labels, np.int32).reshape(-1, 3),
            "guids": guids, "extra": extra}


# ----------------------------------------------------------------------------- decoding

def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    kept, positions = [], {}
    for i, c in enumerate(text):
        if c != " ":
            positions[len(kept)] = i
            kept.append(c)
    return "".join(kept), positions


def final_text(pred_text: str, orig_text: str, do_lower_case: bool) -> str:
    """The part of `orig_text` (whole words of the context) that the WordPiece prediction
    `pred_text` spells: the basic tokens of `orig_text` are aligned with it character by
    character once spaces are removed; if the alignment fails, `orig_text` itself (as
    the original's ``get_final_text``)."""
    tok_text = " ".join(basic_tokenize(orig_text, do_lower_case=do_lower_case))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1
    orig_ns, orig_map = _strip_spaces(orig_text)
    tok_ns, tok_map = _strip_spaces(tok_text)
    if len(orig_ns) != len(tok_ns):
        return orig_text
    tok_to_ns = {position: i for i, position in tok_map.items()}
    orig_start = orig_map.get(tok_to_ns.get(start, -1))
    orig_end = orig_map.get(tok_to_ns.get(end, -1))
    if orig_start is None or orig_end is None:
        return orig_text
    return orig_text[orig_start:orig_end + 1]


def span_text(extra: dict, window: int, start: int, end: int) -> str:
    """The context text of sequence positions start..end of featurized window `window`:
    its WordPieces joined ("##" pieces glued on), projected onto the words they lie in
    (:func:`final_text`)."""
    qa = extra["qa"]
    context = qa["contexts"][qa["questions"][extra["example_index"][window]]["context"]]
    offset, doc_start = extra["doc_offset"][window], extra["doc_start"][window]
    first, last = doc_start + start - offset, doc_start + end - offset
    tok_text = " ".join(context["pieces"][first:last + 1])
    tok_text = " ".join(tok_text.replace(" ##", "").replace("##", "").strip().split())
    words = context["words"][context["piece_word"][first]:context["piece_word"][last] + 1]
    return final_text(tok_text, " ".join(words), qa["do_lower_case"])


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How spans are picked: the original's ``n_best_size``, ``max_answer_length``,
    ``joint_prediction`` and ``answerable_classifier``; ``v2`` adds null scores."""

    n_best_size: int = 20
    max_answer_length: int = 30
    joint_prediction: bool = True
    answerable_classifier: bool = True
    v2: bool = False


def _candidates(outputs: dict, f: int, options: DecodeOptions):
    """(start, end, start score, end score) pairs the head proposes for window `f`."""
    if options.joint_prediction:
        starts = outputs["start_top_index"][f]
        for i, start in enumerate(starts):
            for j, end in enumerate(outputs["end_top_index"][f][i]):
                yield (int(start), int(end), float(outputs["start_top_log_probs"][f][i]),
                       float(outputs["end_top_log_probs"][f][i][j]))
    else:
        start_logits, end_logits = outputs["start_logits"][f], outputs["end_logits"][f]
        starts = np.argsort(-start_logits, kind="stable")[:options.n_best_size]
        ends = np.argsort(-end_logits, kind="stable")[:options.n_best_size]
        for start in starts:
            for end in ends:
                yield (int(start), int(end), float(start_logits[start]),
                       float(end_logits[end]))


def decode(outputs: dict, extra: dict, options: DecodeOptions
           ) -> tuple[dict[str, str], dict[str, float], dict[str, list[dict]]]:
    """(best non-null answer, null score, n-best list) per question id, from the head's
    per-window outputs and the features' `extra` (see `featurize`)."""
    qa = extra["qa"]
    by_question = collections.defaultdict(list)
    for f, index in enumerate(extra["example_index"]):
        by_question[index].append(f)
    answers, null_scores, nbest_json = {}, {}, {}
    for index, question in enumerate(qa["questions"]):
        windows = [(extra["doc_start"][f], extra["doc_length"][f])
                   for f in by_question[index]]
        prelim, null = [], 1e6
        for w, f in enumerate(by_question[index]):
            if options.v2:
                score = (float(outputs["answerable_logit"][f]) if options.answerable_classifier
                         else float(outputs["start_logits"][f][0] + outputs["end_logits"][f][0]))
                null = min(null, score)
            offset, (doc_start, doc_length) = extra["doc_offset"][f], windows[w]
            for start, end, start_score, end_score in _candidates(outputs, f, options):
                # both ends in this window's context, the start where it has the most
                # context, a forward span no longer than max_answer_length
                if not (offset <= start < offset + doc_length
                        and offset <= end < offset + doc_length):
                    continue
                if not max_context(windows, w, doc_start + start - offset):
                    continue
                if end < start or end - start + 1 > options.max_answer_length:
                    continue
                prelim.append((start_score + end_score, f, start, end, start_score,
                               end_score))
        prelim.sort(key=lambda p: p[0], reverse=True)
        nbest, seen = [], set()
        for _, f, start, end, start_score, end_score in prelim:
            if len(nbest) >= options.n_best_size:
                break
            text = span_text(extra, f, start, end)
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": start_score, "end_logit": end_score})
        if not nbest:  # the original's guard: a question with no valid span
            nbest.append({"text": "empty", "start_logit": 0.0, "end_logit": 0.0})
        for entry, probability in zip(nbest, _softmax([e["start_logit"] + e["end_logit"]
                                                       for e in nbest]), strict=True):
            entry["probability"] = probability
        qid = question["id"]
        best = next((e for e in nbest if e["text"]), None)
        answers[qid] = best["text"] if best else ""
        nbest_json[qid] = nbest
        if options.v2 and options.answerable_classifier:
            null_scores[qid] = null
        elif options.v2:  # the [CLS] score against the best span's, as the original
            null_scores[qid] = null - (best["start_logit"] + best["end_logit"] if best else 0.0)
    return answers, null_scores, nbest_json


def gold_answers(extra: dict) -> dict[str, list[str]]:
    """{question id: gold answer texts} of featurized questions (empty: unanswerable)."""
    return {q["id"]: list(q["answers"]) for q in extra["qa"]["questions"]}


# ----------------------------------------------------------------------------- baselines

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def sentences(text: str) -> list[str]:
    """`text` cut after '.', '!' or '?' (and closing quotes or brackets) before a space."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in ("a", "an", "the")}


def first_sentence_answers(questions: Iterable[dict], contexts: list[dict]) -> dict[str, str]:
    """Trivial baseline: every question answered with its context's first sentence."""
    return {q["id"]: (sentences(" ".join(contexts[q["context"]]["words"])) or [""])[0]
            for q in questions}


def overlap_sentence_answers(questions: Iterable[dict], contexts: list[dict]
                             ) -> dict[str, str]:
    """Trivial baseline: the context sentence sharing the most words with the question
    (articles aside; the first such sentence on ties)."""
    answers = {}
    for q in questions:
        candidates = sentences(" ".join(contexts[q["context"]]["words"])) or [""]
        asked = _words(q["question"])
        answers[q["id"]] = max(candidates, key=lambda s: len(_words(s) & asked))
    return answers
