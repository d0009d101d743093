"""Serving: electra-export's SavedModel takes raw text and answers as the package's own
featurization and model do (also loaded with only tensorflow and tensorflow_text);
electra-predict labels TSV and JSONL files; bad input is one line naming file and line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from data_prep import samples
from electra_tf import cli, files, run_export, run_predict
from electra_tf.checkpoints import save_keras
from electra_tf.configs import get_config
from electra_tf.finetuning import serving
from electra_tf.finetuning.model import FinetuningModel, Head
from electra_tf.finetuning.trainer import FINETUNED_FILE
from electra_tf.modeling import Encoder, fused
from electra_tf.tasks.readers import MultipleChoiceExample, PairExample, TaggedSentence
from electra_tf.tasks.specs import PairTask, RaceTask, TaggingTask, truncate_pair
from electra_tf.tokenization import WordPieceTokenizer, load_vocab

MAX_SEQ_LENGTH = 24
TAGS = ("DT", "JJ", "NN", "VB", ".")
LONG = ("This review keeps going on and on, with many more words than the short maximum "
        "sequence length allows, so it has to be cut exactly where the package cuts it.")
TEXTS = [
    "The café's crème brûlée was naïve, but délicieux!",
    "It's a great deal of sizzle and very little steak.",
    "Zxqwvbn flurbified the ☃ near 東京 (really).",
    LONG,
    "A zero-width \u200b word,\tand\u00a0odd   spacing.",
    "",
    "Pneumonoultramicroscopic" + "o" * 300 + " words.",
]
PAIRS = [(TEXTS[0], TEXTS[1]), (LONG, "Short."), ("Short.", LONG), (LONG, LONG.upper()),
         (TEXTS[2], ""), (TEXTS[6], TEXTS[4])]
RACE = [
    MultipleChoiceExample(
        "1", "Tom went to the market on Monday. He bought apples, pears and a very large "
        "watermelon for the family picnic by the lake, which his sister had planned.",
        "Tom went to the _ on Monday.",
        ["market", "school", "beach of a far-away city", "zoo"], None, "middle"),
    MultipleChoiceExample(
        "2", "Short article.", "What did he buy with all the money he had saved for years?",
        ["apples", "pears", "a watermelon", "nothing at all, really, because he was poor"],
        None, "high"),
]


def _head_weights_at_random(model: FinetuningModel, seed: int) -> None:
    """Heads of unit-scale weights, so labels and tags differ between texts (fresh heads
    put out nearly the same answer for every text)."""
    rng = np.random.default_rng(seed)
    for layer in [*model.heads.values(), *model.crfs.values()]:
        for weight in layer.weights:
            weight.assign(rng.normal(size=weight.shape).astype(np.float32))


def _model(vocab, heads, use_crf=False, seed=0) -> FinetuningModel:
    keras.utils.set_random_seed(seed)
    encoder = Encoder(get_config("electra", "debug").replace(vocab_size=len(vocab)))
    model = FinetuningModel(encoder, heads, use_crf=use_crf, preprocessing={
        "vocab": vocab, "do_lower_case": True, "max_seq_length": MAX_SEQ_LENGTH})
    model.build_heads()
    _head_weights_at_random(model, seed)
    return model


def _boundary_between(model, features, task="sst2_mr") -> None:
    """Move the classification head's decision boundary between the middle two of the
    texts of `features` (a fresh encoder's [CLS] vectors differ so little from text to
    text that any head gives them all one label)."""
    logits = model.predict_step(features.inputs)[task].numpy()
    margins = np.sort(logits[:, 1] - logits[:, 0])
    middle = len(margins) // 2
    bias = model.heads[task].bias
    bias.assign(bias.numpy() - [0.0, (margins[middle - 1] + margins[middle]) / 2])


@pytest.fixture(scope="module")
def vocab(sample_paths):
    return load_vocab(sample_paths["vocab"])


@pytest.fixture(scope="module")
def tokenizer(vocab):
    return WordPieceTokenizer(vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def multitask(vocab, tokenizer):
    """Classification, regression and CRF tagging heads on one encoder."""
    model = _model(vocab, [Head("sst2_mr", "classification", 2, ("0", "1")),
                           Head("stsb_mr", "regression", 1, label_range=(-4.0, 4.0)),
                           Head("pos_wsj", "tagging", 5, TAGS)], use_crf=True, seed=1)
    _boundary_between(model, _single_features(tokenizer, TEXTS))
    return model


@pytest.fixture(scope="module")
def race_model(vocab):
    return _model(vocab, [Head("race", "multiple_choice", 1, ("A", "B", "C", "D"))], seed=2)


@pytest.fixture(scope="module")
def exported(multitask, race_model, tmp_path_factory):
    """{name: (SavedModel folder, its Servable)} of the two models, exported with the XLA
    kernels enabled (the package's default; the export must trace the plain ops)."""
    folder = tmp_path_factory.mktemp("saved_models")
    out = {}
    with mock.patch.object(fused, "_enabled", True):
        for name, model in (("multitask", multitask), ("race", race_model)):
            path = serving.export_saved_model(model, str(folder / name / "1"))
            out[name] = (path, serving.load_servable(path))
    return out


# ----------------------------------------------------------------- the package's answers

def _single_features(tokenizer, texts):
    return PairTask("sst2_mr").featurize([PairExample(str(i), t, None, None)
                                          for i, t in enumerate(texts)],
                                         tokenizer, MAX_SEQ_LENGTH)


def _pair_features(tokenizer, pairs):
    return PairTask("sst2_mr").featurize([PairExample(str(i), a, b, None)
                                          for i, (a, b) in enumerate(pairs)],
                                         tokenizer, MAX_SEQ_LENGTH)


def _tagging_task():
    task = TaggingTask("pos_wsj")
    task.tags = list(TAGS)
    return task


def _tagging_features(tokenizer, texts):
    return _tagging_task().featurize([TaggedSentence(str(i), t.split(), None)
                                      for i, t in enumerate(texts)],
                                     tokenizer, MAX_SEQ_LENGTH)


def _race_features(tokenizer, examples):
    return RaceTask().featurize(examples, tokenizer, MAX_SEQ_LENGTH)


def _sentence_answers(model, features) -> dict[str, np.ndarray]:
    """What the package answers: labels, probabilities and scores in the task's range."""
    outputs = model.predict_step(features.inputs)
    logits = outputs["sst2_mr"].numpy()
    return {"sst2_mr_label": np.array(["0", "1"])[logits.argmax(-1)],
            "sst2_mr_probabilities": tf.nn.softmax(logits).numpy(),
            "stsb_mr_score": PairTask("stsb_mr").predictions(outputs["stsb_mr"].numpy())}


def _package_tags(model, tokenizer, texts) -> list[list[str]]:
    """Each text's tag per whitespace-split word; "" for the words beyond the length."""
    ids = model.predict_step(_tagging_features(tokenizer, texts).inputs)["pos_wsj"].numpy()
    return [[TAGS[ids[i, j]] if j < ids.shape[1] and ids[i, j] >= 0 else ""
             for j in range(len(text.split()))] for i, text in enumerate(texts)]


def _strings(array) -> list:
    return [_strings(a) if isinstance(a, np.ndarray) else a.decode() for a in array]


def _served_tags(outputs, texts) -> list[list[str]]:
    tags = _strings(outputs["pos_wsj_tags"])
    words = _strings(outputs["words"])
    for i, text in enumerate(texts):
        assert words[i][:len(text.split())] == text.split()
        assert set(words[i][len(text.split()):]) <= {""}, "padding past the words"
        assert set(tags[i][len(text.split()):]) <= {""}
    return [tags[i][:len(text.split())] for i, text in enumerate(texts)]


# --------------------------------------------------------------------------- the tests

def test_truncated_pair_lengths_are_truncate_pairs():
    lengths = [(a, b, limit) for a in range(12) for b in range(12) for limit in range(16)]
    expected = []
    for a, b, limit in lengths:
        left, right = [0] * a, [0] * b
        truncate_pair(left, right, limit)
        expected.append((len(left), len(right)))
    a, b, limit = (tf.constant(column) for column in zip(*lengths, strict=True))
    got = serving.truncated_pair_lengths(a, b, limit)
    assert list(zip(got[0].numpy().tolist(), got[1].numpy().tolist(), strict=True)) == expected


def test_the_graph_splits_words_where_python_does(vocab):
    spaces = {c for c in map(chr, range(0x110000)) if c.isspace()}
    pattern = re.compile(f"[{serving.WHITESPACE}]")
    assert {c for c in map(chr, range(0x3100)) if pattern.fullmatch(c)} == spaces
    text = "a\x1cb\u00a0c\u3000d \u200b e\t\nf\u2028"
    assert _strings(serving.TextFeatures(vocab, True, 8).words(tf.constant([text]))
                    .to_list()[0]) == text.split()


def test_the_graph_featurizes_exactly_as_the_package(vocab, tokenizer):
    features = serving.TextFeatures(vocab, True, MAX_SEQ_LENGTH)
    cases = [
        (_single_features(tokenizer, TEXTS), features.single(tf.constant(TEXTS))),
        (_pair_features(tokenizer, PAIRS),
         features.pair(*(tf.constant(column) for column in zip(*PAIRS, strict=True)))),
        (_tagging_features(tokenizer, TEXTS), features.tagging(tf.constant(TEXTS))[0]),
        (_race_features(tokenizer, RACE), features.multiple_choice(
            tf.constant([e.article for e in RACE]), tf.constant([e.question for e in RACE]),
            tf.constant([e.options for e in RACE]))),
    ]
    for expected, got in cases:
        assert sorted(got) == sorted(expected.inputs)
        for key, value in expected.inputs.items():
            np.testing.assert_array_equal(got[key].numpy(), value, err_msg=key)
    # the long texts were cut, and the tagging truncation dropped whole words
    assert cases[0][0].inputs["input_mask"][TEXTS.index(LONG)].all()
    assert sum(cases[2][0].extra["truncated_words"]) > 0
    # cased: the same tokenizer settings as WordPieceTokenizer(do_lower_case=False)
    cased = _single_features(WordPieceTokenizer(vocab, do_lower_case=False), TEXTS)
    got = serving.TextFeatures(vocab, False, MAX_SEQ_LENGTH).single(tf.constant(TEXTS))
    np.testing.assert_array_equal(got["input_ids"].numpy(), cased.inputs["input_ids"])
    assert not np.array_equal(cased.inputs["input_ids"], cases[0][0].inputs["input_ids"])


def test_the_saved_model_answers_as_the_package(multitask, tokenizer, exported):
    path, servable = exported["multitask"]
    assert servable.info["signatures"] == {
        "serving_default": {"inputs": ["text"], "tasks": ["sst2_mr", "stsb_mr", "pos_wsj"]},
        "pairs": {"inputs": ["text", "text_b"], "tasks": ["sst2_mr", "stsb_mr"]}}
    single = servable.run("serving_default", text=np.array(TEXTS, object))
    pairs = servable.run("pairs", text=np.array([a for a, _ in PAIRS], object),
                         text_b=np.array([b for _, b in PAIRS], object))
    assert sorted(single) == ["pos_wsj_tags", "sst2_mr_label", "sst2_mr_probabilities",
                              "stsb_mr_score", "words"]
    assert sorted(pairs) == ["sst2_mr_label", "sst2_mr_probabilities", "stsb_mr_score"]
    for served, features in ((single, _single_features(tokenizer, TEXTS)),
                             (pairs, _pair_features(tokenizer, PAIRS))):
        expected = _sentence_answers(multitask, features)
        assert _strings(served["sst2_mr_label"]) == expected["sst2_mr_label"].tolist()
        np.testing.assert_allclose(served["sst2_mr_probabilities"],
                                   expected["sst2_mr_probabilities"], atol=1e-5)
        # float32 agreement: the export traces the plain ops, whose rounding differs
        # from the package's kernels' by ~1 ulp per op (scores here are ~16)
        np.testing.assert_allclose(served["stsb_mr_score"], expected["stsb_mr_score"],
                                   rtol=1e-5, atol=1e-5)
    assert len(set(_strings(single["sst2_mr_label"]))) == 2  # the answers differ by text
    tags = _served_tags(single, TEXTS)
    assert tags == _package_tags(multitask, tokenizer, TEXTS)
    assert len({t for row in tags for t in row} - {""}) > 2
    assert tags[TEXTS.index(LONG)][-1] == ""  # a word past max_seq_length has no tag

    # predict_rows: the same answers, and a list of words reads as the text they make
    rows = [{"text": TEXTS[0], "id": 7}, {"words": TEXTS[1].split()}]
    assert serving.predict_rows(servable, rows, "pos_wsj") == [
        {"id": 7, "task": "pos_wsj", "words": TEXTS[0].split(), "tags": tags[0]},
        {"task": "pos_wsj", "words": TEXTS[1].split(), "tags": tags[1]}]
    [first, second] = serving.predict_rows(
        servable, [{"text": TEXTS[0]}, {"text": PAIRS[1][0], "text_b": PAIRS[1][1]}],
        "sst2_mr", batch_size=2)
    assert first["label"] == _strings(single["sst2_mr_label"])[0]
    assert second["probabilities"] == pytest.approx(
        dict(zip(("0", "1"), pairs["sst2_mr_probabilities"][1].tolist(), strict=True)),
        abs=1e-6)
    [score] = serving.predict_rows(servable, [{"text": TEXTS[2]}], "stsb_mr")
    assert score == {"task": "stsb_mr", "score": pytest.approx(
        float(single["stsb_mr_score"][2]), abs=1e-5)}
    with pytest.raises(ValueError, match=r"3 task heads \(sst2_mr, stsb_mr, pos_wsj\): "
                                         r"choose one with --task"):
        serving.predict_rows(servable, rows)


def test_the_multiple_choice_saved_model_answers_as_the_package(race_model, tokenizer,
                                                                exported):
    path, servable = exported["race"]
    assert set(servable.info["signatures"]) == {"multiple_choice", "serving_default"}
    inputs = {"article": np.array([e.article for e in RACE], object),
              "question": np.array([e.question for e in RACE], object),
              "options": np.array([e.options for e in RACE], object)}
    scores = race_model.predict_step(_race_features(tokenizer, RACE).inputs)["race"].numpy()
    for signature in ("multiple_choice", "serving_default"):
        served = servable.run(signature, **inputs)
        np.testing.assert_allclose(served["race_scores"], scores, rtol=1e-5, atol=1e-5)
        assert _strings(served["race_label"]) == ["ABCD"[i] for i in scores.argmax(-1)]
    rows = [{key: value[i] for key, value in inputs.items()} for i in range(len(RACE))]
    predictions = serving.predict_rows(servable, rows)
    assert [p["label"] for p in predictions] == ["ABCD"[i] for i in scores.argmax(-1)]
    assert list(predictions[1]["scores"].values()) == pytest.approx(scores[1].tolist(),
                                                                     rel=1e-5, abs=1e-5)
    # the model in memory, and the SavedModel as tf.saved_model.load gives it, alike
    for model in (race_model, tf.saved_model.load(path)):
        again = serving.predict_rows(model, rows)
        assert [p["label"] for p in again] == [p["label"] for p in predictions]
        np.testing.assert_allclose([list(p["scores"].values()) for p in again],
                                   [list(p["scores"].values()) for p in predictions],
                                   atol=1e-5)


def test_the_saved_model_holds_no_xla_compiled_functions(exported):
    # The package's XLA kernels are for training; an export runs on any TF runtime.
    for path, _ in exported.values():
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            assert b"_XlaMustCompile" not in f.read()


def test_the_saved_model_loads_with_tensorflow_and_tensorflow_text_alone(exported):
    script = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
paths, texts, pairs, race = json.loads(sys.argv[1])
multitask, race_model = (tf.saved_model.load(p) for p in paths)
def plain(outputs):
    return {k: v.numpy().tolist() if v.dtype != tf.string else
            [[s.decode() for s in row] if v.shape.rank > 1 else row.decode()
             for row in v.numpy()] for k, v in outputs.items()}
out = {"single": plain(multitask.signatures["serving_default"](text=tf.constant(texts))),
       "pairs": plain(multitask.signatures["pairs"](text=tf.constant([a for a, _ in pairs]),
                                                    text_b=tf.constant([b for _, b in pairs]))),
       "race": plain(race_model.signatures["multiple_choice"](
           **{k: tf.constant(v) for k, v in race.items()})),
       "info": json.loads(multitask.serving_info.numpy()),
       "modules": sorted(m for m in sys.modules if m.split(".")[0] == "electra_tf")}
print(json.dumps(out))
"""
    race = {"article": [e.article for e in RACE], "question": [e.question for e in RACE],
            "options": [e.options for e in RACE]}
    paths = [exported["multitask"][0], exported["race"][0]]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps([paths, TEXTS, PAIRS, race])],
        capture_output=True, text=True, timeout=300, env=env, cwd="/")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["modules"] == []  # electra_tf not imported
    servable = exported["multitask"][1]
    assert out["info"] == servable.info
    expected = {
        "single": servable.run("serving_default", text=np.array(TEXTS, object)),
        "pairs": servable.run("pairs", text=np.array([a for a, _ in PAIRS], object),
                              text_b=np.array([b for _, b in PAIRS], object)),
        "race": exported["race"][1].run("multiple_choice",
                                        **{k: np.array(v, object) for k, v in race.items()})}
    for signature, outputs in expected.items():
        assert sorted(out[signature]) == sorted(outputs)
        for key, value in outputs.items():
            if value.dtype == object:
                assert out[signature][key] == _strings(value), key
            else:
                np.testing.assert_allclose(out[signature][key], value, atol=1e-5, err_msg=key)


# ------------------------------------------------------------------------ the commands

@pytest.fixture(scope="module")
def sst2_test_lines():
    """The header and first 10 rows of the real sample SST-2 test split."""
    with files.open_file(files.join(samples.path("movie_reviews"), "sst2_mr", "test.tsv")) as f:
        lines = f.read().splitlines()[:11]
    assert lines[0] == "index\tsentence"
    return lines


@pytest.fixture(scope="module")
def sst2_run(vocab, tokenizer, sst2_test_lines, tmp_path_factory):
    """A finetuning run dir holding a one-head finetuned.keras, and the model."""
    model = _model(vocab, [Head("sst2_mr", "classification", 2, ("0", "1"))], seed=3)
    _boundary_between(model, _single_features(
        tokenizer, [line.split("\t")[1] for line in sst2_test_lines[1:]]))
    run_dir = tmp_path_factory.mktemp("finetuning") / "sst2_mr"
    save_keras(model, str(run_dir / FINETUNED_FILE))
    return str(run_dir), model


def _run(module, prog, *args) -> str:
    """A command's work in this process with `args` as its flags: its closing line."""
    values = module.define_flags(flags.FlagValues())
    values([prog, *args])
    return {"electra-predict": run_predict.predict,
            "electra-export": run_export.export}[prog](values)


def _fails(capsys, module, prog, *args) -> str:
    """The one line a command prints for bad input (exit status 1)."""
    values = module.define_flags(flags.FlagValues())
    values([prog, *args])
    work = {"electra-predict": run_predict.predict, "electra-export": run_export.export}[prog]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(prog, lambda: work(values))([prog])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in files.read_text(path).splitlines()]


