"""Scorers against hand-computed values, the GLUE average, submission files round-tripping."""

import math
import os

import numpy as np
import pytest

from data_prep import samples
from electra_tf.tasks import readers, scorers

# A confusion matrix by hand: TP=3, TN=2, FP=1, FN=2.
LABELS = [1, 1, 1, 1, 1, 0, 0, 0]
PREDICTIONS = [1, 1, 1, 0, 0, 0, 0, 1]


def test_binary_metrics_by_hand():
    assert scorers.accuracy(PREDICTIONS, LABELS) == 5 / 8
    # precision 3/4, recall 3/5
    assert scorers.f1_accuracy(PREDICTIONS, LABELS) == pytest.approx(
        {"f1": 2 * 0.75 * 0.6 / (0.75 + 0.6), "accuracy": 5 / 8})
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 4 / sqrt(4*5*3*4)
    assert scorers.matthews_corr(PREDICTIONS, LABELS) == pytest.approx(4 / math.sqrt(240))
    assert scorers.matthews_corr([1] * 8, LABELS) == 0.0  # undefined: constant predictions
    assert scorers.f1_accuracy([0] * 8, LABELS)["f1"] == 0.0
    with pytest.raises(ValueError, match="no examples"):
        scorers.accuracy([], [])
    with pytest.raises(ValueError, match="7 predictions for 8 labels"):
        scorers.accuracy(PREDICTIONS[:7], LABELS)


def test_correlations_by_hand():
    x = [1.0, 2.0, 3.0, 4.0]
    # deviations (-1.5, -.5, .5, 1.5) and (-3, -1, 4, 0): r = 7 / sqrt(5 * 26);
    # ranks (1, 2, 4, 3): rho = 1 - 6 * 2 / (4 * 15)
    assert scorers.pearson_spearman(x, [2.0, 4.0, 9.0, 5.0]) == pytest.approx(
        {"pearson": 7 / math.sqrt(130), "spearman": 0.8})
    assert scorers.pearson_spearman([3.0] * 4, x) == {"pearson": 0.0, "spearman": 0.0}


def test_token_accuracy_ignores_minus_one():
    labels = np.array([[3, -1, 4, -1], [5, 6, -1, -1]])
    predictions = np.array([[3, 9, 0, 9], [5, 6, 9, 9]])
    assert scorers.token_accuracy(predictions, labels) == 3 / 4
    ragged = scorers.token_accuracy([[3, 9, 0], [5, 6]], [[3, -1, 4], [5, 6]])
    assert ragged == 3 / 4
    assert scorers.score("pos_wsj", predictions, labels) == {"accuracy": 3 / 4}
    with pytest.raises(ValueError, match="sentence 1: 1 predictions for 2 labels"):
        scorers.token_accuracy([[3, 9, 0], [5]], [[3, -1, 4], [5, 6]])
    with pytest.raises(ValueError, match="no labelled words"):
        scorers.token_accuracy([[1]], [[-1]])


def test_score_dispatch_by_task():
    assert scorers.score("cola", PREDICTIONS, LABELS) == {
        "mcc": pytest.approx(4 / math.sqrt(240))}
    as_names = [str(p) for p in PREDICTIONS]
    assert scorers.score("MRPC", as_names, LABELS) == scorers.score("qqp", PREDICTIONS, LABELS)
    assert set(scorers.score("qqp", PREDICTIONS, LABELS)) == {"f1", "accuracy"}
    assert scorers.score("sst2", PREDICTIONS, LABELS) == {"accuracy": 5 / 8}
    gold = ["entailment", "neutral", "contradiction", "neutral"]
    # ids index the label list (contradiction, entailment, neutral)
    assert scorers.score("mnli-mm", [1, 2, 0, 1], gold) == {"accuracy": 0.75}
    assert scorers.score("rte", ["entailment", "not_entailment"], [0, 0]) == {"accuracy": 0.5}
    assert set(scorers.score("stsb", [1.0, 2.0, 3.5], [1.5, 2.0, 3.0])) == {"pearson",
                                                                          "spearman"}
    assert scorers.score("race_high", [0, 3, 2], [0, 3, 1]) == {"accuracy": 2 / 3}
    assert scorers.race_scores([0, 3, 2, 1], [0, 3, 1, 1],
                               ["middle", "high", "high", "high"]) == pytest.approx(
        {"accuracy": 0.75, "accuracy_middle": 1.0, "accuracy_high": 2 / 3})
    with pytest.raises(ValueError, match="label 'maybe' is not one of rte's labels"):
        scorers.score("rte", ["maybe"], ["entailment"])
    with pytest.raises(ValueError, match="label id 3 out of range for mnli"):
        scorers.score("mnli", [3], [0])
    with pytest.raises(ValueError, match="unknown task 'squad'"):
        scorers.score("squad", [1], [1])


