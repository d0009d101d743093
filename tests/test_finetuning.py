"""Finetuning: featurization, the multi-task model, runs end to end (train, dev scores,
TensorBoard, test predictions, resume), encoder sources, and the CLI's errors."""

import glob
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.configs import get_config
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import finetune, load_encoder, markdown_table
from electra_tf.modeling import Encoder
from electra_tf.tasks import readers, scorers
from electra_tf.tasks.specs import RaceTask, TaggingTask, get_task, pack, truncate_pair
from electra_tf.tokenization import WordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def tokenizer(sample_paths):
    return WordPieceTokenizer(sample_paths["vocab"])


def ids(tokenizer, text):
    return tokenizer.tokenize(text)


def test_truncate_pair_drops_from_the_longer_side_first():
    a, b = list(range(6)), list(range(10, 13))
    truncate_pair(a, b, 7)
    assert a == [0, 1, 2, 3] and b == [10, 11, 12]
    truncate_pair(a, b, 4)
    assert a == [0, 1] and b == [10, 11]
    assert pack([[5, 6], [7]], 8, CLS, SEP) == ([CLS, 5, 6, SEP, 7, SEP], [0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="packed length 6 > max_seq_length 5"):
        pack([[5, 6], [7]], 5, CLS, SEP)


def test_pair_featurization_packs_cls_a_sep_b_sep(tokenizer):
    task = get_task("rte")
    a = "the cat sat on the mat with a very long tail"
    b = "a cat sat"
    example = readers.PairExample("dev-0", a, b, "entailment")
    features = task.featurize([example], tokenizer, 12)
    ta, tb = ids(tokenizer, a), ids(tokenizer, b)
    expected = [CLS] + ta[:12 - 3 - len(tb)] + [SEP] + tb + [SEP]
    assert features.inputs["input_ids"][0].tolist() == expected
    assert features.inputs["segment_ids"][0].tolist() == [0] * (12 - len(tb) - 1) + [1] * (
        len(tb) + 1)
    assert features.inputs["input_mask"][0].tolist() == [1] * 12
    assert features.labels.tolist() == [0]  # entailment, not_entailment
    single = get_task("sst2").featurize([readers.PairExample("x", "a cat", None, "1")],
                                        tokenizer, 8)
    assert single.inputs["input_ids"][0].tolist() == [CLS, *ids(tokenizer, "a cat"), SEP,
                                                      0, 0, 0, 0]
    assert single.inputs["input_mask"][0].tolist() == [1] * 4 + [0] * 4


def test_stsb_is_regression_on_label_over_5_and_mrpc_pairs_are_doubled(tmp_path, tokenizer):
    task = get_task("stsb")
    features = task.featurize([readers.PairExample("t-0", "a", "b", 3.5)], tokenizer, 8)
    assert features.labels.tolist() == [pytest.approx(0.7)]
    assert task.predictions(np.array([[0.7], [1.0]])).tolist() == pytest.approx([3.5, 5.0])

    folder = tmp_path / "finetuning_data" / "MRPC"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                                      "1\t1\t2\tfirst one\tsecond one\n")
    examples = get_task("mrpc").read(str(tmp_path), "train")
    assert [(e.text_a, e.text_b) for e in examples] == [("first one", "second one"),
                                                        ("second one", "first one")]
    assert len(get_task("mrpc", double_unordered=False).read(str(tmp_path), "train")) == 1


def test_race_featurization_one_row_per_option_with_the_blank_filled(tokenizer):
    task = RaceTask()
    article = " ".join(["word"] * 40)
    examples = [readers.MultipleChoiceExample(
        "r-0", article, "tom went to the _ .", ["park", "shop", "moon", "sea"], 2, "middle")]
    features = task.featurize(examples, tokenizer, 24)
    assert features.inputs["input_ids"].shape == (1, 4, 24)
    row = features.inputs["input_ids"][0, 2].tolist()
    # a cloze question's option is in its blank, not also after it
    tail = ids(tokenizer, "tom went to the moon .") + [SEP]
    assert row[0] == CLS and row[-len(tail):] == tail
    article_part = row[1:len(row) - len(tail) - 1]
    assert article_part == ids(tokenizer, "word") * len(article_part)  # truncated article
    assert row[len(row) - len(tail) - 1] == SEP
    segments = features.inputs["segment_ids"][0, 2].tolist()
    assert segments == [0] * (24 - len(tail)) + [1] * len(tail)
    assert features.labels.tolist() == [2]
    assert task.score(np.array([2]), features) == {"accuracy": 1.0, "accuracy_middle": 1.0}


