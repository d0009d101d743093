"""TLM stages 1 and 2 and the run: the ρ1 schedule, the ρ2 loss, task masking, the stage-2
head reset, and the pipeline with its controls on a small corpus."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from review_task import BAD, GOOD, write_review_task

from electra_tf.configs import get_config
from electra_tf.masking import MaskingConfig
from electra_tf.optimization import TransformersAdamW, WarmupLinearDecay
from electra_tf.tlm.config import TlmConfig
from electra_tf.tlm.data import is_task_step, joint_dataset
from electra_tf.tlm.model import TlmModel, joint_loss
from electra_tf.tlm.trainer import _optimizer, markdown_table, run_tlm, stage2_model
from electra_tf.tokenization import load_vocab, special_ids
from electra_tf.training.checkpointing import restore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, sample_paths):
    """A movie-review task in the sample layout (test labels apart) and a corpus where a
    third of the documents talk about films."""
    root = tmp_path_factory.mktemp("tlm")
    rng = np.random.default_rng(0)
    write_review_task(root, rng)
    documents = []
    for k in range(90):
        if k % 3 == 0:
            documents.append(f"critics said the film was {GOOD[k % 4]} but some found it "
                             f"{BAD[k % 4]} in parts")
        else:
            documents.append(f"the river number {k} flows past hills and farms toward "
                             f"the sea near town {k}")
    (root / "corpus.txt").write_text("\n\n".join(documents) + "\n")
    (root / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    return root


def tlm_config(data_dir, **overrides):
    values = dict(data_dir=str(data_dir), model_name="tlm_test", task_name="sst2_mr",
                  corpus=[f"text:{data_dir / 'corpus.txt'}"], top_k=5, model_size="debug",
                  max_seq_length=24, train_batch_size=8, eval_batch_size=32,
                  external_ratio=2, mlm_weight=4.0, learning_rate=3e-4, num_train_steps=24,
                  stage2_learning_rate=3e-3, stage2_num_train_epochs=8, eval_every_steps=16,
                  save_checkpoints_steps=12, log_every_steps=6, seed=3,
                  warmup_proportion=0.1)
    values.update(overrides)
    return TlmConfig(**values)


def test_defaults_are_the_reference_codes():
    """The reference's train.sh / finetune.sh and run.py: transformers' AdamW without
    clipping, warmup over 10,000 of 150,000 steps and 3,000 of 30,000 then linear decay,
    weight decay 0.01 in stage 1 and none in stage 2; RAKE queries of 20 phrases; BM25
    with k1 1.2, b 0.75."""
    config = TlmConfig(num_train_steps=150000)
    assert (config.optimizer, config.clip_norm, config.rake_top_n) == ("adamw_hf", 0.0, 20)
    assert (config.k1, config.b, config.mask_prob) == (1.2, 0.75, 0.15)
    for stage, steps, warmup, decay in ((1, 150000, 10000, 0.01), (2, 30000, 3000, 0.0)):
        optimizer, schedule = _optimizer(config, stage, steps)
        assert isinstance(optimizer, TransformersAdamW) and optimizer.global_clipnorm is None
        assert isinstance(schedule, WarmupLinearDecay)
        assert (schedule.total_steps, schedule.warmup_steps) == (steps, warmup)
        assert optimizer.weight_decay_rate == decay and optimizer.epsilon == 1e-6
    # The same shares of shorter stages; a proportion or a stage's own steps instead.
    assert [_optimizer(config, stage, 600)[1].warmup_steps for stage in (1, 2)] == [40, 60]
    proportional = TlmConfig(num_train_steps=1000, warmup_proportion=0.1,
                             stage2_warmup_steps=7)
    assert [_optimizer(proportional, stage, 500)[1].warmup_steps for stage in (1, 2)] == [50,
                                                                                           7]
    electra = TlmConfig(num_train_steps=10, optimizer="adamw", clip_norm=1.0)
    assert _optimizer(electra, 1, 10)[0].global_clipnorm == 1.0
    with pytest.raises(ValueError, match="stage2_warmup_steps=-1 must be >= 0"):
        TlmConfig(num_train_steps=10, stage2_warmup_steps=-1)


def _masking(vocab_path, max_predictions=3):
    vocab = load_vocab(vocab_path)
    return MaskingConfig(special_ids(vocab), len(vocab), max_predictions, 0.15, "bert")


def _streams(n_task=6, n_external=10, length=12):
    """Task rows hold token ids 1000+i, external rows 2000+i, so a batch says where it
    came from and which rows it holds."""
    def rows(base, n):
        ids = np.zeros((n, length), np.int32)
        ids[:, 0], ids[:, -1] = 101, 102
        ids[:, 1:-1] = (base + np.arange(n))[:, None]
        return {"input_ids": ids, "input_mask": np.ones_like(ids),
                "segment_ids": np.zeros_like(ids)}
    return rows(1000, n_task), np.arange(n_task) % 2, rows(2000, n_external)


def test_rho1_schedule_interleaves_one_task_batch_every_rho1_plus_1_steps(sample_paths):
    assert [is_task_step(s, 3) for s in range(8)] == [False, False, False, True] * 2
    assert all(is_task_step(s, 0) for s in range(5))
    task, labels, external = _streams()
    data = joint_dataset(task, labels, external, batch_size=2, external_ratio=2,
                         masking=_masking(sample_paths["vocab"]), mask_task=False, seed=1)
    batches = [inputs for inputs, _ in data.take(12).as_numpy_iterator()]
    assert [int(b["is_task"].max()) for b in batches] == [0, 0, 1] * 4
    assert all(b["is_task"].min() == b["is_task"].max() for b in batches)  # one stream each
    # Each stream cycles on its own: the 4 task batches hold 8 task rows (ids 1000 + row,
    # unmasked here), the first 6 of them one shuffled pass over the 6 rows.
    rows = [int(r) - 1000 for b in batches if b["is_task"].max() for r in b["input_ids"][:, 1]]
    assert len(rows) == 8 and sorted(rows[:6]) == list(range(6))
    # A resumed run continues the schedule where it stopped.
    resumed = joint_dataset(task, labels, external, batch_size=2, external_ratio=2,
                            masking=_masking(sample_paths["vocab"]), seed=1, start_step=1)
    assert [int(b[0]["is_task"].max()) for b in resumed.take(5).as_numpy_iterator()] == \
        [0, 1, 0, 0, 1]


def test_every_replica_of_a_step_draws_from_the_same_stream(sample_paths,
                                                            mirrored_strategy):
    task, labels, external = _streams()
    masking = _masking(sample_paths["vocab"])
    for start in (0, 1):  # also resumed mid-schedule
        data = mirrored_strategy.distribute_datasets_from_function(
            lambda context, start=start: joint_dataset(
                task, labels, external, batch_size=4, external_ratio=2, masking=masking,
                mask_task=False, seed=1, start_step=start, input_context=context))
        batches = iter(data)
        for step in range(start, start + 6):
            inputs, _ = next(batches)
            kinds = [int(t.numpy().max()) for t in
                     mirrored_strategy.experimental_local_results(inputs["is_task"])]
            assert kinds == [int(is_task_step(step, 2))] * 2, (start, step)


def test_task_inputs_are_masked_too_unless_mask_task_is_off(sample_paths):
    task, labels, external = _streams(n_task=4, length=40)
    masking = _masking(sample_paths["vocab"], max_predictions=6)
    for mask_task in (True, False):
        data = joint_dataset(task, labels, external, batch_size=4, external_ratio=1,
                             masking=masking, mask_task=mask_task, seed=0)
        (external_batch, _), (task_batch, task_labels) = list(data.take(2).as_numpy_iterator())
        assert external_batch["masked_lm_weights"].sum() > 0
        np.testing.assert_array_equal(np.sort(task_labels), [0, 0, 1, 1])
        if mask_task:
            assert task_batch["masked_lm_weights"].sum() > 0
            assert (task_batch["input_ids"] == 103).any()  # [MASK]
        else:
            assert task_batch["masked_lm_weights"].sum() == 0
            assert ((task_batch["input_ids"][:, 1:-1] >= 1000)
                    & (task_batch["input_ids"][:, 1:-1] < 2000)).all()  # nothing masked


def test_rho2_weights_the_task_batch_loss_and_external_batches_are_mlm_only(sample_paths):
    assert float(joint_loss(2.0, 5.0, 1.0, 4.0)) == pytest.approx((4 * 2 + 5) / 5)
    assert float(joint_loss(2.0, 5.0, 0.0, 4.0)) == pytest.approx(2.0)
    assert float(joint_loss(2.0, 5.0, 1.0, 0.0)) == pytest.approx(5.0)
    # The model's train loss is that formula over its own MLM and task losses.
    tf.keras.utils.set_random_seed(0)
    config = get_config("bert", "debug", {"vocab_size": 30522})
    model = TlmModel(config, num_labels=2, mlm_weight=4.0)
    task, labels, external = _streams(n_task=4, length=16)
    data = joint_dataset(task, labels, external, batch_size=4, external_ratio=1,
                         masking=_masking(sample_paths["vocab"]), seed=0)
    for inputs, y in data.take(2):
        outputs = model(inputs, training=False)
        loss, _ = model.joint_losses(inputs, y, outputs)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(inputs["masked_lm_ids"], tf.int32), outputs["mlm_logits"])
        w = inputs["masked_lm_weights"]
        mlm = float(tf.reduce_sum(ce * w) / (tf.reduce_sum(w) + 1e-6))
        task_ce = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(y, tf.int32), outputs["logits"])))
        expected = (4 * mlm + task_ce) / 5 if inputs["is_task"].numpy().max() else mlm
        assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def pipeline(data_dir):
    """The whole pipeline with both controls, run once for the tests that read it."""
    config = tlm_config(data_dir, runs=["tlm", "task_only", "random"])
    return config, run_tlm(config, progress=False)


def test_pipeline_with_controls_same_flops_results_and_events(pipeline, data_dir):
    config, results = pipeline
    runs = results["runs"]
    assert set(runs) == {"tlm", "task_only", "random"}
    tlm, task_only, random = runs["tlm"], runs["task_only"], runs["random"]
    # Retrieval: every BM25 hit shares a term with the queries; the random control draws
    # as many documents as TLM retrieved.
    retrieved = tlm["retrieval"]
    assert retrieved["queries"] == 64 and retrieved["skipped"] == 0
    assert retrieved["share_query_terms"] == 1.0
    assert 0 < retrieved["unique_documents"] <= 90
    assert random["retrieval"]["unique_documents"] == retrieved["unique_documents"]
    lines = [json.loads(line) for line in open(config.retrieved_path("tlm"))]
    assert [d["best_rank"] for d in lines] == sorted(d["best_rank"] for d in lines)
    assert len({d["id"] for d in lines}) == len(lines)
    # The same stage-1 steps and FLOPs for all three; ρ1 = 2 gives 8 task batches in 24
    # steps, task_only 24.
    assert {r["stage1"]["steps"] for r in runs.values()} == {24}
    assert len({r["stage1"]["flops"] for r in runs.values()}) == 1
    assert tlm["stage1"]["task_batches"] == 8 and task_only["stage1"]["task_batches"] == 24
    assert task_only["stage1"]["external_documents"] == 0
    for entry in runs.values():
        stage2 = entry["stage2"]
        assert set(stage2["dev"]) == {"accuracy", "micro_f1", "macro_f1"}
        assert stage2["dev"]["micro_f1"] == pytest.approx(stage2["dev"]["accuracy"])
        assert set(stage2["test"]) == {"accuracy", "micro_f1", "macro_f1"}
        assert stage2["steps"] == 64  # trained steps, not the best-dev step
        assert entry["total_flops"] == entry["stage1"]["flops"] + stage2["flops"]
    history = json.load(open(os.path.join(config.stage_dir("tlm", 2), "best",
                                          "history.json")))
    assert [h["step"] for h in history] == [16, 32, 48, 64]
    best = [h for h in history if h.get("best")]
    assert len(best) == 1 and best[0]["step"] == tlm["stage2"]["best_step"]
    assert best[0]["dev"]["sst2_mr"]["dev"] == tlm["stage2"]["dev"]
    # The task is learnable from its two word lists: the best-dev model beats chance.
    assert max(r["stage2"]["dev"]["accuracy"] for r in runs.values()) >= 0.75
    table = markdown_table(results)
    assert table.count("\n") == 5 and "| tlm |" in table and "majority class" in table
    on_disk = json.load(open(config.results_path))
    assert on_disk["runs"]["tlm"]["stage2"]["dev"] == tlm["stage2"]["dev"]
    # TensorBoard: stage-1 training scalars and stage-2 dev scores.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(config.stage_dir("tlm", 1), "train"))
    events.Reload()
    assert {"loss", "masked_lm_accuracy", "task_accuracy", "flops"} <= set(
        events.Tags()["tensors"])
    events = EventAccumulator(config.stage_dir("tlm", 2))
    events.Reload()
    assert "sst2_mr/dev/macro_f1" in events.Tags()["tensors"]
    # A re-run is a no-op; other settings are refused.
    again = run_tlm(config, progress=False)
    assert again["runs"]["tlm"]["stage2"] == tlm["stage2"]
    with pytest.raises(ValueError, match="other settings.*mlm_weight"):
        run_tlm(tlm_config(data_dir, runs=["tlm"], mlm_weight=1.0), progress=False)


def test_stage2_keeps_the_stage1_encoder_and_resets_the_classification_head(pipeline):
    config, _ = pipeline
    stage1_dir = config.stage_dir("tlm", 1)
    model, _, _ = stage2_model(config, config.model_config(30522), 2,
                               os.path.join(stage1_dir, "encoder.keras"), 10,
                               tf.distribute.get_strategy())
    # Every encoder weight is stage 1's final one (its last checkpoint).
    stage1 = TlmModel(config.model_config(30522), 2, name="tlm")
    stage1(_dummy(config))
    restore(stage1, tf.train.latest_checkpoint(stage1_dir))  # no optimizer needed
    assert len(model.encoder.weights) == 39  # debug: 2 layers, projection
    for ours, theirs in zip(model.encoder.weights, stage1.encoder.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    # ...trained: stage 1 moved the layer norms off their initial 1 and 0.
    assert any(not np.allclose(w.numpy(), 1.0) for w in stage1.encoder.weights
               if w.path.endswith("gamma"))
    # The classification head is new: not stage 1's trained one.
    for new, old in zip(model.classifier.weights, stage1.classifier.weights, strict=True):
        assert new.shape == old.shape
        if new.path.endswith("kernel"):
            assert not np.allclose(new.numpy(), old.numpy())


def _dummy(config):
    zeros = np.zeros((1, config.max_seq_length), np.int32)
    return {"input_ids": zeros, "input_mask": zeros, "segment_ids": zeros,
            "masked_lm_positions": np.zeros((1, 3), np.int32), "is_task": np.zeros((1,),
                                                                                   np.int32)}


def test_flagfile_parses_into_the_sample_recipe():
    from absl import flags

    from electra_tf import run_tlm as cli

    flag_values = cli.define_flags(flags.FlagValues())
    flag_values(["electra-tlm", f"--flagfile={ROOT}/flags/tlm/samples.flags",
                 "--data_dir=data/samples", "--runs=tlm,random"])
    config = cli.build_config(flag_values)
    assert config.runs == ["tlm", "random"] and config.stages == ["index", "retrieve",
                                                                   "stage1", "stage2"]
    assert [c.split(":")[0] for c in config.corpus] == ["text", "books", "text"]
    assert (config.retriever, config.top_k, config.model_size) == ("bm25s", 3, "tiny")
    assert (config.external_ratio, config.mlm_weight, config.flop_budget) == (3, 20.0, 5e13)
    assert config.stage1_steps(config.model_config(30522)) == 1932


def test_both_stages_with_several_steps_per_call_on_two_replicas(data_dir, mirrored_strategy):
    # The task alone (no retrieval), 2 steps per call: stage 1 trains 4 steps; stage 2's 4
    # (half an epoch of 64 examples, batch 8) score the dev set every 2.
    config = tlm_config(data_dir, model_name="tlm_per_call", runs=["task_only"],
                        stages=["stage1", "stage2"], num_train_steps=4,
                        stage2_num_train_epochs=0.5, eval_every_steps=2,
                        steps_per_execution=2, save_checkpoints_steps=3, log_every_steps=2)
    results = run_tlm(config, mirrored_strategy, progress=False)
    stage1 = results["runs"]["task_only"]["stage1"]
    assert stage1["steps"] == 4 and stage1["task_batches"] == 4
    assert np.isfinite(stage1["last_logged"]["loss"])
    # a checkpoint at the first call boundary past step 3, none in between
    stage1_dir = config.stage_dir("task_only", 1)
    assert sorted(f for f in os.listdir(stage1_dir) if f.endswith(".index")) == [
        "model.ckpt-4.index"]
    assert results["runs"]["task_only"]["stage2"]["steps"] == 4
    history = json.load(open(os.path.join(config.stage_dir("task_only", 2), "best",
                                          "history.json")))
    assert [h["step"] for h in history] == [2, 4]
    assert all(np.isfinite(h["loss"]) for h in history)
