"""Chunking: BIO read as BIOES, chunk precision/recall/F1 as conlleval counts them, and
finetuning on the real CoNLL-2000 sample with a softmax and a CRF head."""

import json

import pytest

from data_prep import samples
from electra_tf import files
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import finetune
from electra_tf.tasks import scorers
from electra_tf.tasks.specs import TaggingTask, get_task


def test_bio_becomes_bioes_chunk_by_chunk():
    assert scorers.bio_to_bioes(["B-NP", "I-NP", "I-NP", "B-VP", "O", "B-PP", "B-NP", "I-NP"]) \
        == ["B-NP", "I-NP", "E-NP", "S-VP", "O", "S-PP", "B-NP", "E-NP"]
    # conlleval's reading of ill-formed BIO: an I- after O starts a chunk, a new type
    # ends one
    assert scorers.bio_to_bioes(["O", "I-NP", "I-NP", "I-VP"]) == ["O", "B-NP", "E-NP", "S-VP"]
    assert scorers.bio_to_bioes([]) == []


def test_span_scores_count_whole_chunks():
    gold = [["B-NP", "E-NP", "S-VP", "O", "S-NP"], ["S-PP", "B-NP", "E-NP"]]
    # sentence 1: NP(0,1) right, VP missed (tagged O), NP(4) right; sentence 2: PP right,
    # NP(1,2) predicted as NP(1) + NP(2): both wrong. 3 right of 6 predicted, 5 gold.
    predicted = [["B-NP", "E-NP", "O", "O", "S-NP"], ["S-PP", "S-NP", "S-NP"]]
    scores = scorers.span_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(3 / 5)
    assert scores["recall"] == pytest.approx(3 / 5)
    predicted[1] = ["S-PP", "S-NP", "O"]
    scores = scorers.span_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(3 / 4)
    assert scores["recall"] == pytest.approx(3 / 5)
    assert scores["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert scorers.span_scores([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0,
                                                     "f1": 0.0}
    with pytest.raises(ValueError, match="sentence 0: 2 predicted tags for 1"):
        scorers.span_scores([["O"]], [["O", "O"]])


def test_chunk_task_reads_conll2000_columns_as_bioes(tmp_path):
    folder = tmp_path / "finetuning_data" / "chunk"
    folder.mkdir(parents=True)
    (folder / "train.txt").write_text("Confidence NN B-NP\nin IN B-PP\nthe DT B-NP\n"
                                      "pound NN I-NP\nis VBZ B-VP\nwidely RB I-VP\n"
                                      "expected VBN I-VP\n. . O\n\n")
    task = get_task("chunk")
    assert isinstance(task, TaggingTask) and task.spans
    [sentence] = task.read(str(tmp_path), "train")
    assert sentence.words[:2] == ["Confidence", "in"]
    assert sentence.tags == ["S-NP", "S-PP", "B-NP", "E-NP", "B-VP", "I-VP", "E-VP", "O"]
    assert not get_task("pos").spans


def test_chunking_finetunes_on_the_conll2000_sample_with_a_crf(tmp_path, sample_paths):
    # (the softmax head is POS's, tested there; chunk scoring is the same for both heads)
    data_dir = files.parent(files.parent(samples.path("chunk_wsj")))
    config = FinetuningConfig(data_dir=data_dir, model_name="scratch", from_scratch=True,
                              model_size="debug", task_names=["chunk_wsj"], use_crf=True,
                              output_dir=str(tmp_path), learning_rate=3e-3,
                              num_train_epochs=6, train_batch_size=8, max_seq_length=80,
                              vocab_file=sample_paths["vocab"], seed=0)
    results = finetune(config, progress=False)
    dev = results["dev_best"]["chunk_wsj"]["dev"]
    assert set(dev) == {"accuracy", "precision", "recall", "f1"}
    baseline = results["majority_baseline"]["chunk_wsj"]["dev"]
    # the majority tag (a one-word or partial chunk tag) finds few chunks; 21 steps
    # from scratch find longer ones
    assert baseline["f1"] < 0.2 and dev["f1"] > baseline["f1"] + 0.15
    assert dev["accuracy"] > baseline["accuracy"]
    tags = json.loads((tmp_path / "finetuning" / "chunk_wsj-crf" / "chunk_wsj_tags.json")
                      .read_text())
    assert "S-NP" in tags and "E-VP" in tags and "B-NP" in tags and "I-NP" in tags
