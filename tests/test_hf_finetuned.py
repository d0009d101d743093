"""Finetuned models exported to Hugging Face: transformers' Electra/Bert ForSequence-
Classification, ForTokenClassification and ForMultipleChoice load the folders as-is
(tokenizer and id2label included) and give this package's logits on the same text."""

import json
import os

import numpy as np
import pytest
import torch
import transformers
from absl import flags

from electra_tf import run_export
from electra_tf.checkpoints import save_hf_finetuned, save_keras
from electra_tf.configs import get_config
from electra_tf.finetuning.model import FinetuningModel, Head
from electra_tf.modeling import Encoder
from electra_tf.tokenization import WordPieceTokenizer, load_vocab

TEXTS = ["The film's ending was predictable, but the acting is superb.",
         "Zoë didn't like the café; she left after 5 minutes!",
         "An unremarkable, overlong thriller."]
LABELS = ("negative", "positive")


def _model(sample_paths, model_type, heads, use_crf=False, seed=0):
    vocab = load_vocab(sample_paths["vocab"])
    config = get_config(model_type, "debug").replace(vocab_size=len(vocab))
    if model_type == "bert":
        config = config.replace(embedding_size=config.hidden_size)
    model = FinetuningModel(Encoder(config), heads, use_crf=use_crf,
                            preprocessing={"vocab": vocab, "do_lower_case": True,
                                           "max_seq_length": 32})
    model.build_heads()
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # off their initial values: layer norms, biases, heads
        value = weight.numpy()
        weight.assign(value + rng.normal(0, 0.3 if "gamma" in weight.path
                                         or "beta" in weight.path else 0.05,
                                         value.shape).astype(value.dtype))
        if weight.path.endswith("layer_1/feedforward_layer_norm/gamma"):
            weight.assign(np.where(np.arange(value.shape[0]) % 8 == 0, 12.0, value))  # outliers
    return model


def _hf_inputs(folder, texts, pairs=None):
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return tokenizer(texts, pairs, padding="max_length", max_length=32, truncation=True,
                     return_tensors="np")


def _ours(batch):
    return {"input_ids": batch["input_ids"].astype(np.int32),
            "input_mask": batch["attention_mask"].astype(np.int32),
            "segment_ids": batch["token_type_ids"].astype(np.int32)}


def _torch(batch):
    return {"input_ids": torch.tensor(batch["input_ids"]),
            "attention_mask": torch.tensor(batch["attention_mask"]),
            "token_type_ids": torch.tensor(batch["token_type_ids"])}


@pytest.mark.parametrize("model_type", ["electra", "bert"])
def test_sequence_classification_and_regression_heads(model_type, sample_paths, tmp_path):
    heads = [Head("sst2", "classification", 2, LABELS),
             Head("stsb", "regression", 1, label_range=(0.0, 5.0))]
    model = _model(sample_paths, model_type, heads)
    report = save_hf_finetuned(model, str(tmp_path / "hf"))
    family = "Bert" if model_type == "bert" else "Electra"
    assert report.notes == [f"sst2: {family}ForSequenceClassification (2 labels)",
                            f"stsb: {family}ForSequenceClassification"]
    assert sorted(os.listdir(tmp_path / "hf")) == ["sst2", "stsb"]
    save_hf_finetuned(model, str(tmp_path / "hf"))  # an export of ours may be replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not an electra-tf export"):
        save_hf_finetuned(model, str(tmp_path / "other"))
    # An export of ours beside other files is not an export to replace.
    (tmp_path / "hf" / "thesis").mkdir()
    (tmp_path / "hf" / "thesis" / "chapter1.tex").write_text("mine")
    with pytest.raises(ValueError, match="is not an electra-tf export"):
        save_hf_finetuned(model, str(tmp_path / "hf"))
    assert (tmp_path / "hf" / "thesis" / "chapter1.tex").read_text() == "mine"

    folder = str(tmp_path / "hf" / "sst2")
    batch = _hf_inputs(folder, TEXTS, TEXTS[::-1])
    ours = model(_ours(batch))
    # The exported tokenizer is this package's.
    tokenizer = WordPieceTokenizer(sample_paths["vocab"])
    first = batch["input_ids"][0][1:1 + len(tokenizer.tokenize(TEXTS[0]))].tolist()
    assert first == tokenizer.tokenize(TEXTS[0])

    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(classifier).__name__ == f"{family}ForSequenceClassification"
    assert classifier.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        logits = classifier(**_torch(batch)).logits.numpy()
    np.testing.assert_allclose(logits, ours["sst2"], atol=1e-4)
    assert np.abs(ours["sst2"]).max() > 0.1  # not trivially equal

    regressor = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(tmp_path / "hf" / "stsb"))
    assert regressor.config.problem_type == "regression"
    with torch.no_grad():
        scores = regressor(**_torch(batch)).logits.numpy()[:, 0]
    # In STS-B's 0-5 range, as the package's predictions are.
    np.testing.assert_allclose(scores, ours["stsb"] * 5.0, atol=1e-4)