# BERT-Large on the GLUE leaderboard (test): published score 80.5.
BERT_LARGE = {
    "cola": {"mcc": 0.605}, "sst2": {"accuracy": 0.949},
    "mrpc": {"f1": 0.893, "accuracy": 0.854}, "stsb": {"pearson": 0.876, "spearman": 0.865},
    "qqp": {"f1": 0.721, "accuracy": 0.893}, "mnli": {"accuracy": 0.867},
    "mnli-mm": {"accuracy": 0.859}, "qnli": {"accuracy": 0.927},
    "rte": {"accuracy": 0.701}, "wnli": {"accuracy": 0.651, "loss": 0.7},
}


def test_glue_score_as_the_leaderboard():
    # cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli
    task_scores = [0.605, 0.949, (0.893 + 0.854) / 2, (0.876 + 0.865) / 2,
                   (0.721 + 0.893) / 2, (0.867 + 0.859) / 2, 0.927, 0.701, 0.651]
    assert scorers.glue_score(BERT_LARGE, exclude=()) == pytest.approx(np.mean(task_scores))
    assert round(100 * scorers.glue_score(BERT_LARGE, exclude=()), 1) == 80.5
    # the ELECTRA paper's dev-set convention leaves WNLI out
    assert scorers.glue_score(BERT_LARGE) == pytest.approx(np.mean(task_scores[:-1]))
    assert scorers.glue_score(BERT_LARGE, exclude=("wnli", "ax")) == scorers.glue_score(
        BERT_LARGE)  # AX never counts; excluding it leaves MNLI in
    matched_only = {k: v for k, v in BERT_LARGE.items() if k != "mnli-mm"}
    assert scorers.glue_score(matched_only, exclude=()) == pytest.approx(
        np.mean([*task_scores[:5], 0.867, *task_scores[6:]]))
    renamed = {"CoLA" if k == "cola" else "mnli_mismatched" if k == "mnli-mm" else k: v
               for k, v in BERT_LARGE.items()}
    assert scorers.glue_score(renamed) == scorers.glue_score(BERT_LARGE)
    assert scorers.task_score("mrpc", BERT_LARGE["mrpc"]) == pytest.approx(0.8735)
    without_rte = {k: v for k, v in BERT_LARGE.items() if k != "rte"}
    with pytest.raises(ValueError, match="results lack rte"):
        scorers.glue_score(without_rte)
    assert scorers.glue_score(without_rte, exclude=("wnli", "RTE")) == pytest.approx(
        np.mean(task_scores[:7]))
    with pytest.raises(ValueError, match="stsb: results lack spearman"):
        scorers.glue_score({**BERT_LARGE, "stsb": {"pearson": 0.9}})


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_submission_files_and_label_names(tmp_path):
    out = str(tmp_path / "test_predictions")
    written = {
        "cola": scorers.write_glue_submission("cola", [0, 1], [1, 0], out),
        "mnli-mm": scorers.write_glue_submission("mnli-mm", ["5", "3"], [0, 2], out),
        "mnli": scorers.write_glue_submission("mnli", [0], ["neutral"], out),
        "ax": scorers.write_glue_submission("ax", [0, 1], [1, 2], out),
        "qnli": scorers.write_glue_submission("qnli", [0, 1], [1, 0], out),
        "stsb": scorers.write_glue_submission("STS-B", [0, 1, 2, 3],
                                              [-0.5, 2.12345, 4.9996, 5.7], out),
    }
    assert {k: os.path.basename(v) for k, v in written.items()} == {
        "cola": "CoLA.tsv", "mnli-mm": "MNLI-mm.tsv", "mnli": "MNLI-m.tsv", "ax": "AX.tsv",
        "qnli": "QNLI.tsv", "stsb": "STS-B.tsv"}
    assert read(written["cola"]) == "index\tprediction\n0\t1\n1\t0\n"
    assert read(written["mnli-mm"]) == "index\tprediction\n5\tcontradiction\n3\tneutral\n"
    assert read(written["mnli"]) == "index\tprediction\n0\tneutral\n"
    assert read(written["ax"]) == "index\tprediction\n0\tentailment\n1\tneutral\n"
    assert read(written["qnli"]) == "index\tprediction\n0\tnot_entailment\n1\tentailment\n"
    assert read(written["stsb"]) == "index\tprediction\n0\t0.000\n1\t2.123\n2\t5.000\n3\t5.000\n"
    assert sorted(os.listdir(out)) == sorted(os.path.basename(v) for v in written.values())
    assert [scorers.submission_file(t) for t in ("sst2", "SST-2", "mrpc", "qqp", "rte", "wnli",
                                                 "sst2_mr")] == [
        "SST-2.tsv", "SST-2.tsv", "MRPC.tsv", "QQP.tsv", "RTE.tsv", "WNLI.tsv", "sst2_mr.tsv"]
    assert scorers.read_predictions(written["mnli-mm"]) == {"5": "contradiction",
                                                            "3": "neutral"}
    with pytest.raises(ValueError, match="2 ids for 1 predictions"):
        scorers.write_glue_submission("rte", [0, 1], [1], out)
    with pytest.raises(ValueError, match="duplicate or malformed id '0'"):
        scorers.write_glue_submission("rte", [0, 0], [1, 1], out)


