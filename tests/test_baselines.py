"""The "to pretrain or not" sweep: nested subsets, config errors, the BiLSTM recipe
(constant rate, early stopping, the learning-rate grid), and a whole small sweep
(pretrained encoder against BiLSTMs with scratch and frozen pretrained embeddings) that
writes its JSON, table and plot, resumes, and refuses changed settings."""

import json
import os

import numpy as np
import pytest
from absl import flags
from review_task import BAD, GOOD, write_review_task

from data_prep.samples import five_class_rating
from electra_tf import run_baselines
from electra_tf.baselines.config import BaselinesConfig, check_fractions, parse_lstm_model
from electra_tf.baselines.sweep import (
    gaps,
    lstm_schedule,
    markdown_table,
    run_sweep,
    train_lstm,
    vocab_path,
)
from electra_tf.configs import get_config
from electra_tf.modeling import Encoder
from electra_tf.tasks.specs import Features, classification_task, nested_subset
from electra_tf.tokenization import WordPieceTokenizer

WORDS = GOOD + BAD + ["the", "film", "was", "and", "long", "short"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def test_nested_subsets_lie_inside_each_other_and_follow_the_seed():
    subsets = {f: nested_subset(200, f, seed=3) for f in (0.01, 0.1, 0.3, 0.5, 0.9, 1.0)}
    assert [len(s) for s in subsets.values()] == [2, 20, 60, 100, 180, 200]
    fractions = sorted(subsets)
    for small, large in zip(fractions, fractions[1:], strict=False):
        assert set(subsets[small]) < set(subsets[large])
    assert np.array_equal(subsets[0.3], nested_subset(200, 0.3, seed=3))
    assert not np.array_equal(subsets[0.3], nested_subset(200, 0.3, seed=4))
    assert np.array_equal(subsets[1.0], np.arange(200))
    assert len(nested_subset(10, 0.01, seed=0)) == 1  # never empty
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
            nested_subset(10, bad, seed=0)


def test_features_subset_takes_rows_of_inputs_labels_ids_and_extras():
    features = Features({"input_ids": np.arange(12).reshape(4, 3)}, np.array([0, 1, 0, 1]),
                        ["a", "b", "c", "d"], {"levels": np.array(list("mhmh")), "k": 7})
    part = features.subset([1, 3])
    assert part.inputs["input_ids"].tolist() == [[3, 4, 5], [9, 10, 11]]
    assert part.labels.tolist() == [1, 1] and part.guids == ["b", "d"]
    assert part.extra["levels"].tolist() == ["h", "h"] and part.extra["k"] == 7


def test_five_class_rating_cuts_at_sst_boundaries():
    # valence in [-4, 4] -> (v + 4) / 8 cut at 0.2 / 0.4 / 0.6 / 0.8; a cut takes the lower
    assert [five_class_rating(v) for v in (-4.0, -2.4, -2.39, -0.8, 0.0, 0.8, 0.81, 2.41,
                                           4.0)] == [0, 0, 1, 1, 2, 2, 3, 4, 4]


@pytest.mark.parametrize("values, message", [
    ({"fractions": [0.5, 0.0]}, r"fractions: .* must be in \(0, 1\]"),
    ({"fractions": [1.5]}, r"fractions: .* must be in \(0, 1\]"),
    ({"fractions": ["ten"]}, "not a number"),
    ({"fractions": [0.1, 0.1]}, "twice"),
    ({"lstm_models": ["LSTM-2"]}, "LSTM-<layers>-<units>"),
    ({"lstm_models": ["LSTM-0-8"]}, "at least 1"),
    ({"lstm_embeddings": ["pretrained"]}, "needs --init_checkpoint"),
    ({"lstm_embeddings": ["glove"]}, "allowed: scratch, pretrained"),
    ({"finetune": {"seed": 3}}, "the sweep sets those itself"),
    ({"finetune": {"learning_rat": 3e-4}}, "unknown --hparams key"),
    ({"lstm_models": []}, "nothing to run"),
    ({"lstm_learning_rates": []}, "lstm_learning_rates is empty"),
    ({"lstm_learning_rates": [1e-3, 0.0]}, "lstm_learning_rates: 0.0 must be positive"),
    ({"lstm_learning_rates": "1e-3,1e-3"}, "twice"),
    ({"lstm_lr_schedule": "cosine"}, "allowed: constant, linear"),
    ({"lstm_early_stopping_patience": -1}, "must be >= 0"),
    ({"lstm_train_batch_size": 0}, "must be positive"),
])
def test_bad_settings_are_clear_errors(values, message):
    with pytest.raises(ValueError, match=message):
        BaselinesConfig(**values)


def test_flags_parse_into_the_config_and_a_bad_fraction_is_refused():
    flag_values = run_baselines.define_flags(flags.FlagValues())
    flag_values(["prog", "--flagfile=flags/baselines/samples.flags", "--data_dir=d",
                 "--init_checkpoint=m"])
    config = run_baselines.build_config(flag_values)
    assert config.fractions == [0.01, 0.1] and config.num_trials == 2
    assert config.models == ["pretrained", "LSTM-2-256", "LSTM-2-256+emb"]
    assert config.finetune["learning_rate"] == 3e-4
    flag_values = run_baselines.define_flags(flags.FlagValues())
    flag_values(["prog", "--data_dir=d", "--fractions=0.5,2"])
    with pytest.raises(ValueError, match=r"fractions: '2' must be in \(0, 1\]: give fractions"):
        run_baselines.build_config(flag_values)
    assert check_fractions(["0.9", "0.1"]) == [0.1, 0.9]
    assert parse_lstm_model("LSTM-4-512") == (4, 512)
    flag_values = run_baselines.define_flags(flags.FlagValues())
    flag_values(["prog", "--data_dir=d", "--lstm_learning_rates=1e-3,2.5e-4",
                 "--lstm_lr_schedule=linear", "--lstm_project_embeddings"])
    config = run_baselines.build_config(flag_values)
    assert config.lstm_learning_rates == [2.5e-4, 1e-3]
    assert config.lstm_lr_schedule == "linear" and config.lstm_project_embeddings


def test_the_bilstm_defaults_are_the_papers_recipe():
    config = BaselinesConfig()
    assert config.lstm_learning_rates == [2.5e-4, 5e-4, 7.5e-4, 1e-3]
    assert config.lstm_lr_schedule == "constant"
    assert config.lstm_train_batch_size == 64 and config.lstm_num_train_epochs == 10
    assert config.lstm_early_stopping_patience > 0
    assert not config.lstm_project_embeddings


def test_lstm_learning_rate_schedules():
    constant = lstm_schedule(BaselinesConfig(), 5e-4, 100)
    linear = lstm_schedule(BaselinesConfig(lstm_lr_schedule="linear"), 5e-4, 100)
    for step, constant_rate, linear_rate in ((0, 5e-4, 5e-4), (50, 5e-4, 2.5e-4),
                                             (75, 5e-4, 1.25e-4), (100, 5e-4, 0.0)):
        assert float(constant(step)) == pytest.approx(constant_rate)
        assert float(linear(step)) == pytest.approx(linear_rate)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A learnable sst2_mr-layout task and a tiny exported encoder with its vocab."""
    root = tmp_path_factory.mktemp("baselines")
    write_review_task(root, np.random.default_rng(0), train=80, dev=24, test=20)
    model_dir = root / "models" / "tiny_encoder"
    model_dir.mkdir(parents=True)
    encoder = Encoder(get_config("electra", "debug", {"vocab_size": len(VOCAB)}))
    encoder.save(str(model_dir / "encoder.keras"))
    (model_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return root


def _config(root, **overrides):
    values = dict(data_dir=str(root), model_name="sweep", task_name="sst2_mr",
                  fractions=[0.25, 1.0], init_checkpoint=str(root / "models" / "tiny_encoder"),
                  lstm_models=["LSTM-1-8"], lstm_embeddings=["scratch", "pretrained"],
                  max_seq_length=12, train_batch_size=8, eval_batch_size=32,
                  min_train_steps=6, lstm_train_batch_size=8, lstm_num_train_epochs=2,
                  lstm_learning_rates=[1e-2], lstm_early_stopping_patience=0,
                  finetune={"learning_rate": 1e-3, "num_train_epochs": 1.0})
    values.update(overrides)
    return BaselinesConfig(**values)


def test_a_small_sweep_writes_json_table_plot_resumes_and_refuses_changes(sweep_dir):
    config = _config(sweep_dir)
    results = run_sweep(config, progress=False)

    models = ["pretrained", "LSTM-1-8", "LSTM-1-8+emb"]
    assert results["models"] == models and results["report_split"] == "test"
    cells = {(c["model"], c["fraction"]): c for c in results["cells"]}
    assert set(cells) == {(m, f) for m in models for f in (0.25, 1.0)}
    for (model, fraction), cell in cells.items():
        assert cell["train_examples"] == (20 if fraction == 0.25 else 80)
        # at least min_train_steps; the full set's 2 epochs of 10 batches for the LSTMs
        assert cell["steps"] >= 6
        if model != "pretrained":  # patience 0: every epoch
            assert cell["steps"] == (6 if fraction == 0.25 else 20)
            assert cell["epochs"] == 2 and not cell["stopped_early"]
        for split in ("dev", "test"):
            assert 0.0 <= cell[split]["accuracy"] <= 1.0
        cell_dir = sweep_dir / "models" / "sweep" / "cells" / model / \
            f"fraction_{fraction:g}" / "trial_0"
        assert os.path.exists(cell_dir / "result.json")
        if model != "pretrained":  # the one-rate grid's run, with its TensorBoard events
            assert cell["learning_rate"] == 1e-2 and list(cell["grid"]) == ["0.01"]
            assert os.path.exists(cell_dir / "lr_0.01" / "result.json")
            assert list((cell_dir / "lr_0.01").glob("events.out.tfevents.*"))
    # LSTM-1-8 on 128-wide inputs with 2 labels, by hand: 2 * (4*8*(128+8) + 4*8) + 16*2 + 2;
    # +emb reads the debug encoder's frozen table straight: 2 * (4*8*(width+8) + 4*8) + 34
    width = get_config("electra", "debug").embedding_size
    lstm = 2 * (4 * 8 * (128 + 8) + 4 * 8) + 16 * 2 + 2
    on_table = 2 * (4 * 8 * (width + 8) + 4 * 8) + 16 * 2 + 2
    assert cells[("LSTM-1-8", 1.0)]["parameters"] == {
        "total": lstm + len(VOCAB) * 128, "without_embeddings": lstm}
    assert cells[("LSTM-1-8+emb", 1.0)]["parameters"] == {
        "total": on_table + len(VOCAB) * width, "without_embeddings": on_table}
    # learnable: the full-data LSTM beats chance on test
    assert cells[("LSTM-1-8", 1.0)]["test"]["accuracy"] > 0.7

    summary = results["summary"]
    assert summary["LSTM-1-8"]["1"]["test"]["mean"] == cells[("LSTM-1-8", 1.0)]["test"][
        "accuracy"]
    assert results["gap"]["LSTM-1-8"]["0.25"] == pytest.approx(
        cells[("pretrained", 0.25)]["test"]["accuracy"]
        - cells[("LSTM-1-8", 0.25)]["test"]["accuracy"])
    out = sweep_dir / "models" / "sweep"
    with open(out / "results.json") as f:
        assert json.load(f)["gap"] == results["gap"]
    table = (out / "results.md").read_text().splitlines()
    assert table[0].startswith("| fraction | train examples | pretrained accuracy")
    assert table[2].startswith("| 25% | 20 |") and table[3].startswith("| 100% | 80 |")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a re-run reads every cell back; a wider sweep adds only its new cells
    before = {p: os.path.getmtime(p) for p in out.glob("cells/*/*/*/result.json")}
    assert run_sweep(config, progress=False)["cells"] == results["cells"]
    wider = run_sweep(_config(sweep_dir, fractions=[0.25, 0.5, 1.0],
                              lstm_embeddings=["scratch"]), progress=False)
    assert {p: os.path.getmtime(p) for p in before} == before
    assert [(c["model"], c["fraction"]) for c in wider["cells"]] == [
        (m, f) for f in (0.25, 0.5, 1.0) for m in ("pretrained", "LSTM-1-8")]
    assert markdown_table(wider).splitlines()[3].startswith("| 50% | 40 |")

    with pytest.raises(ValueError, match="holds a sweep with other settings.*max_seq_length"):
        run_sweep(_config(sweep_dir, max_seq_length=16), progress=False)


def _review_features(root, config):
    tokenizer = WordPieceTokenizer(vocab_path(config), do_lower_case=True)
    task = classification_task("sst2_mr", "the sweep")
    return task, task.labelled_splits(str(root), tokenizer, config.max_seq_length)[1]


def test_early_stopping_waits_for_patience_and_min_steps_and_resumes(sweep_dir, tmp_path):
    # At a rate of 1e-9 the weights barely move: dev never improves on epoch 1, so with
    # patience 2 the run stops after epoch 3 (1 + 2), at step 6 of 20 (16 examples, batch
    # 8: 2 steps an epoch, 10 epochs).
    config = _config(sweep_dir, lstm_early_stopping_patience=2, lstm_num_train_epochs=10,
                     min_train_steps=1)
    task, features = _review_features(sweep_dir, config)
    args = (features["train"].subset(np.arange(16)), features["dev"], task)

    def train(config, run_dir):
        return train_lstm(config, "LSTM-1-4", 1e-9, *args, str(tmp_path / run_dir), 0,
                          len(VOCAB), progress=False)[1]

    trained = train(config, "a")
    assert (trained["epochs"], trained["steps"], trained["best_epoch"]) == (3, 6, 1)
    assert trained["stopped_early"] and len(trained["history"]) == 3
    # A re-run reads the stopped run back and trains no further.
    again = train(config, "a")
    assert (again["epochs"], again["steps"], again["history"]) == (3, 6, trained["history"])
    # Never before min_train_steps: 9 steps end in epoch 5, at step 10.
    trained = train(_config(sweep_dir, lstm_early_stopping_patience=2,
                            lstm_num_train_epochs=10, min_train_steps=9), "b")
    assert (trained["epochs"], trained["steps"], trained["stopped_early"]) == (5, 10, True)
    # (Patience 0 trains every epoch: the small sweep below.)
    # 2 epochs are 4 steps; min_train_steps 10 stretches the run to 5 epochs, scored at
    # every half of it (steps 5 and 10), not after each 2-step epoch.
    stretched = train(_config(sweep_dir, lstm_early_stopping_patience=0,
                              lstm_num_train_epochs=2, min_train_steps=10), "c")
    assert [(h["eval"], h["step"]) for h in stretched["history"]] == [(1, 5), (2, 10)]
    assert (stretched["epochs"], stretched["steps"]) == (5, 10)
    assert stretched["best_epoch"] in (2.5, 5)


def test_the_learning_rate_grid_keeps_the_best_on_dev_per_cell(sweep_dir):
    # 1e-6 cannot learn the task in 20 steps; 3e-2 does: the cell takes 3e-2's scores.
    config = _config(sweep_dir, model_name="grid", init_checkpoint="",
                     vocab_file=str(sweep_dir / "models" / "tiny_encoder" / "vocab.txt"),
                     fractions=[1.0], lstm_embeddings=["scratch"],
                     lstm_learning_rates=[3e-2, 1e-6])
    (cell,) = run_sweep(config, progress=False)["cells"]
    assert cell["model"] == "LSTM-1-8" and set(cell["grid"]) == {"1e-06", "0.03"}
    assert cell["learning_rate"] == 3e-2
    best, worse = cell["grid"]["0.03"], cell["grid"]["1e-06"]
    assert best["dev"]["accuracy"] > worse["dev"]["accuracy"]
    assert (cell["dev"], cell["test"], cell["best_epoch"]) == (best["dev"], best["test"],
                                                               best["best_epoch"])
    assert cell["seconds"] == pytest.approx(best["seconds"] + worse["seconds"], abs=0.11)
    # The cell's result is rebuilt from its runs' results, without training again.
    cell_dir = sweep_dir / "models" / "grid" / "cells" / "LSTM-1-8" / "fraction_1" / "trial_0"
    runs = {p: os.path.getmtime(p) for p in cell_dir.glob("lr_*/result.json")}
    assert len(runs) == 2
    os.remove(cell_dir / "result.json")
    assert run_sweep(config, progress=False)["cells"] == [cell]
    assert {p: os.path.getmtime(p) for p in runs} == runs


def test_a_vocab_that_differs_from_the_encoders_is_refused(sweep_dir, tmp_path):
    other = tmp_path / "vocab.txt"
    other.write_text("\n".join(VOCAB[:-1] + ["zebra"]) + "\n")
    config = _config(sweep_dir, model_name="other_vocab", vocab_file=str(other))
    with pytest.raises(ValueError, match="differs from the task's vocab.*zebra"):
        run_sweep(config, progress=False)


def test_gaps_need_the_pretrained_row():
    summary = {"LSTM-2-256": {"0.1": {"dev": {"mean": 0.7, "std": 0.0, "trials": 1}}}}
    assert gaps(summary, "dev") == {}
    summary["pretrained"] = {"0.1": {"dev": {"mean": 0.8, "std": 0.0, "trials": 1}}}
    assert gaps(summary, "dev") == {"LSTM-2-256": {"0.1": pytest.approx(0.1)}}


def test_the_sweep_and_tlm_need_a_classification_task():
    from electra_tf.tasks.specs import classification_task

    assert classification_task("sst5_mr", "the sweep").num_outputs == 5
    with pytest.raises(ValueError, match="regression task; the sweep needs a sentence or "
                                         "sentence-pair classification task"):
        classification_task("stsb_mr", "the sweep")
