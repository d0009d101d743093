"""The equal-FLOP study (and the demo, its small case): config errors, the budget split,
and a whole small study on the real samples (news as the corpus,
debug-size models, 3 % of the training sets) that writes Table IV, its JSON and the plot,
and resumes without redoing anything."""

import json
import os

import keras
import numpy as np
import pytest
from absl import flags

from electra_tf import flops, run_study
from electra_tf.study.config import StudyConfig
from electra_tf.study.pipeline import pretraining_config
from electra_tf.study.report import markdown_table
from electra_tf.study.runner import run_study as run_whole_study
from electra_tf.training.run_dir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("values, message", [
    ({"tasks": ["sst2_mr", "cola"]}, "unknown task 'cola'"),
    ({"objectives": ["electra", "gpt"]}, "unknown objective 'gpt'"),
    ({"objectives": ["bert", "bert"]}, "lists one twice"),
    ({"corpora": ["wikipedia"]}, "unknown corpus 'wikipedia'"),
    ({"checkpoint_fractions": [0.5, 0.75]}, r"end at 1.0"),
    ({"checkpoint_fractions": [0.5, 0.25, 1.0]}, "must rise"),
    ({"checkpoint_fractions": "half,1"}, "numbers such as"),
    ({"curve_tasks": ["wiki_topics"], "tasks": ["sst2_mr"]}, "not among tasks"),
    ({"tlm_task": "pos_wsj"}, "unknown tlm_task 'pos_wsj'"),
    ({"lstm_model": "LSTM-2"}, "LSTM-<layers>-<units>"),
    ({"flop_budget": 0.0}, "must be positive"),
    ({"num_trials": 2, "curve_trials": 3}, r"curve_trials=3 must be in \[1, num_trials=2\]"),
])
def test_bad_study_settings_are_one_clear_error(values, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig(**values)


def _parse(argv):
    values = run_study.define_flags(flags.FlagValues())
    values(["electra-study", *argv])
    return run_study.build_config(values)


def test_flagfiles_parse_and_quick_shrinks_the_same_study():
    study = _parse([f"--flagfile={REPO}/flags/study/samples.flags"])
    assert study.objectives == ["bert", "electra", "ale"] and study.num_trials == 2
    assert study.tasks == ["sst2_mr", "stsb_mr", "wiki_topics", "pos_wsj"]
    assert study.checkpoint_fractions == [0.25, 0.5, 0.75, 1.0]
    quick = _parse([f"--flagfile={REPO}/flags/study/samples.flags", "--quick"])
    assert quick.output_dir == "data/study_quick"
    assert (quick.flop_budget, quick.num_trials) == (1.5e13, 1)
    assert quick.checkpoint_fractions == [0.5, 1.0]
    assert quick.finetune_hparams["train_fraction"] == 0.3
    assert quick.objectives == study.objectives and quick.tasks == study.tasks
    demo = _parse([f"--flagfile={REPO}/flags/study/demo.flags"])
    assert demo.rows == ["electra", "scratch"] and demo.curve_tasks == []
    assert not demo.tlm_task and not demo.lstm_model


def test_every_objective_gets_the_same_budget_and_its_own_warmup():
    study = StudyConfig(output_dir="unused", flop_budget=8.7e13, warmup_fraction=0.1)
    steps = {}
    for objective in study.objectives:
        pretraining = pretraining_config(study, objective, num_tokens=30522)
        model_config = pretraining.model_config(30522)
        steps[objective] = pretraining.train_steps(model_config)
        per_step = pretraining.flops_per_step(model_config)
        assert per_step == flops.train_flops_per_step(model_config, 32, 128)
        assert 8.7e13 - per_step < steps[objective] * per_step <= 8.7e13
        assert pretraining.num_warmup_steps == round(0.1 * steps[objective])
        assert pretraining.encoder_snapshots == [0.25, 0.5, 0.75]
        assert pretraining.learning_rate == 5e-3 and pretraining.mixed_precision == "bf16"
    # BERT has no generator: more steps for the same FLOPs; ELECTRA-Tiny ~1,000 steps
    assert steps["bert"] > steps["electra"] and 950 < steps["electra"] < 1050


def test_a_knowing_change_of_the_study_reaches_the_stages_it_decides():
    study = StudyConfig(output_dir="unused", change_settings=["warmup_fraction",
                                                              "pretrain_hparams", "seed"],
                        pretrain_hparams={"gen_weight": 2.0,
                                          "change_settings": ["mask_prob"]})
    assert study.stage_changes("pretrain_hparams") == ["gen_weight", "mask_prob",
                                                       "num_warmup_steps", "seed"]
    pretraining = pretraining_config(study, "electra", num_tokens=30522)
    assert pretraining.change_settings == ["gen_weight", "mask_prob", "num_warmup_steps",
                                           "seed"]
    assert study.stage_changes("finetune_hparams") == ["seed"]
    assert StudyConfig(change_settings=["learning_rate"]).stage_changes("tlm_hparams") == []
    # A budget decides each run's warmup too; the finetuning length the BiLSTMs' length.
    more = StudyConfig(change_settings=["flop_budget", "finetune_hparams"])
    assert more.stage_changes("pretrain_hparams") == ["flop_budget", "num_warmup_steps"]
    assert more.stage_changes("lstm_hparams") == ["max_seq_length"]


BUDGET = 1e11  # 21 ELECTRA-Debug steps at batch 8


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """ELECTRA + control + TLM + BiLSTM, debug size, news as the corpus (the per-objective
    budget split is tested above without training)."""
    config = StudyConfig(
        output_dir=str(tmp_path_factory.mktemp("study")), corpora=["news"],
        objectives=["electra"], model_size="debug", flop_budget=BUDGET,
        train_batch_size=8, mixed_precision="", checkpoint_fractions=[0.5, 1.0],
        tasks=["sst2_mr", "pos_wsj-crf"], curve_tasks=["sst2_mr"], num_trials=2,
        finetune_hparams={"num_train_epochs": 1, "max_seq_length": 32,
                          "train_fraction": 0.02, "train_batch_size": 16},
        tlm_hparams={"max_seq_length": 32, "top_k": 1, "stage2_num_train_epochs": 0.05,
                     "eval_every_steps": 20}, tlm_budget_fraction=0.5, lstm_model="LSTM-1-16",
        lstm_hparams={"min_train_steps": 10, "lstm_num_train_epochs": 1,
                      "lstm_learning_rates": [1e-3]}, num_processes=1)
    return config, run_whole_study(config, progress=False)


def test_small_study_writes_table_iv_json_and_plot(small_study):
    config, results = small_study
    rows = {row["row"]: row for row in results["rows"]}
    assert list(rows) == ["electra", "scratch", "tlm", "lstm"]
    per_step = flops.train_flops_per_step(
        pretraining_config(config, "electra").model_config(30522), 8, 128)
    assert BUDGET - per_step < rows["electra"]["train_flops"] <= BUDGET  # within one step
    assert rows["electra"]["pretrain_steps"] * per_step == rows["electra"]["train_flops"]
    assert 0 < rows["tlm"]["train_flops"] <= 0.5 * BUDGET
    for name in ("electra", "scratch"):
        assert set(rows[name]["scores"]) == {"sst2_mr", "pos_wsj-crf"}
        for score in rows[name]["scores"].values():
            assert len(score["values"]) == 2 and 0.0 <= score["mean"] <= 1.0
        assert rows[name]["average"] == pytest.approx(np.mean(
            [s["mean"] for s in rows[name]["scores"].values()]))
    assert rows["electra"]["parameters"] == rows["scratch"]["parameters"]
    assert set(rows["tlm"]["scores"]) == {"sst2_mr"} and "average" not in rows["tlm"]
    assert set(rows["lstm"]["scores"]) == {"sst2_mr"}  # classification tasks only
    points = results["curves"]["electra"]  # the snapshot at half the run, then the end
    assert len(points) == 2 and points[0]["step"] == round(0.5 * rows["electra"]["pretrain_steps"])
    assert points[0]["flops"] == points[0]["step"] * per_step
    assert points[1]["flops"] == rows["electra"]["train_flops"]
    assert results["curve_scratch"] == rows["scratch"]["scores"]["sst2_mr"]["values"][0]
    # the snapshot is a finetunable export of the encoder at that step, not the final one
    snapshot_dir = os.path.join(config.model_dir("electra"), "snapshots",
                                f"step-{points[0]['step']}")
    with open(os.path.join(snapshot_dir, "snapshot.json")) as f:
        assert json.load(f) == {"step": points[0]["step"], "flops": points[0]["flops"]}
    snapshot, final = (keras.saving.load_model(os.path.join(d, "encoder.keras"), compile=False)
                       for d in (snapshot_dir, config.model_dir("electra")))
    assert [w.shape for w in snapshot.get_weights()] == [w.shape for w in final.get_weights()]
    assert not all(np.array_equal(a, b) for a, b in
                   zip(snapshot.get_weights(), final.get_weights(), strict=True))
    table = markdown_table(results).splitlines()
    assert table[0].startswith("| Model | Train FLOPs | Params | sst2_mr (accuracy) | "
                               "pos_wsj-crf (accuracy) | Avg. |")
    assert table[2].startswith("| ELECTRA-Debug | ") and table[3].startswith(
        "| No pretraining (Debug) | – |")
    assert "± " in table[2] and len(table) == 6
    base = config.results_path.removesuffix(".json")
    with open(f"{base}.md") as f:
        assert f.read() == "\n".join(table) + "\n"
    with open(f"{base}.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(config.tfrecords_dir, "summary.json")) as f:
        assert json.load(f)["examples"] > 0


def test_rerun_reads_everything_back_and_refuses_changed_settings(small_study):
    config, results = small_study
    stamp = os.path.getmtime(os.path.join(config.model_dir("electra"), "train_summary.json"))
    again = run_whole_study(config, progress=False)
    assert again == results
    assert os.path.getmtime(os.path.join(config.model_dir("electra"),
                                         "train_summary.json")) == stamp
    changed = StudyConfig(**{**config.to_dict(), "flop_budget": 8e11})
    with pytest.raises(ValueError, match=r"holds a study with other settings \(flop_budget: "
                                         rf"{BUDGET} -> 800000000000.0\)"):
        run_whole_study(changed, progress=False)

    # A change the study allows but one of its stages does not: refused before the study
    # saves anything, naming the stage's folder.
    saved = (config.output_dir + "/study_config.json")
    with open(saved) as f:
        before = f.read()
    grid = StudyConfig(**{**config.to_dict(), "lstm_hparams": {
        **config.lstm_hparams, "lstm_learning_rates": [2e-3]}})
    with pytest.raises(ValueError, match=r"bilstm_sst2_mr holds a sweep with other settings "
                                         r"\(lstm_learning_rates: \[0.001\] -> \[0.002\]\)"):
        run_whole_study(grid, progress=False)
    with open(saved) as f:
        assert f.read() == before

    # Named in change_settings, the change goes through, recorded by the study and by
    # the pretraining run it decides (finished: nothing trains again); then back.
    knowing = StudyConfig(**{**config.to_dict(), "learning_rate": 1e-3,
                             "change_settings": ["learning_rate"]})
    assert run_whole_study(knowing, progress=False)["rows"] == results["rows"]
    back = StudyConfig(**{**config.to_dict(), "change_settings": ["learning_rate"]})
    assert run_whole_study(back, progress=False) == results
    for folder in (config.output_dir, config.model_dir("electra")):
        history = RunDir(folder).history()
        assert [entry["changed"] for entry in history] == [
            {"learning_rate": [5e-3, 1e-3]}, {"learning_rate": [1e-3, 5e-3]}], folder
    assert history[0]["checkpoint_steps"]["."] == results["rows"][0]["pretrain_steps"]


def test_snapshot_fractions_must_lie_inside_the_run():
    from electra_tf.pretraining.config import PretrainingConfig

    config = PretrainingConfig(num_train_steps=6, encoder_snapshots=["0.5", 0.2])
    assert config.snapshot_steps(6) == [1, 3]
    for bad in ([1.0], [0.0]):
        with pytest.raises(ValueError, match=r"encoder_snapshots=\[.*\]: fractions of the run"):
            PretrainingConfig(num_train_steps=6, encoder_snapshots=bad)


def test_a_study_without_curve_tasks_reports_no_curve(small_study, recwarn):
    from electra_tf.study.report import collect

    config, _ = small_study
    flat = StudyConfig(**{**config.to_dict(), "curve_tasks": []})
    results = collect(flat)
    assert results["curves"] == {} and results["curve_scratch"] is None
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