@pytest.mark.parametrize("model_type", ["electra", "bert"])
def test_token_classification_and_multiple_choice(model_type, sample_paths, tmp_path):
    tags = ("DT", "JJ", "NN", "VBD", ".")
    tagger = _model(sample_paths, model_type, [Head("pos", "tagging", 5, tags)])
    save_hf_finetuned(tagger, str(tmp_path / "pos"))
    batch = _hf_inputs(str(tmp_path / "pos"), TEXTS)
    every_token = np.tile(np.arange(32, dtype=np.int32), (len(TEXTS), 1))
    ours = tagger({**_ours(batch), "word_positions": every_token,
                   "word_mask": np.ones_like(every_token)})["pos"]
    hf = transformers.AutoModelForTokenClassification.from_pretrained(str(tmp_path / "pos"))
    assert hf.config.id2label[4] == "."
    with torch.no_grad():
        logits = hf(**_torch(batch)).logits.numpy()
    np.testing.assert_allclose(logits, ours, atol=1e-4)

    chooser = _model(sample_paths, model_type,
                     [Head("race", "multiple_choice", 1, ("A", "B", "C", "D"))])
    save_hf_finetuned(chooser, str(tmp_path / "race"))
    article = " ".join(TEXTS)
    options = ["the acting", "the ending", "the café", "five minutes"]
    batch = _hf_inputs(str(tmp_path / "race"), [article] * 4,
                       [f"what was superb ? {o}" for o in options])
    choices = {k: v.reshape(1, 4, 32) for k, v in _ours(batch).items()}
    ours = chooser(choices)["race"]
    hf = transformers.AutoModelForMultipleChoice.from_pretrained(str(tmp_path / "race"))
    with torch.no_grad():
        logits = hf(**{k: v.reshape(1, 4, 32) for k, v in _torch(batch).items()}).logits
    np.testing.assert_allclose(logits.numpy(), ours, atol=1e-4)


def test_a_crf_head_or_a_model_without_vocab_is_refused(sample_paths, tmp_path):
    crf = _model(sample_paths, "electra", [Head("pos", "tagging", 3, ("A", "B", "C"))],
                 use_crf=True)
    with pytest.raises(ValueError, match="a CRF tagging head has no transformers "
                                         "counterpart"):
        save_hf_finetuned(crf, str(tmp_path / "crf"))
    assert not os.path.exists(tmp_path / "crf")
    bare = _model(sample_paths, "electra", [Head("sst2", "classification", 2, LABELS)])
    bare.preprocessing = None
    with pytest.raises(ValueError, match="carries no vocab"):
        save_hf_finetuned(bare, str(tmp_path / "bare"))
    # One head: the folder is the model. Through electra-export, from a finetuned.keras.
    single = _model(sample_paths, "electra", [Head("sst2", "classification", 2, LABELS)])
    save_keras(single, str(tmp_path / "finetuned.keras"))
    values = run_export.define_flags(flags.FlagValues())
    values(["electra-export", f"--model={tmp_path / 'finetuned.keras'}", "--format=hf",
            f"--output={tmp_path / 'one'}"])
    summary = run_export.export(values)
    assert summary.endswith("sst2: ElectraForSequenceClassification (2 labels)")
    with open(tmp_path / "one" / "config.json") as f:
        config = json.load(f)
    assert config["architectures"] == ["ElectraForSequenceClassification"]
    assert config["label2id"] == {"negative": 0, "positive": 1}
