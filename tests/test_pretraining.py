"""Pretraining runs: BERT / ELECTRA / ALE on TFRecords of the real sample corpora, the FLOP
budget, TensorBoard scalars, export, resume after SIGKILL, mirrored = single replica, and
the command line's errors and flagfiles."""

import dataclasses
import glob
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from batches import make_batch, one_step_setup
from crash import kill_when

from electra_tf import distribute, run_pretraining
from electra_tf.configs import get_config
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import load_encoder
from electra_tf.flops import train_flops_per_step
from electra_tf.modeling import encoder_of
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.objectives import PretrainingModel
from electra_tf.pretraining.trainer import pretrain
from electra_tf.training.run_dir import RunDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, SEQ = 16, 64


def scalars(log_dir):
    """{tag: [(step, value), ...]} from the TensorBoard event files in `log_dir`."""
    values = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return values


def run_config(built, sample_paths, data_dir, **overrides):
    _, shards, _ = built
    values = dict(data_dir=str(data_dir), model_name="run", objective="electra",
                  model_size="debug", train_batch_size=BATCH, max_seq_length=SEQ,
                  learning_rate=3e-2, num_warmup_steps=10, log_every_steps=10,
                  save_checkpoints_steps=50, vocab_file=sample_paths["vocab"],
                  pretrain_tfrecords=os.path.join(shards, "pretrain_data.tfrecord*"), seed=1)
    values.update(overrides)
    return PretrainingConfig(**values)


@pytest.mark.parametrize("objective", ["bert", "electra", "ale"])
def test_pretraining_on_sample_records_learns_and_stops_at_the_budget(
        objective, built, sample_paths, tmp_path, fault_report, fused_kernels):
    per_step = train_flops_per_step(get_config(objective, "debug"), BATCH, SEQ)
    budget = 100.5 * per_step
    config = run_config(built, sample_paths, tmp_path, objective=objective,
                        model_name=objective, flop_budget=budget)
    summary = pretrain(config, progress=False)

    assert summary["step"] == summary["train_steps"] == 100
    assert summary["flops"] == pytest.approx(100 * per_step) and summary["flops"] <= budget
    logged = scalars(os.path.join(config.model_dir, "train"))
    expected = {"loss", "masked_lm_loss", "masked_lm_accuracy", "learning_rate", "flops",
                "tokens_per_second", "examples_per_second"}
    if objective != "bert":
        expected |= {"sampled_masked_lm_accuracy", "disc_loss", "disc_accuracy",
                     "disc_precision", "disc_recall", "disc_auc"}
    assert expected <= set(logged)
    assert [step for step, _ in logged["masked_lm_loss"]] == list(range(10, 101, 10))
    assert logged["flops"][-1] == (100, pytest.approx(100 * per_step))
    mlm_loss = [v for _, v in logged["masked_lm_loss"]]
    accuracy = [v for _, v in logged["masked_lm_accuracy"]]
    assert mlm_loss[-1] < mlm_loss[0] - 1.0
    assert np.mean(accuracy[-3:]) > accuracy[0] + 0.01  # ALE, sharing layers, is slowest
    if objective != "bert":
        assert logged["disc_auc"][-1][1] > 0.6

    encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
    batch = make_batch(encoder.model_config, seq_len=SEQ)
    assert encoder(batch)["sequence_output"].shape == (2, SEQ, encoder.model_config.hidden_size)
    with open(os.path.join(config.model_dir, "vocab.txt")) as f:
        assert len(f.read().splitlines()) == 30522
    with open(os.path.join(config.model_dir, "electra_tf_config.json")) as f:
        assert json.load(f)["model_type"] == objective
    # The whole pretrainer too (what electra-convert publishes), holding the same encoder.
    pretrainer = keras.models.load_model(os.path.join(config.model_dir, "pretrainer.keras"))
    assert pretrainer.model_config.model_type == objective
    for ours, exported in zip(encoder_of(pretrainer).weights, encoder.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), exported.numpy(), err_msg=ours.path)
    # The same outputs on one batch: the export, and the encoder finetuning loads from the
    # run, compute exactly what the pretrainer's discriminator (BERT's encoder) computed.
    expected = encoder_of(pretrainer)(batch, training=False)["sequence_output"].numpy()
    loaded = load_encoder(FinetuningConfig(init_checkpoint=config.model_dir,
                                           task_names=["sst2"]), 30522)
    for model in (encoder, loaded):
        np.testing.assert_array_equal(model(batch, training=False)["sequence_output"].numpy(),
                                      expected)
    if objective == "bert":
        _check_settings_integrity(config, summary, fault_report)


