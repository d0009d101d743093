"""Extractive-QA scoring against values worked out by hand from the official scripts' rules."""

from __future__ import annotations

import pytest

from electra_tf.tasks.qa_eval import (
    exact_match,
    f1_v2,
    gold_from_mrqa,
    gold_from_squad,
    normalize_answer,
    squad_v1_scores,
    squad_v2_scores,
    token_f1,
)


def approx(value: float) -> object:
    return pytest.approx(value, rel=0, abs=1e-9)


@pytest.mark.parametrize("text, expected", [
    # lower -> "the  quick, brown fox!" -> no punctuation -> "the" becomes a space -> squeeze
    ("The  Quick, Brown Fox!", "quick brown fox"),
    # punctuation goes before the words are split: "U.S." -> "us", "don't" -> "dont"
    ("U.S. Army", "us army"),
    ("don't", "dont"),
    ("rock-n-roll", "rocknroll"),
    # both articles removed, whole words only ("another", "anthem" stay)
    ("An apple a day", "apple day"),
    ("another anthem", "another anthem"),
    # tabs and newlines are whitespace; a text of articles only normalizes to ""
    ("  \tthe\n A ", ""),
    # non-ASCII letters are kept and lower-cased; "à" is not the article "a"
    ("Théâtre À la Zürich", "théâtre à la zürich"),
    # only ASCII punctuation is removed: curly quotes stay
    ("“Quoted”", "“quoted”"),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_max_over_gold_answers():
    gold = ["Denver Broncos football team members", "Broncos team", "Denver"]
    pred = "Denver Broncos team"  # tokens: denver broncos team (3)
    # gold 1: 5 tokens, 3 shared: P = 3/3, R = 3/5, F1 = 2*(3/5)/(8/5) = 0.75
    # gold 2: 2 tokens, 2 shared: P = 2/3, R = 2/2, F1 = 2*(2/3)/(5/3) = 0.8   <- max
    # gold 3: 1 token, 1 shared:  P = 1/3, R = 1,   F1 = 2*(1/3)/(4/3) = 0.5
    assert [token_f1(g, pred) for g in gold] == [approx(0.75), approx(0.8), approx(0.5)]
    assert [exact_match(g, pred) for g in gold] == [0, 0, 0]
    scores = squad_v1_scores({"q": gold}, {"q": pred})
    assert scores == {"exact_match": 0.0, "f1": approx(80.0)}
    # "The Broncos!" normalizes to "broncos", equal to the 3rd gold only -> EM 1, F1 1
    scores = squad_v1_scores({"q": ["Denver Broncos", "Broncos team", "broncos"]},
                             {"q": "The Broncos!"})
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_f1_counts_repeated_tokens_once_per_match():
    # gold -> cat sat on mat with cat (6 tokens); pred -> cat cat cat mat (4 tokens)
    # shared: cat min(2, 3) = 2, mat 1 -> 3; P = 3/4, R = 3/6, F1 = 2*(3/8)/(5/4) = 0.6
    # (a set overlap would give 2 shared and F1 = 2*(1/2)*(1/3)/(5/6) = 0.4)
    assert token_f1("the cat sat on the mat with the cat", "cat cat cat mat") == approx(0.6)
    assert f1_v2("the cat sat on the mat with the cat", "cat cat cat mat") == approx(0.6)


V1_GOLD = {
    "q1": ["Denver Broncos"],
    "q2": ["Santa Clara, California", "Levi's Stadium"],
    "q3": ["gold"],
}
# q1 exact: EM 1, F1 1. q2 -> levis stadium in santa clara (5 tokens):
#   gold 1 santa clara california: 2 shared, P = 2/5, R = 2/3, F1 = 2*(4/15)/(16/15) = 1/2
#   gold 2 levis stadium:          2 shared, P = 2/5, R = 1,   F1 = 2*(2/5)/(7/5) = 4/7 <- max
# q3 has no prediction; "extra" is not a gold question and is ignored.
V1_PREDS = {"q1": "Denver Broncos", "q2": "Levi's Stadium in Santa Clara", "extra": "x"}


def test_v1_missing_prediction_scores_zero():
    # 3 questions: EM (1 + 0 + 0) / 3, F1 (1 + 4/7 + 0) / 3 = 11/21
    assert squad_v1_scores(V1_GOLD, V1_PREDS) == {"exact_match": approx(100 / 3),
                                                  "f1": approx(1100 / 21)}


def test_mrqa_skips_missing_prediction():
    # 2 scored questions: EM 1/2, F1 (1 + 4/7) / 2 = 11/14
    assert squad_v1_scores(V1_GOLD, V1_PREDS, skip_missing=True) == {
        "exact_match": 50.0, "f1": approx(1100 / 14)}


def test_v1_and_v2_differ_on_empty_strings():
    # v1.1: no tokens on either side -> num_same == 0 -> 0; v2.0: both empty -> 1
    assert token_f1("", "") == 0.0
    assert f1_v2("", "") == 1.0
    # texts of articles/punctuation only are empty after normalization
    assert token_f1("the", "a.") == 0.0
    assert f1_v2("the", "a.") == 1.0
    assert f1_v2("", "Broncos") == 0.0
    assert exact_match("", "") == 1
    assert exact_match("the", "") == 1


TWO_GOLD = {"q1": ["Denver Broncos"], "q2": []}
# q1: pred broncos vs denver broncos: EM 0, 1 shared, P = 1, R = 1/2, F1 = 2/3
# q2: unanswerable, pred "": EM 1, F1 1
TWO_PREDS = {"q1": "Broncos", "q2": ""}


def test_v2_answerable_and_unanswerable():
    assert squad_v2_scores(TWO_GOLD, TWO_PREDS) == {
        "exact": 50.0, "f1": approx(100 * (2 / 3 + 1) / 2), "total": 2,
        "HasAns_exact": 0.0, "HasAns_f1": approx(200 / 3), "HasAns_total": 1,
        "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1,
    }


def test_v2_threshold_flips_prediction_to_no_answer():
    na_probs = {"q1": 0.9, "q2": 0.2}
    scores = squad_v2_scores(TWO_GOLD, TWO_PREDS, na_probs, na_prob_thresh=0.5)
    # q1: 0.9 > 0.5 -> "no answer" to an answerable question: EM 0, F1 0; q2 unchanged (1, 1)
    assert scores["exact"] == 50.0 and scores["f1"] == 50.0
    assert scores["HasAns_f1"] == 0.0 and scores["NoAns_f1"] == 100.0
    # best thresholds, on the raw scores: start 1 (one unanswerable); q2 (0.2) +0, q1 (0.9)
    # exact +0 -> best 1 at 0.0; f1 +2/3 -> best 5/3 at 0.9. Percent of 2 questions.
    assert scores["best_exact"] == 50.0 and scores["best_exact_thresh"] == 0.0
    assert scores["best_f1"] == approx(250 / 3) and scores["best_f1_thresh"] == 0.9


FOUR_GOLD = {"q1": ["Denver Broncos"], "q2": ["Carolina Panthers"], "q3": [], "q4": []}
FOUR_PREDS = {"q1": "Denver Broncos", "q2": "Panthers", "q3": "Levi's Stadium", "q4": ""}
FOUR_NA = {"q1": 0.1, "q2": 0.3, "q3": 0.6, "q4": 0.8}
# raw EM: 1, 0, 0 (answer to an unanswerable question), 1
# raw F1: 1, 2/3 (1 shared, P = 1, R = 1/2), 0, 1


def test_v2_best_thresholds():
    scores = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, FOUR_NA)
    # default threshold 1.0 flips nothing: EM 2/4, F1 (1 + 2/3 + 0 + 1) / 4 = 2/3
    assert scores["exact"] == 50.0 and scores["f1"] == approx(200 / 3)
    assert scores["total"] == 4
    assert scores["HasAns_exact"] == 50.0 and scores["HasAns_f1"] == approx(250 / 3)
    assert scores["NoAns_exact"] == 50.0 and scores["NoAns_f1"] == 50.0
    assert scores["HasAns_total"] == scores["NoAns_total"] == 2
    # start at 2 (two unanswerable questions), walk q1 0.1, q2 0.3, q3 0.6, q4 0.8:
    # exact: q1 +1 -> 3 (best, 0.1); q2 +0 -> 3 (not better); q3 -1 -> 2; q4 +0 -> 2
    # f1:    q1 +1 -> 3 (0.1); q2 +2/3 -> 11/3 (best, 0.3); q3 -1 -> 8/3; q4 +0 -> 8/3
    assert scores["best_exact"] == 75.0 and scores["best_exact_thresh"] == 0.1
    assert scores["best_f1"] == approx(100 * (11 / 3) / 4) and scores["best_f1_thresh"] == 0.3


def test_v2_threshold_rescues_answered_unanswerable():
    scores = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, FOUR_NA, na_prob_thresh=0.5)
    # q3 (0.6) and q4 (0.8) become "no answer", right for both: EM 3/4, F1 (11/3) / 4
    assert scores["exact"] == 75.0 and scores["f1"] == approx(1100 / 12)
    assert scores["NoAns_exact"] == 100.0 and scores["HasAns_exact"] == 50.0
    # the best-threshold search ignores na_prob_thresh
    assert scores["best_exact"] == 75.0 and scores["best_f1_thresh"] == 0.3


