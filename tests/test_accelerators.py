"""What TPUs and GPUs need, checked on the CPU.

TPUs run only XLA-compiled programs with static shapes; the TPU recipe also trains in
bfloat16 with several steps per call. Every pretraining objective's and every finetuning
head's train step is lowered to XLA HLO here under those settings (an op XLA cannot
compile fails the lowering); ELECTRA pretraining and CRF tagging, the two with the most
kinds of ops, then train a few steps with ``jit_compile=True``. GPUs
without bfloat16 (V100, T4) train in float16 with dynamic loss scaling: a run of that
kind trains here too.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from batches import make_batch

from electra_tf.configs import get_config
from electra_tf.finetuning.model import FinetuningModel
from electra_tf.masking import MaskingConfig
from electra_tf.modeling import Encoder, build_pretrainer
from electra_tf.optimization import AdamWeightDecay, ReplicaLossScaleOptimizer, make_optimizer
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.inputs import make_dataset
from electra_tf.pretraining.objectives import PretrainingModel
from electra_tf.pretraining.trainer import pretrain
from electra_tf.tasks.specs import get_task
from electra_tf.tokenization import load_vocab, special_ids
from electra_tf.training.precision import dtype_policy

SEQ, BATCH = 64, 8


def _hlo(model, batch) -> str:
    """The train step lowered to XLA HLO (raises if some op cannot be compiled)."""
    step = tf.function(model.train_step, jit_compile=True)
    return step.experimental_get_compiler_ir(batch)(stage="hlo")


@pytest.mark.parametrize("objective", ["bert", "electra", "ale"])
def test_pretraining_step_compiles_with_xla_in_bf16_with_static_shapes(
        objective, built, sample_paths):
    _, shards, _ = built
    vocab = load_vocab(sample_paths["vocab"])
    masking = MaskingConfig(special_ids(vocab), len(vocab), 9, 0.15,
                            "bert" if objective == "bert" else "electra")
    dataset = make_dataset(os.path.join(shards, "pretrain_data.tfrecord*"), BATCH, SEQ,
                           masking, is_training=True, seed=0)
    assert all(spec.shape.is_fully_defined() for spec in dataset.element_spec.values())

    config = get_config(objective, "debug")
    with dtype_policy("mixed_bfloat16"):
        task = PretrainingModel(build_pretrainer(config, **(
            {} if objective == "bert" else {"seed": 0})))
        task.compile(optimizer=AdamWeightDecay(1e-3, global_clipnorm=1.0),
                     jit_compile=True, steps_per_execution=2)
        task.optimizer.build(task.pretrainer.trainable_variables)
        hlo = _hlo(task, next(iter(dataset)))
        assert "bf16" in hlo and "f32" in hlo  # bfloat16 compute, float32 weights and loss
        if objective != "electra":
            return  # ELECTRA's run below covers the compiled training loop
        history = task.fit(dataset, epochs=1, steps_per_epoch=4, verbose=0)
    assert int(task.optimizer.iterations.numpy()) == 4
    assert np.isfinite(history.history["loss"][-1])
    assert task.pretrainer.weights[0].dtype == "float32"


def _finetuning_batch(kind, num_outputs, rng):
    shape = (BATCH, 4, SEQ) if kind == "multiple_choice" else (BATCH, SEQ)
    inputs = {"input_ids": rng.integers(1000, 2000, shape).astype("int32"),
              "input_mask": np.ones(shape, "int32"), "segment_ids": np.zeros(shape, "int32"),
              "task_id": np.zeros((BATCH,), "int32")}
    if kind == "tagging":
        inputs["word_positions"] = np.tile(np.arange(SEQ, dtype="int32"), (BATCH, 1))
        inputs["word_mask"] = np.ones((BATCH, SEQ), "int32")
        labels = rng.integers(0, num_outputs, (BATCH, SEQ)).astype("int32")
    elif kind == "regression":
        labels = rng.random(BATCH).astype("float32")
    else:
        labels = rng.integers(0, num_outputs, (BATCH,)).astype("int32")
    return inputs, labels


@pytest.mark.parametrize("name, use_crf", [("sst2", False), ("stsb", False), ("race", False),
                                           ("pos", True)])
def test_finetuning_step_compiles_with_xla_in_bf16(name, use_crf):
    task = get_task(name)
    if task.kind == "tagging":
        task.tags = ["DT", "NN", "VBD", "."]
    rng = np.random.default_rng(0)
    inputs, labels = _finetuning_batch(task.kind, task.num_outputs, rng)
    dataset = tf.data.Dataset.from_tensors((inputs, {task.name: labels})).repeat()
    with dtype_policy("mixed_bfloat16"):
        model = FinetuningModel(Encoder(get_config("electra", "debug")), [task],
                                use_crf=use_crf)
        model.compile(optimizer=AdamWeightDecay(1e-3, global_clipnorm=1.0),
                      jit_compile=True, steps_per_execution=2)
        model(inputs)
        model.optimizer.build(model.trainable_variables)
        assert "bf16" in _hlo(model, (inputs, {task.name: labels}))
        if name != "pos":
            return  # the CRF head's run below covers the compiled training loop
        history = model.fit(dataset, epochs=1, steps_per_epoch=4, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4
    assert np.isfinite(history.history["loss"][-1])


def test_fp16_with_loss_scaling_pretrains_and_learns(built, sample_paths, tmp_path):
    _, shards, _ = built
    config = PretrainingConfig(
        data_dir=str(tmp_path), model_name="fp16", objective="electra", model_size="debug",
        train_batch_size=16, max_seq_length=SEQ, num_train_steps=60, num_warmup_steps=5,
        learning_rate=3e-2, log_every_steps=20, save_checkpoints_steps=60, seed=1,
        mixed_precision="fp16", vocab_file=sample_paths["vocab"],
        pretrain_tfrecords=os.path.join(shards, "pretrain_data.tfrecord*"))
    summary = pretrain(config, progress=False)
    assert summary["step"] == 60 and np.isfinite(summary["last_logged"]["loss"])
    reader = tf.train.load_checkpoint(os.path.join(config.model_dir, "model.ckpt-60"))
    names = reader.get_variable_to_shape_map()
    # Keras' LossScaleOptimizer: a dynamic scale, kept in the checkpoint for a resume.
    assert any("loss_scale" in name or "dynamic_scale" in name for name in names), names
    encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
    assert encoder.weights[0].dtype == "float32"  # float16 compute, float32 weights
    first_mlm = summary["last_logged"]["masked_lm_loss"]
    assert first_mlm < np.log(30522) - 1.0  # below a uniform guess: it learned


def test_fp16_loss_scaling_skips_an_overflowing_step_and_lowers_the_scale(fault_report):
    config = get_config("electra", "debug", {"vocab_size": 500, "dropout_rate": 0.0})
    batch = make_batch(config, batch_size=4, seq_len=16, num_predictions=3, seed=2)
    batch["masked_lm_weights"] = batch["masked_lm_weights"].astype("float32")
    with dtype_policy("mixed_float16"):
        keras.utils.set_random_seed(5)
        task = PretrainingModel(build_pretrainer(config, temperature=1e-6, seed=0))
        task.compile(optimizer=make_optimizer("lamb", 1e-2, weight_decay_rate=0.01,
                                              clip_norm=1.0))
    optimizer = task.optimizer
    assert isinstance(optimizer, ReplicaLossScaleOptimizer)  # Keras' own, made replica-safe
    dataset = tf.data.Dataset.from_tensors(batch).repeat()

    def step():
        return task.fit(dataset, steps_per_epoch=1, verbose=0).history["loss"][0]

    initial_scale = float(optimizer.initial_scale)
    losses = [step() for _ in range(10)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 1.0, losses
    scale, steps = float(optimizer.dynamic_scale.numpy()), int(optimizer.iterations.numpy())
    # Keras starts the scale at 2**15: the first steps overflow, apply nothing, and halve
    # it until the gradients fit.
    skipped = 10 - steps
    assert skipped >= 1 and scale == initial_scale / 2**skipped, (skipped, scale)

    # A token embedding past float16's largest value (65504): every activation and
    # gradient of the step is inf or NaN.
    table = task.pretrainer.embeddings.word_embeddings.embeddings
    kept = table.numpy()
    table.assign(np.full_like(kept, 1e5))
    before = {w.path: w.numpy() for w in task.trainable_weights}
    overflow = step()
    assert not np.isfinite(overflow)
    assert int(optimizer.iterations.numpy()) == steps  # the step applied nothing
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    for w in task.trainable_weights:
        np.testing.assert_array_equal(w.numpy(), before[w.path], err_msg=w.path)

    table.assign(kept)
    after = step()
    assert np.isfinite(after) and int(optimizer.iterations.numpy()) == steps + 1
    fault_report("pretraining, fp16", "a step whose float16 gradients overflow (an "
                 "embedding set past 65504)", f"the step skipped, no weight changed; loss "
                 f"scale {scale:g} -> {scale / 2:g}; the next step trained. Of the first 10 "
                 f"steps {skipped} overflowed at the initial scale {initial_scale:g}; loss "
                 f"{losses[0]:.2f} -> {losses[-1]:.2f}", "nothing (dynamic loss scaling)")


@pytest.mark.parametrize("scaler", [keras.optimizers.LossScaleOptimizer,
                                    ReplicaLossScaleOptimizer])
def test_fp16_step_that_overflows_on_one_replica_only_applies_nothing(scaler,
                                                                        mirrored_strategy):
    """Replica 0's float16 gradients fit, replica 1's overflow: the step must be skipped
    on both (Keras' own scaler decides from replica 0 alone, before the package's
    optimizers sum the replicas' gradients, and applies the overflowed sum)."""
    strategy = mirrored_strategy
    with strategy.scope():
        weights = keras.Variable([1.0, 1.0])
        optimizer = scaler(AdamWeightDecay(0.1))
        optimizer.build([weights])
    inputs = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([1.0, 1.0] if context.replica_id_in_sync_group == 0
                                    else [6e4, 6e4]))

    @tf.function
    def step(x):
        def replica_step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(weights, tf.float16) * tf.cast(x, tf.float16))
                scaled = optimizer.scale_loss(loss)  # x 2**15: 6e4 overflows float16
            optimizer.apply(tape.gradient(scaled, [weights]), [weights])
        strategy.run(replica_step, args=(x,))

    step(inputs)
    if scaler is keras.optimizers.LossScaleOptimizer:  # what the package replaces
        assert not np.isfinite(weights.numpy()).all()
        return
    np.testing.assert_array_equal(weights.numpy(), [1.0, 1.0])
    assert int(optimizer.iterations.numpy()) == 0
    assert float(optimizer.dynamic_scale.numpy()) == optimizer.initial_scale / 2