def _check_settings_integrity(config, summary, fault_report):
    """A finished run re-run with other settings: refused, naming each; accepted and
    recorded when named in change_settings; a run saved before bert_random_tokens existed
    compares as the 80/10/10 masking it used."""
    settings = os.path.join(config.model_dir, "pretraining_config.json")
    with open(settings) as f:
        saved = json.load(f)
    changed = dataclasses.replace(config, learning_rate=1e-2, mixed_precision="fp16",
                                  mask_prob=0.2)
    with pytest.raises(ValueError) as refused:
        pretrain(changed, progress=False)
    assert str(refused.value) == (
        f"{config.model_dir} holds a run with other settings (learning_rate: 0.03 -> 0.01; "
        f"mask_prob: 0.15 -> 0.2; mixed_precision: '' -> 'fp16'); to change them "
        f"knowingly, add --change_settings=learning_rate,mask_prob,mixed_precision; or use "
        f"another --model_name, or delete that folder to start over")
    with pytest.raises(ValueError, match=r"\(train_batch_size: 16 -> 32\); use another "):
        pretrain(dataclasses.replace(config, train_batch_size=32), progress=False)
    with open(settings) as f:
        assert json.load(f) == saved

    knowing = dataclasses.replace(config, learning_rate=1e-2,
                                  change_settings=["learning_rate"])
    assert pretrain(knowing, progress=False) == summary  # finished: nothing to train
    (entry,) = RunDir(config.model_dir).history()
    assert entry["changed"] == {"learning_rate": [0.03, 0.01]}
    assert entry["checkpoint_steps"] == {".": 100}

    saved.pop("bert_random_tokens")  # as written before the setting existed
    with open(settings, "w") as f:
        json.dump(saved, f)
    run = RunDir(config.model_dir, "pretraining_config.json")
    assert run.changed_settings(config) == {"bert_random_tokens": (True, False)}
    assert run.changed_settings(dataclasses.replace(config, bert_random_tokens=True)) == {}
    fault_report("pretraining", "a finished run re-run with another learning rate, "
                 "mask_prob and fp16", "nothing written; the settings file unchanged",
                 "one line naming each change: learning_rate: 0.03 -> 0.01; mask_prob: 0.15 "
                 "-> 0.2; mixed_precision: '' -> 'fp16', and the --change_settings that "
                 "would allow them")
    fault_report("pretraining", "the same with --change_settings=learning_rate",
                 "the run continues; settings_history.json records the change at step 100",
                 "the run's summary line")
    fault_report("pretraining", "a BERT run saved before bert_random_tokens existed, "
                 "resumed with today's default", "nothing written",
                 "one line: bert_random_tokens: True -> False (the 80/10/10 masking it used)")


def test_do_eval_scores_the_newest_checkpoint_after_training_or_alone(
        built, sample_paths, tmp_path):
    _, shards, _ = built
    config = run_config(built, sample_paths, tmp_path, model_name="evaluated",
                        num_train_steps=20, do_eval=True, num_eval_steps=3)
    summary = pretrain(config, progress=False)
    scores = summary["eval"]
    assert scores["step"] == 20 and scores["num_eval_steps"] == 3
    assert {"loss", "masked_lm_accuracy", "disc_accuracy", "disc_auc"} <= set(scores)
    assert 0.0 <= scores["masked_lm_accuracy"] <= 1.0 and scores["loss"] > 0
    with open(os.path.join(config.model_dir, "eval_results.json")) as f:
        assert json.load(f) == scores
    logged = scalars(os.path.join(config.model_dir, "eval"))
    assert logged["disc_auc"] == [(20, pytest.approx(scores["disc_auc"]))]
    # Alone, on the finished run: the same checkpoint, the same batches, the same scores.
    again = pretrain(run_config(built, sample_paths, tmp_path, model_name="evaluated",
                                num_train_steps=20, do_train=False, do_eval=True,
                                num_eval_steps=3), progress=False)
    assert again["eval"] == pytest.approx(scores)
    with pytest.raises(ValueError, match="no checkpoint to evaluate; train first"):
        pretrain(run_config(built, sample_paths, tmp_path, model_name="untrained",
                            num_train_steps=20, do_train=False, do_eval=True),
                 progress=False)
    with pytest.raises(ValueError, match="nothing to do"):
        run_config(built, sample_paths, tmp_path, num_train_steps=20, do_train=False)


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "electra_tf.run_pretraining", *args],
                          capture_output=True, text=True, cwd=ROOT, **kwargs)