def test_v2_skips_missing_and_extra_predictions():
    # q4 unpredicted: skipped; "extra" ignored. q1, q2, q3 scored: EM 1/3, F1 (1 + 2/3) / 3
    preds = {"q1": "Denver Broncos", "q2": "Panthers", "q3": "Levi's Stadium", "extra": ""}
    scores = squad_v2_scores(FOUR_GOLD, preds)
    assert scores["total"] == 3 and scores["NoAns_total"] == 1
    assert scores["exact"] == approx(100 / 3) and scores["f1"] == approx(500 / 9)
    assert "best_f1" not in scores


def test_v2_gold_of_articles_only_is_answerable_but_empty():
    # "The" normalizes to "", so the gold becomes [""]; has_ans uses the raw list -> HasAns
    scores = squad_v2_scores({"q": ["The"]}, {"q": ""})
    assert scores == {"exact": 100.0, "f1": 100.0, "total": 1,
                      "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1}


def test_gold_readers():
    dataset = {"data": [{"paragraphs": [
        {"context": "...", "qas": [
            {"id": "a", "question": "?", "answers": [{"text": "x", "answer_start": 0},
                                                     {"text": "y", "answer_start": 2}]},
            {"id": "b", "question": "?", "answers": [], "is_impossible": True}]}]}]}
    assert gold_from_squad(dataset) == {"a": ["x", "y"], "b": []}
    lines = [{"header": {"dataset": "SQuAD"}},
             {"context": "...", "qas": [{"qid": "m1", "answers": ["x", "z"]}]}]
    assert gold_from_mrqa(lines) == {"m1": ["x", "z"]}
    assert gold_from_mrqa([{"qid": "m2", "answers": ["w"]}]) == {"m2": ["w"]}