def test_steps_skipped_by_fp16_overflows_at_the_end_are_retried_one_per_call():
    from electra_tf.training.fitting import fit_steps

    with dtype_policy("mixed_float16"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                                  keras.layers.Dense(1)])
        # A scale of 2**30: about the first 15 steps overflow, each halving it.
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(1e-3), initial_scale=2.0**30), loss="mse",
            steps_per_execution=6)
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(64, 8)).astype("float32"),
         rng.normal(size=(64, 1)).astype("float32"))).batch(8).repeat()

    class Calls(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_train_begin(self, logs=None):
            self.calls.append((self.model.steps_per_execution, self.params["steps"]))

    calls = Calls()
    # 5 steps, fewer than a call's 6: every call is an end of the run.
    assert fit_steps(model, lambda step: data, 5, 6, [calls]) == 5
    assert int(model.optimizer.iterations.numpy()) == 5
    skipped = 30 - round(np.log2(float(model.optimizer.dynamic_scale.numpy())))
    assert skipped > 5, calls.calls  # overflows went on past the first call
    # A fit of the 5 steps, compiled for 5; after it fell short, fits of the steps left
    # one step per compiled call (one more compile, not one per count left).
    assert calls.calls[0] == (5, 5) and len(calls.calls) > 2, calls.calls
    assert {length for length, _ in calls.calls[1:]} == {1}, calls.calls
    assert sum(steps for _, steps in calls.calls) == 5 + skipped, calls.calls