def test_tagging_labels_the_first_wordpiece_of_each_word(tokenizer):
    task = TaggingTask("pos")
    sentences = [readers.TaggedSentence("s-0", ["Unaffable", "cats"], ["JJ", "NNS"])]
    task.set_tags(sentences)
    assert task.tags == ["JJ", "NNS"]
    features = task.featurize(sentences, tokenizer, 16)
    pieces = ids(tokenizer, "Unaffable")
    assert len(pieces) > 1  # the test needs a word of several WordPieces
    n = 1 + len(pieces) + 1 + 1
    assert features.labels[0, :n].tolist() == [-1, 0] + [-1] * (len(pieces) - 1) + [1, -1]
    assert (features.labels[0, n:] == -1).all()
    assert features.inputs["word_positions"][0, :2].tolist() == [1, 1 + len(pieces)]
    assert features.inputs["word_mask"][0].sum() == 2
    assert task.word_labels(features)[0, :3].tolist() == [0, 1, -1]
    assert task.score(np.array([[0, 0] + [-1] * 14]), features) == {"accuracy": 0.5}
    with pytest.raises(ValueError, match="tag 'VB' is not in the training tag set"):
        task.featurize([readers.TaggedSentence("s-1", ["run"], ["VB"])], tokenizer, 16)


# ----------------------------------------------------------------------------- runs

GOOD = ["great", "wonderful", "fun", "moving", "superb", "charming"]
BAD = ["awful", "boring", "dull", "tedious", "clumsy", "bland"]


def _sentences(rng, n):
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        word = rng.choice(GOOD if label else BAD)
        rows.append((f"the film was {word} and the cast was {rng.choice(['big', 'small'])}",
                     label))
    return rows