def test_predict_and_export_commands_on_tsv_and_jsonl(sst2_run, sst2_test_lines, tokenizer,
                                                      tmp_path, capsys):
    run_dir, model = sst2_run
    lines = sst2_test_lines
    sentences = [line.split("\t")[1] for line in lines[1:]]
    tsv = tmp_path / "test.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    features = _single_features(tokenizer, sentences)
    logits = model.predict_step(features.inputs)["sst2_mr"].numpy()
    probabilities = tf.nn.softmax(logits).numpy()
    labels = [("0", "1")[i] for i in logits.argmax(-1)]
    assert len(set(labels)) == 2

    def check(predictions, ids):
        assert [p["id"] for p in predictions] == ids
        assert [p["task"] for p in predictions] == ["sst2_mr"] * len(sentences)
        assert [p["label"] for p in predictions] == labels
        got = [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in predictions]
        np.testing.assert_allclose(got, probabilities, atol=1e-5)

    out = tmp_path / "from_keras.jsonl"
    assert _run(run_predict, "electra-predict", f"--model={run_dir}", f"--input={tsv}",
                f"--output={out}", "--batch_size=4") == (
        f"wrote 10 sst2_mr predictions to {out}")
    check(_jsonl(str(out)), [str(i) for i in range(10)])
    assert sorted(os.listdir(tmp_path)) == ["from_keras.jsonl", "test.tsv"]  # no temporary

    # electra-export end to end, to a remote path (no folder rename there), then predict
    # from the SavedModel on JSONL, every path remote
    exported = "ram://serving_test/exports/sst2_mr/1"
    summary = _run(run_export, "electra-export", f"--model={run_dir}", f"--output={exported}")
    assert summary == (f"wrote SavedModel {exported}: heads sst2_mr (classification); "
                       f"signatures serving_default, pairs")
    assert sorted(files.listdir(exported)) == ["assets", "fingerprint.pb", "saved_model.pb",
                                               "variables"]
    # A SavedModel may replace a SavedModel; a folder of other files stays untouched.
    _run(run_export, "electra-export", f"--model={run_dir}", f"--output={exported}")
    files.atomic_write("ram://serving_test/mine/notes.txt", "mine")
    with pytest.raises(ValueError, match="mine: exists and is not a SavedModel"):
        _run(run_export, "electra-export", f"--model={run_dir}",
             "--output=ram://serving_test/mine")
    assert files.read_text("ram://serving_test/mine/notes.txt") == "mine"
    jsonl = "ram://serving_test/input.jsonl"
    files.atomic_write(jsonl, "".join(json.dumps({"id": 100 + i, "sentence": s}) + "\n"
                                      for i, s in enumerate(sentences)))
    remote_out = "ram://serving_test/out/predictions.jsonl"
    _run(run_predict, "electra-predict", f"--model={exported}", f"--input={jsonl}",
         f"--output={remote_out}")
    check(_jsonl(remote_out), [100 + i for i in range(10)])

    # bad input: one line naming the file and line, nothing written
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence": "fine"}\n{"sentence": "broken\n')
    bad_out = tmp_path / "bad_out.jsonl"
    assert _fails(capsys, run_predict, "electra-predict", f"--model={exported}",
                  f"--input={bad}", f"--output={bad_out}") == (
        f"electra-predict: error: {bad}:2: not valid JSON (Unterminated string starting at)")
    assert _fails(capsys, run_predict, "electra-predict", f"--model={exported}",
                  f"--input={tsv}", f"--output={bad_out}", "--task=pos") == (
        f"electra-predict: error: {exported} has no task head 'pos'; its heads: sst2_mr")
    assert not bad_out.exists()
    assert _fails(capsys, run_export, "electra-export", f"--model={tmp_path}",
                  f"--output={tmp_path / 'export'}") == (
        f"electra-export: error: {tmp_path}: no {FINETUNED_FILE} in this folder "
        f"(electra-finetune writes it in its run dir)")