def test_submission_round_trips_through_evaluate_predictions(tmp_path):
    # RTE dev in its GLUE layout; ids are the rows' indices
    folder = tmp_path / "finetuning_data" / "RTE"
    folder.mkdir(parents=True)
    rows = [("A man eats.", "A man is eating.", "entailment"),
            ("Cats \"fly.", "Cats swim.", "not_entailment"),
            ("It rains.", "It is wet.", "entailment"),
            ("Dogs bark.", "Dogs sleep.", "not_entailment")]
    dev = folder / "dev.tsv"
    dev.write_text("index\tsentence1\tsentence2\tlabel\n"
                   + "".join(f"{i}\t{a}\t{b}\t{c}\n" for i, (a, b, c) in enumerate(rows)))
    examples = readers.read_glue("rte", str(tmp_path), "dev")
    ids = [readers.example_index(e.guid) for e in examples]
    predictions = [0, 1, 1, 1]  # entailment, not, not, not: 3 of 4 right
    path = scorers.write_glue_submission("rte", ids[::-1], predictions[::-1], str(tmp_path))
    assert scorers.evaluate_predictions("rte", path, str(dev)) == {"accuracy": 0.75}

    # STS-B-like regression against an index<TAB>label file
    gold = tmp_path / "labels.tsv"
    gold.write_text("index\tlabel\n0\t1.0\n1\t2.5\n2\t4.0\n")
    path = scorers.write_glue_submission("stsb", [2, 0, 1], [6.0, 0.5, 3.0], str(tmp_path))
    assert scorers.evaluate_predictions("stsb", path, str(gold)) == pytest.approx(
        scorers.pearson_spearman([0.5, 3.0, 5.0], [1.0, 2.5, 4.0]))

    # missing or extra ids name both files
    path = scorers.write_glue_submission("rte", ids[:3], predictions[:3], str(tmp_path))
    with pytest.raises(ValueError, match=r"ids of .*RTE.tsv and .*dev.tsv differ: 1 missing "
                                         r"from the predictions \(e.g. \['3'\]\), 0 not in"):
        scorers.evaluate_predictions("rte", path, str(dev))
    path = scorers.write_glue_submission("rte", [*ids, "9"], [*predictions, 0], str(tmp_path))
    with pytest.raises(ValueError, match=r"1 not in the labels \(e.g. \['9'\]\)"):
        scorers.evaluate_predictions("rte", path, str(dev))
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tprediction\n0\tentailment\n1\tyes\n2\tentailment\n3\tentailment\n")
    with pytest.raises(ValueError, match=r"bad.tsv: label 'yes' is not one of rte's labels"):
        scorers.evaluate_predictions("rte", str(bad), str(dev))
    bad.write_text("id\tlabel\n0\t1\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: expected the header index<TAB>prediction"):
        scorers.read_predictions(str(bad))
    bad.write_text("index\tprediction\n0\t1\n0\t0\n")
    with pytest.raises(ValueError, match=r"bad.tsv:3: duplicate index '0'"):
        scorers.read_predictions(str(bad))


def test_evaluate_on_the_real_sst2_sample(tmp_path):
    folder = samples.path("movie_reviews")
    labels_path = os.path.join(folder, "sst2_mr", "test_labels.tsv")
    test = readers.read_glue("sst2_mr", os.path.dirname(folder), "test")
    with open(labels_path, encoding="utf-8") as f:
        gold = dict(line.rstrip("\n").split("\t") for line in list(f)[1:])
    ids = [readers.example_index(e.guid) for e in test]
    assert ids == list(gold)
    predictions = [gold[i] for i in ids]
    flipped = {i: "1" if predictions[i] == "0" else "0" for i in range(0, len(ids), 10)}
    for i, value in flipped.items():
        predictions[i] = value
    path = scorers.write_glue_submission("sst2_mr", ids, predictions, str(tmp_path))
    assert os.path.basename(path) == "sst2_mr.tsv"
    result = scorers.evaluate_predictions("sst2_mr", path, labels_path)
    assert result == {"accuracy": pytest.approx(1 - len(flipped) / len(ids))}
