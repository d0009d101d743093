"""Extractive QA: SQuAD and MRQA readers, windowed featurization (a labelled span maps back
to the answer's text), n-best decoding, the QA head, and a finetuning run end to end."""

import gzip
import json

import keras
import numpy as np
import pytest
from recipes import finetune_recipe

from electra_tf.configs import get_config
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.model import FinetuningModel
from electra_tf.finetuning.trainer import finetune
from electra_tf.modeling import Encoder
from electra_tf.tasks import qa
from electra_tf.tasks.specs import QAOptions, QATask, get_task
from electra_tf.tokenization import WordPieceTokenizer

# From the SQuAD 2.0 article "Normans" (Wikipedia, CC BY-SA).
NORMANS = ("The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people "
           "who in the 10th and 11th centuries gave their name to Normandy, a region in France. "
           "They were descended from Norse (\"Norman\" comes from \"Norseman\") raiders and "
           "pirates from Denmark, Iceland and Norway who, under their leader Rollo, agreed to "
           "swear fealty to King Charles III of West Francia.")
KING = ("Rollo's son William Longsword succeeded him (927-942). The duchy's first rulers "
        "were counts; Richard I (942-996) was the first to be called duke.")


def answer(context, text, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(text, start + 1)
    return {"text": text, "answer_start": start}


def squad_json(v2=True):
    qas = [
        {"id": "q1", "question": "In what country is Normandy located?",
         "answers": [answer(NORMANS, "France"), answer(NORMANS, "a region in France")],
         "is_impossible": False},
        {"id": "q2", "question": "Who was the Norse leader?",
         "answers": [answer(NORMANS, "Rollo")], "is_impossible": False},
        {"id": "q3", "question": "From which countries did the Norse originate?",
         "answers": [answer(NORMANS, "Denmark, Iceland and Norway")], "is_impossible": False},
    ]
    if v2:
        qas.append({"id": "q4", "question": "Who gave their name to France?",
                    "answers": [], "plausible_answers": [answer(NORMANS, "Normans")],
                    "is_impossible": True})
    king = [{"id": "k1", "question": "When did William Longsword rule?",
             "answers": [answer(KING, "927")], "is_impossible": False},
            {"id": "k2", "question": "Who was the first duke?",
             "answers": [answer(KING, "Richard I")], "is_impossible": False}]
    return {"version": "v2.0" if v2 else "1.1",
            "data": [{"title": "Normans", "paragraphs": [{"context": NORMANS, "qas": qas},
                                                          {"context": KING, "qas": king}]}]}


@pytest.fixture(scope="module")
def tokenizer(sample_paths):
    return WordPieceTokenizer(sample_paths["vocab"])


def write_squad(folder, value, split="train"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


# ----------------------------------------------------------------------------- reading

def test_squad_reader_keeps_answers_offsets_and_unanswerable(tmp_path):
    path = write_squad(tmp_path, squad_json())
    examples = qa.read_squad(path, v2=True, training=True)
    assert [e.guid for e in examples] == ["q1", "q2", "q3", "q4", "k1", "k2"]
    q1 = examples[0]
    assert q1.answers == ["France", "a region in France"]
    assert (q1.answer_text, q1.answer_start) == ("France", NORMANS.index("France"))
    assert examples[3].is_impossible and examples[3].answers == []
    assert examples[3].answer_text is None
    # read as SQuAD 1.1, is_impossible is ignored: q4 has no answer and is dropped in training
    v1 = qa.read_squad(path, v2=False, training=True)
    assert [e.guid for e in v1] == ["q1", "q2", "q3", "k1", "k2"]
    assert len(qa.read_squad(path, v2=False, training=False)) == 6


# Malformed SQuAD and MRQA files: the QA rows of tests/test_hostile_input.py.


def test_a_test_split_counts_as_labelled_only_with_every_answer(tmp_path):
    folder = tmp_path / "finetuning_data" / "squadv1"
    task = get_task("squadv1")
    assert task.read_labelled_test(str(tmp_path)) is None  # no test.json
    write_squad(folder, squad_json(v2=False), "test")
    assert [e.guid for e in task.read_labelled_test(str(tmp_path))] == [
        "q1", "q2", "q3", "k1", "k2"]
    hidden = squad_json(v2=False)
    hidden["data"][0]["paragraphs"][1]["qas"][0]["answers"] = []  # as SQuAD's hidden test set
    write_squad(folder, hidden, "test")
    assert task.read_labelled_test(str(tmp_path)) is None


def test_training_drops_answers_not_found_again_as_the_original(tmp_path, caplog):
    data = squad_json(v2=False)
    qas = data["data"][0]["paragraphs"][0]["qas"]
    qas[0]["answers"] = [{"text": "Germany", "answer_start": NORMANS.index("France")}]
    path = write_squad(tmp_path, data)
    assert [e.guid for e in qa.read_squad(path, v2=False, training=True)] == [
        "q2", "q3", "k1", "k2"]
    assert "1 of 5 training questions dropped" in caplog.text
    assert len(qa.read_squad(path, v2=False, training=False)) == 5  # dev keeps every one


def mrqa_lines(tmp_path, lines, name="dev.jsonl.gz"):
    path = tmp_path / name
    text = "\n".join(json.dumps(line) if not isinstance(line, str) else line
                     for line in lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return str(path)


def test_mrqa_reader_trains_on_the_detected_span_and_scores_the_gold_strings(tmp_path):
    start = NORMANS.index("Rollo")
    path = mrqa_lines(tmp_path, [
        {"header": {"dataset": "SQuAD", "split": "dev"}},
        {"context": NORMANS, "qas": [{
            "qid": "m1", "question": "Who led the Norse?", "answers": ["Rollo", "leader Rollo"],
            "detected_answers": [{"text": "Rollo", "char_spans": [[start, start + 4]],
                                  "token_spans": [[30, 30]]}]}]}])
    [example] = qa.read_mrqa(path, training=True)
    assert (example.guid, example.answers) == ("m1", ["Rollo", "leader Rollo"])
    # keyed by qid, as the official MRQA script scores, even beside a source "id"
    record = {"context": NORMANS, "qas": [{"id": "source-7", "qid": "m1", "question": "?",
                                           "answers": ["Rollo"], "detected_answers": []}]}
    path = mrqa_lines(tmp_path, [{"header": {}}, record], "plain.jsonl")
    assert [e.guid for e in qa.read_mrqa(path, training=False)] == ["m1"]
    assert (example.answer_text, example.answer_start) == ("Rollo", start)
    assert get_task("newsqa").format == "mrqa" and not get_task("triviaqa").v2


# ----------------------------------------------------------------------------- features

def test_windows_and_max_context_as_the_original():
    assert qa.doc_windows(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert qa.doc_windows(3, 4, 2) == [(0, 3)]
    # The original's example: "the man went to the store and bought a gallon of milk";
    # windows "the man went to the", "to the store and bought", "and bought a gallon of":
    # "bought" (word 7) has most context in the third (1 left, 3 right).
    windows = [(0, 5), (3, 5), (6, 5)]
    assert [qa.max_context(windows, w, 7) for w in range(3)] == [False, False, True]
    assert [qa.max_context(windows, w, 4) for w in range(3)] == [False, True, False]


def test_featurized_labels_map_back_to_the_answer_text(tmp_path, tokenizer):
    path = write_squad(tmp_path, squad_json())
    examples = qa.read_squad(path, v2=True, training=True)
    task = QATask("squad", QAOptions(max_query_length=12, doc_stride=16))
    features = task.featurize(examples, tokenizer, 48)
    extra = features.extra
    n = len(features)
    assert features.inputs["input_ids"].shape == (n, 48) and features.labels.shape == (n, 3)
    assert n > len(examples)  # long contexts are cut into several windows
    ids = features.inputs["input_ids"]
    found = {}
    for f in range(n):
        example = examples[extra["example_index"][f]]
        row, segments = ids[f], features.inputs["segment_ids"][f]
        offset = extra["doc_offset"][f]
        question = tokenizer.tokenize(example.question)[:12]
        assert row[0] == 101 and row[1:offset - 1].tolist() == question
        assert row[offset - 1] == 102 and segments[:offset].sum() == 0
        assert features.inputs["input_mask"][f].sum() == offset + extra["doc_length"][f] + 1
        assert segments[offset:offset + extra["doc_length"][f] + 1].min() == 1
        start, end, impossible = features.labels[f]
        assert impossible == int(example.is_impossible)
        if (start, end) == (0, 0):
            continue
        found.setdefault(example.guid, set()).add(qa.span_text(extra, f, start, end))
    # every answerable question has a window holding its whole answer, and the label's
    # pieces spell the answer's own text (not the whole words around it)
    assert found == {"q1": {"France"}, "q2": {"Rollo"}, "q3": {"Denmark, Iceland and Norway"},
                     "k1": {"927"}, "k2": {"Richard I"}}
    q4 = [f for f in range(n) if extra["example_index"][f] == 3]
    assert features.labels[q4].tolist() == [[0, 0, 1]] * len(q4)


def test_final_text_projects_pieces_onto_the_original_characters():
    assert qa.final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
    assert qa.final_text("1895", "(1895-1943).", True) == "1895"
    assert qa.final_text("cafe", "Café,", True) == "Café"
    assert qa.final_text("not there", "Steve Smith's", True) == "Steve Smith's"


# ----------------------------------------------------------------------------- decoding

def one_window_features(tokenizer, context, question, max_seq_length=40):
    example = qa.QAExample("x", question, context, ["?"])
    task = QATask("squadv1", QAOptions(max_query_length=10, doc_stride=64, n_best_size=3,
                                     max_answer_length=4))
    return task, task.featurize([example], tokenizer, max_seq_length)


def test_decode_skips_invalid_spans_and_ranks_by_start_plus_end(tokenizer):
    task, features = one_window_features(tokenizer, "Rollo agreed to swear fealty to King "
                                         "Charles III of West Francia.", "Who swore?")
    offset = features.extra["doc_offset"][0]
    pieces = features.extra["qa"]["contexts"][0]["pieces"]
    king = offset + pieces.index("king")
    # beam of 3 starts x 3 ends: the question (position 1), a backward span, a span
    # longer than max_answer_length, then the valid "king charles iii", "roll" (the
    # first piece of "rollo": its text is the word's first 4 characters) and "rollo"
    outputs = {"start_top_index": np.array([[1, king, offset]]),
               "start_top_log_probs": np.array([[-0.1, -0.5, -1.0]]),
               "end_top_index": np.array([[[2, 3, 4], [king - 1, king + 9, king + 2],
                                           [offset, offset + 1, offset + 9]]]),
               "end_top_log_probs": np.array([[[-0.1, -0.2, -0.3], [-0.1, -0.2, -0.3],
                                               [-0.1, -0.2, -0.3]]]),
               "answerable_logit": np.array([-3.0])}
    answers, null, nbest = qa.decode(outputs, features.extra, task.decode_options())
    assert answers == {"x": "King Charles III"}
    assert pieces[:2] == ["roll", "##o"]
    assert [e["text"] for e in nbest["x"]] == ["King Charles III", "Roll", "Rollo"]
    assert nbest["x"][0]["start_logit"] == pytest.approx(-0.5)
    assert sum(e["probability"] for e in nbest["x"]) == pytest.approx(1.0)
    assert null == {}  # SQuAD 1.1 scoring: no null score


def test_squad2_null_score_is_the_lowest_over_windows_and_thresholded(tokenizer):
    context = " ".join(f"word{i}" for i in range(30))
    task = QATask("squad", QAOptions(max_query_length=4, doc_stride=8))
    features = task.featurize([qa.QAExample("x", "which?", context, [])], tokenizer, 24)
    n = len(features)
    assert n > 2
    offset = features.extra["doc_offset"][0]
    outputs = {"start_logits": np.zeros((n, 24)), "end_logits": np.zeros((n, 24)),
               "start_top_index": np.full((n, 2), offset),
               "start_top_log_probs": np.zeros((n, 2)),
               "end_top_index": np.full((n, 2, 2), offset),
               "end_top_log_probs": np.zeros((n, 2, 2)),
               "answerable_logit": np.linspace(-3.0, -5.0, n)}
    answers, null, _ = task.answers(outputs, features)
    assert null == {"x": pytest.approx(-5.0)}
    assert answers == {"x": "word"}  # the first piece of "word0", in the first window only
    assert task.official_predictions(answers, null) == answers  # -5.0 <= -2.75: kept
    outputs["answerable_logit"] = np.full(n, -2.0)
    answers, null, _ = task.answers(outputs, features)
    assert task.official_predictions(answers, null) == {"x": ""}  # -2.0 > -2.75


def test_score_reports_the_official_squad2_numbers_as_fractions(tmp_path, tokenizer):
    path = write_squad(tmp_path, squad_json(), "dev")
    examples = qa.read_squad(path, v2=True, training=False)
    task = QATask("squad")
    gold = qa.gold_answers(task.featurize(examples, tokenizer, 64).extra)
    answers = {"q1": "France", "q2": "Rollo", "q3": "Denmark", "q4": "Normans",
               "k1": "927", "k2": "Richard"}
    null = {"q1": -5.0, "q2": -5.0, "q3": -5.0, "q4": 0.0, "k1": -5.0, "k2": -5.0}
    scores = task.score_answers(answers, null, gold)
    # q4's null score 0 > -2.75: answered "" (right); q3: P 1, R 1/4 ("denmark iceland
    # and norway" has 4 tokens), F1 0.4; k2: P 1, R 1/2 ("richard i"), F1 2/3
    assert scores["exact"] == pytest.approx(4 / 6)
    assert scores["f1"] == pytest.approx((4 + 0.4 + 2 / 3) / 6)
    assert scores["NoAns_exact"] == 1.0 and scores["HasAns_exact"] == pytest.approx(3 / 5)
    # the best threshold keeps the five answers (null -5) and blanks q4 (null 0)
    assert scores["best_f1_thresh"] == -5.0
    assert scores["best_f1"] == pytest.approx((1 + 4 + 0.4 + 2 / 3) / 6 - 1 / 6)
    assert "total" not in scores


def test_without_the_answerability_logit_the_null_score_is_relative_to_the_best_span(
        tokenizer):
    task = QATask("squad", QAOptions(max_query_length=10, doc_stride=64,
                                     answerable_classifier=False, joint_prediction=False))
    features = task.featurize([qa.QAExample("x", "who?", "Rollo agreed to swear fealty.", [])],
                              tokenizer, 24)
    offset = features.extra["doc_offset"][0]
    start, end = np.full((1, 24), -10.0), np.full((1, 24), -10.0)
    start[0, 0], end[0, 0] = 1.0, 1.0  # [CLS]: 2
    start[0, offset], end[0, offset + 1] = 3.0, 2.0  # "rollo": 5
    answers, null, _ = task.answers({"start_logits": start, "end_logits": end,
                                     "answerable_logit": np.zeros(1)}, features)
    # the original's score_diff: null (2) minus the best span's start + end (5)
    assert answers == {"x": "Rollo"} and null == {"x": pytest.approx(-3.0)}
    assert task.official_predictions(answers, null) == {"x": "Rollo"}  # -3 <= -2.75


# ----------------------------------------------------------------------------- the head

def test_qa_head_trains_and_predicts_beams(tokenizer):
    keras.utils.set_random_seed(0)
    encoder = Encoder(get_config("electra", "debug", {"vocab_size": len(tokenizer.vocab)}))
    task = QATask("squad", QAOptions(max_query_length=8, doc_stride=16))
    examples = [qa.QAExample("a", "who led the norse?", NORMANS, ["Rollo"], "Rollo",
                             NORMANS.index("Rollo")),
                qa.QAExample("b", "who was king?", KING, [], is_impossible=True)]
    features = task.featurize(examples, tokenizer, 32)
    model = FinetuningModel(encoder, [task], qa_head={"beam_size": 5})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    inputs = dict(features.inputs, start_positions=features.labels[:, 0])
    history = model.fit(inputs, {"squad": features.labels}, batch_size=len(features),
                        epochs=12, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] / 2
    out = model.predict(features.inputs, verbose=0)["squad"]
    n = len(features)
    assert out["answerable_logit"].shape == (n,)
    assert out["start_top_index"].shape == (n, 5)
    assert out["end_top_log_probs"].shape == (n, 5, 5)
    assert not out["end_logits"].any()  # as the original: none in joint prediction
    # starts only at [CLS] or in the context
    segments = features.inputs["segment_ids"]
    starts = out["start_top_index"]
    assert all(s == 0 or segments[i, s] == 1 for i in range(n) for s in starts[i][:2])
    answers, null, _ = task.answers(out, features)
    assert set(answers) == {"a", "b"} and set(null) == {"a", "b"}

    # the original's other branch: independent start and end layers
    separate = FinetuningModel(encoder, [QATask("squad")], qa_head={"joint_prediction": False})
    out = separate.predict(features.inputs, verbose=0)["squad"]
    assert out["start_logits"].shape == out["end_logits"].shape == (n, 32)
    context = (segments == 1) | (np.arange(32) == 0)
    assert (out["end_logits"][~context] < -900).all()  # masked outside [CLS] and the context
    task = QATask("squad", QAOptions(max_query_length=8, doc_stride=16, joint_prediction=False))
    assert set(task.answers(out, features)[0]) == {"a", "b"}


# ----------------------------------------------------------------------------- a run

def test_squad2_finetuning_learns_and_writes_the_official_files(tmp_path, sample_paths):
    for split in ("train", "dev"):
        write_squad(tmp_path / "finetuning_data" / "squad", squad_json(), split)
    test = squad_json()  # a test file without answers, as SQuAD's hidden test set
    for paragraph in test["data"][0]["paragraphs"]:
        for question in paragraph["qas"]:
            del question["answers"], question["is_impossible"]
    write_squad(tmp_path / "finetuning_data" / "squad", test, "test")
    (tmp_path / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    config = FinetuningConfig(data_dir=str(tmp_path), model_name="scratch", from_scratch=True,
                              model_size="debug", task_names=["squad"], learning_rate=3e-3,
                              num_train_epochs=20, train_batch_size=8, max_seq_length=40,
                              doc_stride=16, max_query_length=12, beam_size=8, seed=0,
                              write_test_outputs=True)
    assert config.max_seq_length == 40
    results = finetune(config, progress=False)
    dev = results["dev_best"]["squad"]["dev"]
    # learns the six questions it trains on (5 of 6 at least, from scratch in 60 steps)
    assert dev["exact"] > 0.8 and dev["NoAns_exact"] == 1.0
    baselines = results["qa_baselines"]["squad"]["dev"]
    assert baselines["first_sentence"]["exact"] == 0.0
    assert 0 < baselines["overlap_sentence"]["f1"] < 0.5
    out = tmp_path / "models" / "scratch" / "qa_predictions" / "squad_dev"
    assert sorted(p.name for p in out.iterdir()) == ["nbest_predictions.json",
                                                     "null_odds.json", "predictions.json"]
    preds = json.loads((out / "predictions.json").read_text())
    gold = {"q1": "France", "q2": "Rollo", "q3": "Denmark, Iceland and Norway", "q4": "",
            "k1": "927", "k2": "Richard I"}
    # dev predictions keep the best non-null span, as the original's; the official
    # script applies the threshold through null_odds.json
    assert set(preds) == set(gold) and all(preds.values())
    null_odds = json.loads((out / "null_odds.json").read_text())
    assert set(null_odds) == set(gold)
    official = {q: "" if null_odds[q] > -2.75 else preds[q] for q in gold}
    assert sum(official[q] == gold[q] for q in gold) / 6 == pytest.approx(
        results["trials"][0]["dev_best"]["squad"]["dev"]["exact"])
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert nbest["q1"][0]["text"] == "France" and len(nbest["q1"]) <= 20
    # the test file (a submission) has the threshold applied: "" for no answer
    test_preds = json.loads((tmp_path / "models" / "scratch" / "test_predictions"
                             / "squad_test" / "predictions.json").read_text())
    assert test_preds == official
    again = finetune(config, progress=False)  # a re-run reuses the finished trial
    assert again["trials"][0]["dev_best"] == results["trials"][0]["dev_best"]


def test_qa_joins_tagging_in_one_multi_task_run_and_refuses_serving(tmp_path, sample_paths):
    write_squad(tmp_path / "finetuning_data" / "squadv1", squad_json(v2=False), "train")
    write_squad(tmp_path / "finetuning_data" / "squadv1", squad_json(v2=False), "dev")
    pos = tmp_path / "finetuning_data" / "pos"
    pos.mkdir()
    text = ("Rollo/NNP agreed/VBD to/TO swear/VB fealty/NN ./.\n"
            "The/DT Normans/NNPS gave/VBD their/PRP$ name/NN to/TO Normandy/NNP ./.\n")
    for split in ("train", "dev"):
        (pos / f"{split}.txt").write_text(text)
    (tmp_path / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    config = FinetuningConfig(data_dir=str(tmp_path), model_name="scratch", from_scratch=True,
                              model_size="debug", task_names=["squadv1", "pos"],
                              learning_rate=3e-3, num_train_epochs=1, train_batch_size=4,
                              max_seq_length=40, doc_stride=16, max_query_length=12,
                              beam_size=4, seed=0)
    assert (config.max_seq_length, config.epochs) == (40, 1)
    results = finetune(config, progress=False)
    dev = results["dev_best"]
    assert set(dev["squadv1"]["dev"]) == {"exact_match", "f1"}
    assert set(dev["pos"]["dev"]) == {"accuracy"}
    assert results["num_examples"]["pos/train"] == 2
    assert results["num_examples"]["squadv1/train"] > 5  # windows, not questions

    from electra_tf.finetuning import serving
    model = keras.saving.load_model(str(tmp_path / "models" / "scratch" / "finetuning"
                                        / "squadv1+pos" / "finetuned.keras"))
    with pytest.raises(ValueError, match="squadv1: a question-answering model; serving it "
                                         "from raw text is not supported"):
        serving.preprocessing_of(model)


def test_the_qa_and_chunk_recipes_carry_the_originals_settings():
    recipe = finetune_recipe
    squad, squad2, mrqa, chunk = (recipe(n) for n in ("squad", "squad2", "mrqa", "chunk"))
    assert squad.task_names == ["squadv1"] and squad2.task_names == ["squad"]
    assert mrqa.task_names == ["newsqa"] and chunk.task_names == ["chunk"]
    for config in (squad, squad2, mrqa):
        assert (config.learning_rate, config.layerwise_lr_decay, config.weight_decay_rate,
                config.epochs, config.max_seq_length, config.doc_stride,
                config.max_query_length, config.n_best_size, config.max_answer_length) == (
            1e-4, 0.8, 0.0, 2, 512, 128, 64, 20, 30)
    assert (squad2.answerable_classifier, squad2.answerable_weight,
            squad2.qa_na_threshold) == (True, 0.5, -2.75)
    assert (chunk.max_seq_length, chunk.epochs) == (256, 3)
    # without a recipe, the original's single-task defaults
    assert FinetuningConfig(task_names=["squad"]).max_seq_length == 512
    assert FinetuningConfig(task_names=["chunk"]).max_seq_length == 256
    assert FinetuningConfig(task_names=["naturalqs"]).max_seq_length == 128  # its quirk


def test_every_qa_head_layer_learns_at_the_full_rate_under_layerwise_decay():
    import re

    from electra_tf.finetuning.trainer import lr_multipliers

    encoder = Encoder(get_config("electra", "debug", {"vocab_size": 100}))
    model = FinetuningModel(encoder, [QATask("squad")])
    model.build_heads(16)
    factors = lr_multipliers(encoder, 0.8)
    heads = [v.path for v in model.trainable_variables if "squad_head" in v.path]
    assert len(heads) == 10  # start, end hidden + end, answerability hidden + logit
    for path in heads:  # the original's _get_layer_lrs: task-specific variables at decay^0
        assert [f for pattern, f in factors.items() if re.search(pattern, path)][0] == 1.0