@pytest.mark.parametrize("name, text, kind, error", [
    ("missing.jsonl", '{"sentence": "a"}\n\n{"text": "b"}\n', "classification",
     "{path}:3: no field 'sentence'"),
    ("type.jsonl", '{"sentence": "a"}\n{"sentence": 3}\n', "classification",
     "{path}:2: field 'sentence' must be a string, got a number"),
    ("array.jsonl", '["a", "b"]\n', "classification",
     "{path}:1: expected a JSON object, got a list"),
    ("options.jsonl", '{"article": "a", "question": "q", "options": ["x", "y", "z"]}\n',
     "multiple_choice", "{path}:1: field 'options' must hold 4 options, got 3"),
    ("words.jsonl", '{"words": ["fine", "two words"]}\n', "tagging",
     "{path}:1: field 'words': the word 'two words' is empty or holds whitespace"),
    ("words_type.jsonl", '{"words": "not a list"}\n', "tagging",
     "{path}:1: field 'words' must be a list of strings, got a string"),
    ("empty.tsv", "", "classification", "{path}: empty file"),
    ("header.tsv", "index\tsentence\n", "classification",
     "{path}: no rows to predict (only a header or blank lines)"),
    ("fields.tsv", "index\tsentence\n0\tfine\n1\tone\ttoo many\n", "classification",
     "{path}:3: 3 tab-separated fields, the header has 2"),
    ("columns.tsv", "index\tbody\n0\tfine\n", "classification",
     "{path}:2: no text column for a classification task among the columns index, body; "
     "looked for "
     "sentence1,sentence2; question1,question2; question,sentence; premise,hypothesis; "
     "#1 String,#2 String; text,text_b; text_a,text_b; sentence; text; text_a; review; "
     "name them with --text_columns"),
])
def test_bad_rows_are_errors_naming_file_and_line(tmp_path, name, text, kind, error):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        serving.read_rows(str(path), kind)
    assert str(info.value) == error.format(path=path)


def test_rows_read_by_column_name_or_as_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("idx\tquestion\tsentence\n3\tWho?\tHe did.\n", encoding="utf-8")
    assert serving.read_rows(str(path), "regression") == [
        {"text": "Who?", "text_b": "He did.", "id": "3"}]
    assert serving.read_rows(str(path), "classification", ["sentence"]) == [
        {"text": "He did.", "id": "3"}]
    with pytest.raises(ValueError, match="--text_columns: a classification task reads 1 or "
                                         "2 column"):
        serving.read_rows(str(path), "classification", ["idx", "question", "sentence"])
    race = tmp_path / "race.tsv"
    race.write_text('article\tquestion\toptions\nA.\tQ _?\t["a", "b", "c", "d"]\n')
    assert serving.read_rows(str(race), "multiple_choice") == [
        {"article": "A.", "question": "Q _?", "options": ["a", "b", "c", "d"]}]