def write_tasks(data_dir, seed=0):
    """Small learnable tasks in the real layouts: SST-2, STS-B, a POS folder, RACE."""
    rng = np.random.default_rng(seed)
    sst = data_dir / "finetuning_data" / "SST-2"
    sst.mkdir(parents=True)
    for split, n in (("train", 96), ("dev", 32)):
        rows = _sentences(rng, n)
        (sst / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    test = _sentences(rng, 10)
    (sst / "test.tsv").write_text("index\tsentence\n" + "".join(
        f"{i}\t{s}\n" for i, (s, _) in enumerate(test)))
    (data_dir / "sst2_test_labels.tsv").write_text("index\tlabel\n" + "".join(
        f"{i}\t{y}\n" for i, (_, y) in enumerate(test)))
    sts = data_dir / "finetuning_data" / "STS-B"
    sts.mkdir(parents=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    for split, n in (("train", 32), ("dev", 8)):
        lines = [header + "\tscore\n"]
        for i in range(n):
            score = float(rng.integers(0, 6))
            lines.append(f"{i}\tg\tf\t2012\t{i}\ts\ts\tthe score is {int(score)}\t"
                         f"a dog ran\t{score}\n")
        (sts / f"{split}.tsv").write_text("".join(lines))
    (sts / "test.tsv").write_text(header + "\n" + "".join(
        f"{i}\tg\tf\t2012\t{i}\ts\ts\tthe score is {i}\ta dog ran\n" for i in range(4)))
    pos = data_dir / "finetuning_data" / "pos"
    pos.mkdir(parents=True)
    tagged = ["the/DT cat/NN sat/VBD ./.", "a/DT dog/NN ran/VBD ./.",
              "the/DT unaffable/JJ dog/NN barked/VBD ./."]
    for split in ("train", "dev", "test"):
        (pos / f"{split}.txt").write_text("\n".join(tagged * (4 if split == "train" else 1))
                                          + "\n")
    for split in ("train", "dev"):
        folder = data_dir / "finetuning_data" / "race" / split / "middle"
        folder.mkdir(parents=True)
        for k in range(8 if split == "train" else 2):
            answer = int(rng.integers(4))
            options = ["red", "blue", "green", "black"]
            (folder / f"{k}.txt").write_text(json.dumps({
                "id": f"{split}{k}", "article": f"the ball is {options[answer]} today .",
                "questions": ["what colour is the ball ?"], "options": [options],
                "answers": ["ABCD"[answer]]}))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, sample_paths):
    root = tmp_path_factory.mktemp("finetune_data")
    write_tasks(root)
    (root / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    return root


def scalars(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in
                  accumulator.Tensors(tag)] for tag in accumulator.Tags()["tensors"]}


def run_config(data_dir, **overrides):
    values = dict(data_dir=str(data_dir), model_name="scratch", from_scratch=True,
                  model_size="debug", learning_rate=2e-3, layerwise_lr_decay=0.8,
                  num_train_epochs=4, train_batch_size=16, max_seq_length=24,
                  warmup_proportion=0.1, seed=1)
    values.update(overrides)
    return FinetuningConfig(**values)


def test_sst2_from_scratch_learns_writes_results_events_and_a_submission(data_dir,
                                                                      fused_kernels):
    config = run_config(data_dir, task_names=["sst2"], num_train_epochs=8, learning_rate=3e-3)
    results = finetune(config, progress=False)
    assert "test_predictions_from_trial" not in results

    trial = results["trials"][0]
    assert trial["steps"] == int(8 * 96 / 16)
    history = [h["dev"]["sst2"]["dev"]["accuracy"] for h in trial["history"]]
    assert len(history) == 8 and history[0] < 0.9 and history[-1] >= 0.9
    assert results["dev_last"]["sst2"]["dev"]["accuracy"] == history[-1]
    assert results["dev_best"]["sst2"]["dev"]["accuracy"] == max(history)
    assert trial["best_epoch"] == history.index(max(history)) + 1
    assert results["num_examples"] == {"sst2/train": 96, "sst2/dev": 32}
    dev_labels = [int(line.split("\t")[1]) for line in
                  (data_dir / "finetuning_data" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    train_labels = [int(line.split("\t")[1]) for line in
                    (data_dir / "finetuning_data" / "SST-2" / "train.tsv").read_text()
                    .splitlines()[1:]]
    majority = int(np.mean(train_labels) > 0.5)
    assert results["majority_baseline"]["sst2"]["dev"]["accuracy"] == pytest.approx(
        np.mean(np.array(dev_labels) == majority))
    table = markdown_table(results).splitlines()
    assert table[0] == ("| task | split | metric | last epoch | best-dev epoch | "
                        "majority baseline |")
    assert table[2].startswith(f"| sst2 | dev | accuracy | {history[-1]:.4f} | "
                               f"{max(history):.4f} | ")
    with open(config.results_path) as f:
        assert json.load(f)["dev_best"] == results["dev_best"]
    logged = scalars(os.path.join(config.run_dir, "trial_0"))
    assert [s for s, _ in logged["sst2/dev/accuracy"]] == list(range(6, 49, 6))
    losses = [v for _, v in logged["train/loss"]]
    assert losses[-1] < losses[0]
    assert "train/learning_rate" in logged

    # A re-run asking for test outputs adds them without training again.
    config = run_config(data_dir, task_names=["sst2"], num_train_epochs=8, learning_rate=3e-3,
                        write_test_outputs=True)
    again = finetune(config, progress=False)
    assert again["trials"][0]["steps"] == 48 and again["dev_best"] == results["dev_best"]
    submission = os.path.join(config.test_predictions_dir, "SST-2.tsv")
    with open(submission) as f:
        lines = f.read().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 11
    assert {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}
    scored = scorers.evaluate_predictions("sst2", submission,
                                          str(data_dir / "sst2_test_labels.tsv"))
    assert scored["accuracy"] >= 0.8

    with pytest.raises(ValueError, match="holds a run with other settings "
                                         "\\(learning_rate: 0.003 -> 0.001\\)"):
        finetune(run_config(data_dir, task_names=["sst2"], write_test_outputs=True,
                            num_train_epochs=8, learning_rate=1e-3), progress=False)
    # A finished run re-run trains nothing and returns the same results.
    mtime = os.path.getmtime(os.path.join(config.run_dir, "trial_0", "results.json"))
    assert finetune(config, progress=False)["dev_best"] == results["dev_best"]
    assert os.path.getmtime(os.path.join(config.run_dir, "trial_0", "results.json")) == mtime


def test_multitask_classification_regression_and_crf_tagging(data_dir):
    config = run_config(data_dir, task_names=["sst2", "stsb", "pos"], use_crf=True,
                        num_train_epochs=1, model_name="multi", write_test_outputs=True)
    results = finetune(config, progress=False)
    dev = results["dev_last"]
    assert set(dev) == {"sst2", "stsb", "pos"}
    assert set(dev["stsb"]["dev"]) == {"pearson", "spearman"}
    assert set(dev["pos"]["dev"]) == {"accuracy"}
    assert results["trials"][0]["steps"] == int((96 + 64 + 12) / 16)
    with open(os.path.join(config.run_dir, "pos_tags.json")) as f:
        assert json.load(f) == [".", "DT", "JJ", "NN", "VBD"]
    predictions_dir = config.test_predictions_dir
    assert {"SST-2.tsv", "STS-B.tsv", "pos.txt"} <= set(os.listdir(predictions_dir))
    with open(os.path.join(predictions_dir, "STS-B.tsv")) as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert all(0.0 <= float(r[1]) <= 5.0 and len(r[1].split(".")[1]) == 3 for r in rows)
    with open(os.path.join(predictions_dir, "pos.txt")) as f:
        first = f.readline().split()
    assert [t.rsplit("/", 1)[0] for t in first] == ["the", "cat", "sat", "."]

    # The best-dev model is kept as .keras with its heads, labels and tokenizer, and
    # predicts what the run wrote.
    model = keras.models.load_model(os.path.join(config.run_dir, "finetuned.keras"))
    assert [(h.name, h.kind, h.labels) for h in model.tasks] == [
        ("sst2", "classification", ("0", "1")), ("stsb", "regression", None),
        ("pos", "tagging", (".", "DT", "JJ", "NN", "VBD"))]
    assert model.use_crf and model.preprocessing["max_seq_length"] == 24
    task = get_task("sst2")
    tokenizer = WordPieceTokenizer(model.preprocessing["vocab"],
                                   model.preprocessing["do_lower_case"])
    features = task.featurize(task.read(str(data_dir), "test"), tokenizer, 24)
    logits = model.predict(features.inputs, verbose=0)["sst2"]
    with open(os.path.join(predictions_dir, "SST-2.tsv")) as f:
        written = [int(line.split("\t")[1]) for line in f.read().splitlines()[1:]]
    assert logits.argmax(-1).tolist() == written


@pytest.mark.parametrize("use_crf", [True, False])
def test_crf_and_softmax_tagging_heads_learn(data_dir, use_crf):
    config = run_config(data_dir, task_names=["pos"], use_crf=use_crf, num_train_epochs=30,
                        model_name="tagger", train_batch_size=4, learning_rate=3e-3)
    assert config.run_name == ("pos-crf" if use_crf else "pos")
    results = finetune(config, progress=False)
    assert results["dev_best"]["pos"]["dev"]["accuracy"] >= 0.9
    assert results["majority_baseline"]["pos"]["dev"]["accuracy"] < 0.5


def test_race_trains_alone(data_dir):
    race = run_config(data_dir, task_names=["race_middle"], num_train_epochs=1, model_name="race",
                      train_batch_size=4, max_seq_length=32)
    scores = finetune(race, progress=False)["dev_last"]["race_middle"]["dev"]
    assert set(scores) == {"accuracy", "accuracy_middle"}
    with pytest.raises(ValueError, match="RACE\\) must be finetuned alone"):
        finetune(run_config(data_dir, task_names=["race_middle", "sst2"], model_name="mix"),
                 progress=False)


def test_two_replicas_run_and_an_indivisible_batch_is_an_error(data_dir, mirrored_strategy):
    config = run_config(data_dir, task_names=["sst2"], num_train_epochs=1,
                        model_name="mirrored", layerwise_lr_decay=1.0)
    results = finetune(config, mirrored_strategy, progress=False)
    assert results["trials"][0]["steps"] == 6
    with pytest.raises(ValueError, match="train_batch_size=15 must be a positive multiple"):
        finetune(run_config(data_dir, task_names=["sst2"], train_batch_size=15),
                 mirrored_strategy, progress=False)


# ----------------------------------------------------------------------------- steps per call

def test_epochs_end_at_the_first_call_boundary_and_the_last_call_is_cut(data_dir):
    # 96 examples, batch 16: 6 steps an epoch, 18 in all; 4 steps per call end epochs at
    # steps 8 and 12, and a last call of 2 steps ends the run at 18.
    config = run_config(data_dir, task_names=["sst2"], num_train_epochs=3,
                        model_name="per_call", steps_per_execution=4)
    results = finetune(config, progress=False)
    trial = results["trials"][0]
    assert trial["steps"] == 18
    assert [(h["epoch"], h["step"]) for h in trial["history"]] == [(1, 8), (2, 12), (3, 18)]
    assert all(np.isfinite(h["loss"]) for h in trial["history"])
    logged = scalars(os.path.join(config.run_dir, "trial_0"))
    assert [s for s, _ in logged["sst2/dev/accuracy"]] == [8, 12, 18]
    assert [s for s, _ in logged["train/loss"]] == [8, 12, 18]
    # Steps per call are a speed setting: a re-run may change them (the run is done).
    again = finetune(run_config(data_dir, task_names=["sst2"], num_train_epochs=3,
                                model_name="per_call", steps_per_execution=1,
                                jit_compile=True), progress=False)
    assert again["trials"][0]["history"] == trial["history"]


def test_several_steps_per_call_on_two_replicas_train_like_one_step_per_call(
        mirrored_strategy):
    import keras

    from electra_tf.finetuning.model import FinetuningModel
    from electra_tf.optimization import AdamWeightDecay
    from electra_tf.training.fitting import fit_steps

    task = get_task("sst2")
    rng = np.random.default_rng(0)
    inputs = {"input_ids": rng.integers(1000, 2000, (12, 16)).astype(np.int32),
              "input_mask": np.ones((12, 16), np.int32),
              "segment_ids": np.zeros((12, 16), np.int32), "task_id": np.zeros(12, np.int32)}
    labels = {"sst2": rng.integers(0, 2, 12).astype(np.int32)}
    batches = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(4).repeat()

    class Ends(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(batch)

    def train(per_call):
        keras.utils.set_random_seed(0)
        with mirrored_strategy.scope():
            model = FinetuningModel(Encoder(get_config("electra", "debug")), [task],
                                    dropout_rate=0.0, name="finetuning")
            model.compile(optimizer=AdamWeightDecay(1e-3), steps_per_execution=per_call)
            model({k: v[:1] for k, v in inputs.items()})
            model.optimizer.build(model.trainable_variables)
        ends = Ends()
        # batches from `step` on: the same sequence however the steps are cut into calls
        step = fit_steps(model, lambda step: batches.skip(step), 3, per_call, [ends])
        return model, step, ends.seen

    single, single_steps, _ = train(1)
    several, several_steps, seen = train(2)
    assert single_steps == several_steps == 3
    assert int(several.optimizer.iterations.numpy()) == 3
    assert seen == [1, 0]  # one call of 2 steps, then one (recompiled) of the 1 left
    assert several.steps_per_execution == 1
    for a, b in zip(single.weights, several.weights, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=a.path)


def test_an_epoch_spread_over_several_fit_calls_logs_its_mean_loss(tmp_path):
    from types import SimpleNamespace

    from electra_tf.training.dev_eval import EpochEnd

    saved = []
    model = SimpleNamespace(optimizer=SimpleNamespace(iterations=tf.Variable(0, tf.int64)),
                            reset_metrics=lambda: None)
    epoch_end = EpochEnd(SimpleNamespace(save=lambda checkpoint_number: saved.append(
        checkpoint_number)), None, tf.summary.create_noop_writer(), None, total_steps=8,
        steps_per_epoch=6, schedule=lambda step: 0.0, history=[],
        history_path=str(tmp_path / "history.json"), initial_step=0, progress=False)
    epoch_end.set_model(model)
    # A first call of 4 steps (loss mean 2), then one of 4 more (loss mean 4): the run's
    # one epoch end is at step 8, where the epoch's mean loss is 3.
    epoch_end.on_train_begin()
    model.optimizer.iterations.assign(4)
    epoch_end.on_train_batch_end(3, {"loss": tf.constant(2.0)})
    epoch_end.on_train_end()
    assert epoch_end.history == []
    epoch_end.on_train_begin()
    model.optimizer.iterations.assign(8)
    epoch_end.on_train_batch_end(3, {"loss": tf.constant(4.0)})
    epoch_end.on_train_end()
    assert epoch_end.history == [{"epoch": 2, "step": 8, "dev": {}, "loss": 3.0}]
    assert saved == [8]
    assert json.loads((tmp_path / "history.json").read_text()) == epoch_end.history


def test_encoder_sources_keras_export_and_hugging_face_folder(data_dir, tmp_path):
    from electra_tf.checkpoints import save_hf

    encoder = Encoder(get_config("electra", "debug"))
    model_dir = tmp_path / "models" / "pretrained"
    model_dir.mkdir(parents=True)
    encoder.save(str(model_dir / "encoder.keras"))
    config = FinetuningConfig(data_dir=str(tmp_path), model_name="pretrained",
                              task_names=["sst2"])
    loaded = load_encoder(config, 30522)
    for a, b in zip(loaded.get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    save_hf(encoder, str(tmp_path / "hf"))
    config = FinetuningConfig(data_dir=str(tmp_path), model_name="x", task_names=["sst2"],
                              init_checkpoint=str(tmp_path / "hf"))
    loaded = load_encoder(config, 30522)
    for a, b in zip(loaded.get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_allclose(a, b)

    missing = FinetuningConfig(data_dir=str(tmp_path), model_name="none", task_names=["sst2"])
    with pytest.raises(FileNotFoundError, match="no pretrained encoder"):
        load_encoder(missing, 30522)


def test_finetuning_flagfiles_parse_into_configs():
    from absl import flags

    from electra_tf import run_finetuning

    paths = sorted(os.path.join(ROOT, "flags", "finetune", name)
                   for name in os.listdir(os.path.join(ROOT, "flags", "finetune")))
    assert paths
    for path in paths:
        values = run_finetuning.define_flags(flags.FlagValues())
        values([sys.argv[0], f"--flagfile={path}", "--data_dir=d", "--model_name=m"])
        config = run_finetuning.build_config(values)
        assert config.task_names, path


def test_feature_cache_round_trips_and_invalidates_on_vocab_length_or_data(tmp_path,
                                                                          sample_paths):
    from electra_tf.tasks.cache import cached_features

    task = get_task("rte")
    examples = [readers.PairExample(f"dev-{i}", f"a cat number {i}", "a dog", label)
                for i, label in enumerate(["entailment", "not_entailment"] * 3)]
    tokenizer = WordPieceTokenizer(sample_paths["vocab"])
    built, hit = cached_features(task, "dev", examples, tokenizer, 16, str(tmp_path))
    assert not hit
    loaded, hit = cached_features(task, "dev", examples, tokenizer, 16, str(tmp_path))
    assert hit and loaded.guids == built.guids
    for key in built.inputs:
        np.testing.assert_array_equal(loaded.inputs[key], built.inputs[key])
        assert loaded.inputs[key].dtype == built.inputs[key].dtype
    np.testing.assert_array_equal(loaded.labels, built.labels)

    assert not cached_features(task, "dev", examples, tokenizer, 20, str(tmp_path))[1]
    changed = examples[:-1] + [readers.PairExample("dev-5", "a cow", "a dog", "entailment")]
    assert not cached_features(task, "dev", changed, tokenizer, 16, str(tmp_path))[1]
    vocab = open(sample_paths["vocab"]).read().splitlines()
    vocab[2000] = "zzzz"  # one token changed
    other = WordPieceTokenizer(vocab)
    assert not cached_features(task, "dev", examples, other, 16, str(tmp_path))[1]
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".tfrecord")]) == 4
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_layerwise_rates_of_an_ale_encoder_count_its_shared_layer_once():
    from electra_tf.finetuning.trainer import lr_multipliers

    encoder = Encoder(get_config("ale", "small"))
    assert len(encoder.transformer.transformer_layers) == 1
    # the original's rates: one layer between the head (depth 3) and the embeddings
    rates = lr_multipliers(encoder, 0.8)
    assert rates[r"/encoder/layer_0/"] == pytest.approx(0.64)
    assert rates[r"/embeddings/|/embeddings_project/"] == pytest.approx(0.512)
    fixed = lr_multipliers(encoder, 0.8, fix_off_by_one=True)
    assert fixed[r"/encoder/layer_0/"] == pytest.approx(0.8)
    assert fixed[r"/embeddings/|/embeddings_project/"] == pytest.approx(0.64)


def test_defaults_epochs_per_task_empty_split_and_lamb(data_dir, tmp_path):
    assert FinetuningConfig(task_names=["rte"]).epochs == 10
    assert FinetuningConfig(task_names=["mrpc", "stsb"]).epochs == 3  # 10 for one task only
    assert FinetuningConfig(task_names=["sst2"]).epochs == 3
    assert FinetuningConfig(task_names="cola,sst2").task_names == ["cola", "sst2"]
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        FinetuningConfig(optimizer="sgd")

    empty = tmp_path / "finetuning_data" / "SST-2"
    empty.mkdir(parents=True)
    (empty / "train.tsv").write_text("sentence\tlabel\n")
    (tmp_path / "vocab.txt").write_bytes((data_dir / "vocab.txt").read_bytes())
    with pytest.raises(ValueError, match="no examples"):
        finetune(run_config(tmp_path, task_names=["sst2"]), progress=False)

    # the original's learning rate and decay for a small encoder; two trials, each kept
    # with their median and max
    config = run_config(data_dir, task_names=["sst2"], optimizer="lamb", num_train_epochs=1,
                        model_name="lamb", learning_rate=None, layerwise_lr_decay=None,
                        num_trials=2)
    results = finetune(config, progress=False)
    assert [t["steps"] for t in results["trials"]] == [6, 6]
    assert results["resolved"] == {"learning_rate": 1e-4, "layerwise_lr_decay": 0.8,
                                   "num_train_epochs": 1, "large_encoder": False}
    assert results["trials"][1]["resolved"] == results["resolved"]
    scores = [t["dev_best"]["sst2"]["dev"]["accuracy"] for t in results["trials"]]
    assert results["dev_best_max"]["sst2"]["dev"]["accuracy"] == max(scores)
    assert results["dev_best"]["sst2"]["dev"]["accuracy"] == pytest.approx(np.mean(scores))
    with open(config.results_path) as f:
        assert json.load(f)["resolved"] == results["resolved"]


def test_later_trials_and_runs_reuse_the_compiled_model_and_train_as_a_fresh_build(
        data_dir, monkeypatch):
    """Trial 1 (seed 2) trains in the model compiled for trial 0, and so does the next
    run given the same CompiledTrials, whose trial 0 has seed 2 too; a run that builds
    and compiles its model for seed 2 gives the same bits as both. Each epoch's 6 steps
    run as a call of 4 and a shorter one of 2, so a trial ends compiled for the shorter
    call."""
    from electra_tf.finetuning.trainer import CompiledTrials

    compiles = []
    original = CompiledTrials.keep
    monkeypatch.setattr(CompiledTrials, "keep",
                        lambda self, *a: (compiles.append(1), original(self, *a))[1])

    def run(model_name, compiled=None, **overrides):
        config = run_config(data_dir, task_names=["sst2"], num_train_epochs=1,
                            model_name=model_name, steps_per_execution=4, **overrides)
        trials = finetune(config, progress=False, compiled=compiled)["trials"]
        # the last trial's best-dev checkpoint: weights, optimizer slots and step
        (index,) = glob.glob(os.path.join(config.run_dir, f"trial_{trials[-1]['trial']}",
                                          "best", "*.index"))
        reader = tf.train.load_checkpoint(index[:-len(".index")])
        runs_saved.append([keras.saving.load_model(os.path.join(
            config.run_dir, f"trial_{t['trial']}", "finetuned.keras")).get_weights()
            for t in trials])
        return trials, {name: reader.get_tensor(name)
                        for name in sorted(reader.get_variable_to_shape_map())}

    runs_saved = []  # each run's finetuned.keras weights, per trial
    compiled = CompiledTrials()
    trials, weights = run("trials", compiled, num_trials=2)
    assert len(compiles) == 1 and [t["steps"] for t in trials] == [6, 6]
    assert trials[1]["history"][0]["loss"] != trials[0]["history"][0]["loss"]  # seeds 1, 2
    # (with test predictions: the run's own tasks predict in the kept model)
    (next_run,), next_weights = run("next_run", compiled, seed=2, write_test_outputs=True)
    assert next_run["test_predictions"]
    assert len(compiles) == 1
    (fresh,), fresh_weights = run("fresh", seed=2)
    assert len(compiles) == 2
    assert len(fresh_weights) >= 40  # every weight of encoder and head
    for trial, trained in ((trials[1], weights), (next_run, next_weights)):
        assert (trial["seed"], trial["history"], trial["dev_best"]) == (
            fresh["seed"], fresh["history"], fresh["dev_best"])
        assert trained.keys() == fresh_weights.keys()
        for name, value in fresh_weights.items():
            np.testing.assert_array_equal(trained[name], value, err_msg=name)
    # The saved models too: the kept model's trials are saved from one uncompiled copy,
    # which holds each trial's own weights when it is saved.
    (first, second), (next_saved,), (fresh_saved,) = runs_saved
    for saved in (second, next_saved):
        for a, b in zip(saved, fresh_saved, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_an_interrupted_run_resumes_from_its_last_epoch(data_dir, monkeypatch):
    from electra_tf.training import dev_eval as trainer

    original = trainer.EpochEnd.end_epoch

    def crash_in_the_second(self, epoch, step, logs):
        # Killed while the epoch's checkpoint is saved: after its best weights and
        # history were written.
        if epoch == 2:
            def killed(**kwargs):
                raise KeyboardInterrupt("killed")
            monkeypatch.setattr(self.manager, "save", killed)
        original(self, epoch, step, logs)

    config = run_config(data_dir, task_names=["sst2"], num_train_epochs=3,
                        model_name="interrupted")
    monkeypatch.setattr(trainer.EpochEnd, "end_epoch", crash_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        finetune(config, progress=False)
    monkeypatch.setattr(trainer.EpochEnd, "end_epoch", original)
    results = finetune(config, progress=False)
    trial = results["trials"][0]
    assert trial["steps"] == 18
    assert [h["epoch"] for h in trial["history"]] == [1, 2, 3]
    assert [h["step"] for h in trial["history"]] == [6, 12, 18]
    (best,) = [h for h in trial["history"] if h["best"]]
    scores = [h["dev"]["sst2"]["dev"]["accuracy"] for h in trial["history"]]
    assert best["dev"]["sst2"]["dev"]["accuracy"] == max(scores)
    kept = os.listdir(os.path.join(config.run_dir, "trial_0", "best"))
    assert sorted(n for n in kept if n.endswith(".index")) == [
        f"model.ckpt-{best['step']}.index"]


def test_eval_only_needs_a_trained_run(data_dir):
    with pytest.raises(ValueError, match="--do_train=false but .* holds no trained checkpoint"):
        finetune(run_config(data_dir, task_names=["sst2"], model_name="untrained",
                            do_train=False), progress=False)


def test_score_test_needs_test_labels_and_train_fraction_is_checked(data_dir):
    # GLUE's SST-2 test.tsv is unlabelled and no test_labels.tsv sits beside it
    with pytest.raises(ValueError, match="sst2 has no labelled test split"):
        finetune(run_config(data_dir, model_name="score_test", task_names=["sst2"],
                            score_test=True), progress=False)
    with pytest.raises(ValueError, match=r"train_fraction=0 must be in \(0, 1\]"):
        run_config(data_dir, task_names=["sst2"], train_fraction=0)


def test_load_vocab_reads_a_remote_vocab(sample_paths):
    import uuid

    from electra_tf import files
    from electra_tf.tokenization import VocabError, load_vocab

    root = f"ram://vocab-{uuid.uuid4().hex}"
    files.copy(sample_paths["vocab"], files.join(root, "vocab.txt"))
    remote = load_vocab(files.join(root, "vocab.txt"))
    assert remote == load_vocab(sample_paths["vocab"]) and len(remote) == 30522
    assert WordPieceTokenizer(files.join(root, "vocab.txt")).tokenize("the film") == [1996, 2143]
    files.atomic_write(files.join(root, "dup.txt"), "[PAD]\r\nhello\r\nhello\r\n")
    with pytest.raises(VocabError, match=rf"{root}/dup.txt: line 3: duplicate token 'hello'"):
        load_vocab(files.join(root, "dup.txt"))
    with pytest.raises(VocabError, match=rf"{root}/none.txt: no such vocab file"):
        load_vocab(files.join(root, "none.txt"))


def test_a_run_with_data_and_model_dir_on_a_remote_file_system(data_dir, tmp_path):
    """Task data, the exported encoder and every output on ram:// (as gs:// on a TPU): the
    same scores as the same run on local folders, results and predictions written there,
    nothing written to the local disk, and a re-run reads it all back."""
    import uuid

    from electra_tf import files

    local = tmp_path / "local"
    files.copy_tree(str(data_dir / "finetuning_data"), str(local / "finetuning_data"))
    files.copy(str(data_dir / "sst2_test_labels.tsv"),
               str(local / "finetuning_data" / "SST-2" / "test_labels.tsv"))
    exported = local / "models" / "pretrained"
    exported.mkdir(parents=True)
    Encoder(get_config("electra", "debug")).save(str(exported / "encoder.keras"))
    files.copy(str(data_dir / "vocab.txt"), str(exported / "vocab.txt"))
    remote = f"ram://finetune-{uuid.uuid4().hex}"
    files.copy_tree(str(local), remote)

    def config(root):
        return FinetuningConfig(data_dir=root, model_name="pretrained", task_names=["sst2"],
                                num_train_epochs=2, train_batch_size=16, max_seq_length=24,
                                learning_rate=1e-3, seed=5, write_test_outputs=True,
                                score_test=True)

    on_disk = finetune(config(str(local)), progress=False)
    cwd_before = sorted(os.listdir("."))
    in_ram = finetune(config(remote), progress=False)
    assert sorted(os.listdir(".")) == cwd_before  # no local "ram:" folder
    assert in_ram["encoder"] == {"kind": "keras",
                                 "path": f"{remote}/models/pretrained/encoder.keras"}
    for key in ("dev_best", "dev_last", "test_at_best_dev", "num_examples"):
        assert in_ram[key] == on_disk[key], key
    assert [h["loss"] for h in in_ram["trials"][0]["history"]] == \
        [h["loss"] for h in on_disk["trials"][0]["history"]]

    ram_config = config(remote)
    assert ram_config.results_path.startswith(f"{remote}/models/pretrained/results/")
    assert files.read_json(ram_config.results_path)["dev_best"] == in_ram["dev_best"]
    assert files.listdir(ram_config.test_predictions_dir) == ["SST-2.tsv"]
    assert files.read_text(files.join(ram_config.test_predictions_dir, "SST-2.tsv")) == \
        (local / "models" / "pretrained" / "test_predictions" / "SST-2.tsv").read_text()
    assert files.glob(files.join(ram_config.cache_dir, "sst2.train.*.tfrecord"))
    assert files.exists(files.join(ram_config.run_dir, "trial_0", "checkpoint"))

    again = finetune(ram_config, progress=False)  # finished: read back, features cached
    assert again["dev_best"] == in_ram["dev_best"]
    assert all(again["features_from_cache"].values())