def test_resume_after_sigkill_ends_at_the_same_step_and_flops(built, sample_paths,
                                                              tmp_path, fault_report):
    _, shards, _ = built
    per_step = train_flops_per_step(get_config("electra", "debug"), 8, SEQ)
    args = ["--data_dir", str(tmp_path), "--model_name=killed", "--objective=electra",
            "--model_size=debug", "--train_batch_size=8", f"--max_seq_length={SEQ}",
            f"--flop_budget={60.5 * per_step!r}", "--save_checkpoints_steps=10",
            "--log_every_steps=10", "--num_warmup_steps=5", "--noprogress",
            f"--vocab_file={sample_paths['vocab']}",
            f"--pretrain_tfrecords={os.path.join(shards, 'pretrain_data.tfrecord*')}"]
    model_dir = tmp_path / "models" / "killed"
    # Killed as soon as a checkpoint's index appears: TensorFlow may not have named it
    # in the state file yet, and the resumed run must start from it all the same.
    killed = kill_when("electra_tf.run_pretraining", args, str(tmp_path),
                       appears="models/killed/model.ckpt-*.index")
    killed_at = max(int(p.split("-")[-1].split(".")[0])
                    for p in glob.glob(str(model_dir / "model.ckpt-*.index")))
    assert 10 <= killed_at < 60 and not (model_dir / "train_summary.json").exists()

    result = _cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == killed_at
    assert summary["step"] == summary["train_steps"] == 60
    assert summary["flops"] == pytest.approx(60 * per_step)
    assert f"step 60/60, resumed at step {killed_at}" in result.stdout
    steps = [step for step, _ in scalars(str(model_dir / "train"))["flops"]]
    assert steps[-1] == 60 and max(steps) == 60

    # Running the finished command again (here in this process) changes nothing.
    finished = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir() if p.is_file()}
    flag_values = run_pretraining.define_flags(flags.FlagValues())
    flag_values(["electra-pretrain", *args])
    again = pretrain(run_pretraining.build_config(flag_values), progress=False)
    assert again == summary
    changed = [p.name for p in model_dir.iterdir()
               if p.is_file() and p.stat().st_mtime_ns != finished.get(p.name)]
    assert changed == []
    fault_report("pretraining", "SIGKILL when the first checkpoint's index appeared "
                 f"({killed.seconds:.1f} s in)",
                 f"resumed at step {killed_at}; 60/60 steps with the uninterrupted FLOPs",
                 f"the progress line 'step 60/60, resumed at step {killed_at}'")


@pytest.mark.parametrize("objective", ["electra"])  # its generator is the BERT path
def test_one_device_traces_its_step_once_and_two_replicas_train_like_it(
        objective, mirrored_strategy, monkeypatch):
    batch, build_task = one_step_setup(objective)
    traces = []
    train_step = PretrainingModel.train_step
    monkeypatch.setattr(PretrainingModel, "train_step",
                        lambda self, data: traces.append(self) or train_step(self, data))

    def one_step(strategy):
        with strategy.scope():
            task = build_task()
        dataset = tf.data.Dataset.from_tensors(batch)
        if strategy is not tf.distribute.get_strategy():
            dataset = strategy.experimental_distribute_dataset(dataset)
        history = task.fit(dataset, epochs=1, verbose=0)
        return history.history, [v.numpy() for v in task.pretrainer.weights]

    single_logs, single = one_step(tf.distribute.get_strategy())
    # The optimizer is built before the first step, not by its trace, so TensorFlow
    # traces the step once instead of a second time after making the slot variables.
    assert len(traces) == 1
    mirrored_logs, mirrored = one_step(mirrored_strategy)
    assert mirrored_strategy.num_replicas_in_sync == 2
    for name in ("loss", "masked_lm_loss", "masked_lm_accuracy"):
        assert mirrored_logs[name][0] == pytest.approx(single_logs[name][0], rel=1e-5)
    for a, b in zip(single, mirrored, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_pretraining_runs_under_a_mirrored_strategy(built, sample_paths, tmp_path,
                                                    mirrored_strategy):
    # Several steps per call (Keras' own loop fails here) train exactly like one per call.
    weights = {}
    for per_call in (1, 2):
        config = run_config(built, sample_paths, tmp_path, model_name=f"spe{per_call}",
                            objective="ale", num_train_steps=4,
                            steps_per_execution=per_call, log_every_steps=2)
        summary = pretrain(config, mirrored_strategy, progress=False)
        assert summary["step"] == 4 and np.isfinite(summary["last_logged"]["loss"])
        logged = scalars(os.path.join(config.model_dir, "train"))["loss"]
        assert [step for step, _ in logged] == [2, 4]
        reader = tf.train.load_checkpoint(os.path.join(config.model_dir, "model.ckpt-4"))
        weights[per_call] = {name: reader.get_tensor(name)
                             for name in reader.get_variable_to_shape_map()
                             if name.startswith("weights/")}
    assert weights[1].keys() == weights[2].keys() and len(weights[1]) > 10
    for name, value in weights[1].items():
        np.testing.assert_allclose(weights[2][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_batch_not_divisible_by_replicas_is_an_error(built, sample_paths, tmp_path,
                                                     mirrored_strategy):
    config = run_config(built, sample_paths, tmp_path, train_batch_size=15,
                        num_train_steps=2)
    with pytest.raises(ValueError, match="train_batch_size=15 must be a positive multiple "
                                         "of the 2 replicas"):
        pretrain(config, mirrored_strategy, progress=False)


@pytest.mark.parametrize("args, message", [
    (["--objective=gpt"], "unknown objective 'gpt'; allowed: bert, electra, ale"),
    (["--flop_budget=1e15", "--num_train_steps=10"],
     "give either num_train_steps or flop_budget, not both"),
    (["--num_train_steps=10", "--hparams={\"learning_rat\": 1}"],
     "unknown --hparams key(s) 'learning_rat'"),
    (["--num_train_steps=10", "--hparams={\"num_train_steps\": 20}"],
     "given twice with different values: num_train_steps"),
])
def test_flag_errors_are_one_clear_line(args, message, tmp_path):
    result = _cli(f"--data_dir={tmp_path}", "--model_name=x", *args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("run_pretraining: error: ") and message in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_steps_per_execution_and_a_changed_run_in_an_existing_model_dir(
        built, sample_paths, tmp_path):
    config = run_config(built, sample_paths, tmp_path, num_train_steps=7,
                        steps_per_execution=3, log_every_steps=3)
    summary = pretrain(config, progress=False)
    assert summary["step"] == 7  # 3 + 3 + a last, shorter execution of 1
    assert [step for step, _ in scalars(os.path.join(config.model_dir, "train"))["loss"]] == [
        3, 6, 7]
    changed = run_config(built, sample_paths, tmp_path, num_train_steps=7,
                         train_batch_size=8)
    with pytest.raises(ValueError, match="train_batch_size: 16 -> 8"):
        pretrain(changed, progress=False)


def parse_command(argv):
    """The PretrainingConfig a command line gives (flags parsed into a fresh namespace)."""
    flag_values = run_pretraining.define_flags(flags.FlagValues())
    flag_values(argv)
    return run_pretraining.build_config(flag_values)


RECIPE = {"optimizer": "lamb", "learning_rate": 5e-4, "train_batch_size": 1024,
          "num_warmup_steps": 10000, "weight_decay_rate": 0.01, "mask_prob": 0.15,
          "max_seq_length": 128}


# The equal-budget recipes <objective>_<size>.flags (electra_small_1m.flags, the released
# ELECTRA-Small's run by steps, and the *_small_shao.flags are checked in test_flops).
SIZE_RECIPES = sorted(p for p in glob.glob(os.path.join(ROOT, "flags", "pretrain", "*.flags"))
                      if re.fullmatch(r"(bert|electra|ale)_[a-z]+\.flags", os.path.basename(p)))


def test_every_objective_and_size_has_a_recipe():
    names = {os.path.basename(p) for p in SIZE_RECIPES}
    assert names == {f"{o}_{s}.flags" for o in ("bert", "electra", "ale")
                     for s in ("debug", "tiny", "small", "base", "large")}


@pytest.mark.parametrize("path", SIZE_RECIPES)
def test_pretraining_flagfiles_parse_into_configs(path):
    objective, size = os.path.basename(path)[:-len(".flags")].split("_")
    config = parse_command(["run_pretraining", f"--flagfile={path}", "--data_dir=d",
                            "--model_name=m"])
    assert (config.objective, config.model_size) == (objective, size)
    model = config.model_config(30522)
    steps = config.train_steps(model)
    assert steps * config.flops_per_step(model) <= config.flop_budget
    if size == "small":
        assert {k: getattr(config, k) for k in RECIPE} == RECIPE
        assert model.dropout_rate == 0.1
        if objective != "bert":
            assert model.generator_config().hidden_size == 64  # 1/4 of 256
    if size in ("small", "base", "large"):  # one budget per size: equal compute for the three
        assert config.flop_budget == {"small": 1.29e18, "base": 6.424542e19,
                                      "large": 7.11761e20}[size]


def test_strategy_choice_and_its_errors(monkeypatch):
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="unknown strategy 'gpus'; allowed: default, "
                                         "mirrored, multi_worker, tpu"):
        distribute.make_strategy("gpus")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the cluster in the TF_CONFIG"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="needs --tpu"):
        distribute.make_strategy("tpu")
    with pytest.raises(ValueError, match="--tpu=local conflicts with --strategy=mirrored"):
        distribute.make_strategy("mirrored", tpu="local")
    assert distribute.check_batch_size(tf.distribute.get_strategy(), 6) == 6
