"""LAMB, AdamWeightDecay and transformers' AdamW against NumPy references of their formulas;
the schedules."""

from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling import fused
from electra_tf.optimization import (
    AdamWeightDecay,
    Lamb,
    TransformersAdamW,
    WarmupLinearDecay,
    WarmupPolynomialDecay,
    layerwise_lr_multipliers,
    make_optimizer,
)


def reference_lamb(w, grads, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.0, decay=True,
                   adapt=True):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        if decay:
            u = u + wd * w
        ratio = 1.0
        if adapt:
            wn, un = np.linalg.norm(w), np.linalg.norm(u)
            ratio = wn / un if wn > 0 and un > 0 else 1.0
        w = w - lr * ratio * u
    return w


def reference_adamw(w, grads, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.0, decay=True):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for g in grads:
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = m / (np.sqrt(v) + eps)
        if decay:
            u = u + wd * w
        w = w - lr * u
    return w


def reference_transformers_adamw(w, grads, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.0,
                                 decay=True):
    """transformers' AdamW (correct_bias=True): bias correction in the step size, eps on
    sqrt(v), then the updated weights decayed."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
        if decay:
            w = w - lr * wd * w
    return w


def run(optimizer, values, grads):
    """Apply `grads` (list over steps of {name: array}) to fresh variables."""
    variables = {name: keras.Variable(value, name=name) for name, value in values.items()}
    for step in grads:
        optimizer.apply_gradients([(tf.constant(step[n]), variables[n]) for n in variables])
    return {name: variable.numpy() for name, variable in variables.items()}


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    values = {"kernel": rng.normal(size=(4, 3)).astype("float32"),
              "LayerNorm_gamma": rng.normal(size=(3,)).astype("float32"),
              "zeros": np.zeros((3,), "float32")}
    grads = [{n: rng.normal(size=v.shape).astype("float32") for n, v in values.items()}
             for _ in range(5)]
    return values, grads


def test_lamb_matches_the_reference_update(problem):
    values, grads = problem
    optimizer = Lamb(learning_rate=0.01, weight_decay_rate=0.01,
                     exclude_from_weight_decay=["LayerNorm"])
    result = run(optimizer, values, grads)
    for name in values:
        expected = reference_lamb(values[name], [g[name] for g in grads], 0.01, wd=0.01,
                                  decay=name != "LayerNorm_gamma",
                                  adapt=name != "LayerNorm_gamma")
        np.testing.assert_allclose(result[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    # Unlike keras.optimizers.Lamb, decay is inside the trust ratio.
    keras_lamb = run(keras.optimizers.Lamb(learning_rate=0.01, weight_decay=0.01), values,
                     grads)
    assert not np.allclose(keras_lamb["kernel"], result["kernel"], atol=1e-6)


def test_lamb_layer_adaptation_exclusions_are_separate(problem):
    values, grads = problem
    optimizer = Lamb(learning_rate=0.01, weight_decay_rate=0.01,
                     exclude_from_weight_decay=["LayerNorm"],
                     exclude_from_layer_adaptation=["kernel"])
    result = run(optimizer, values, grads)
    expected = reference_lamb(values["kernel"], [g["kernel"] for g in grads], 0.01, wd=0.01,
                              decay=True, adapt=False)
    np.testing.assert_allclose(result["kernel"], expected, rtol=1e-5, atol=1e-6)
    expected = reference_lamb(values["LayerNorm_gamma"],
                              [g["LayerNorm_gamma"] for g in grads], 0.01, wd=0.01,
                              decay=False, adapt=True)
    np.testing.assert_allclose(result["LayerNorm_gamma"], expected, rtol=1e-5, atol=1e-6)


def test_adam_weight_decay_is_the_originals(problem):
    values, grads = problem
    result = run(AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.01), values, grads)
    for name in values:
        expected = reference_adamw(values[name], [g[name] for g in grads], 0.01, wd=0.01,
                                   decay=name != "LayerNorm_gamma")
        np.testing.assert_allclose(result[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_transformers_adamw_first_step_by_hand():
    # One step on w = [1, -2] with g = [0.5, -1], lr 0.1, weight decay 0.01:
    # m = 0.1 g = [0.05, -0.1], v = 0.001 g^2 = [0.00025, 0.001]; the bias corrections
    # (1 - 0.9, 1 - 0.999) make the step size 0.1 * sqrt(0.001) / 0.1 = sqrt(0.001);
    # then the updated weights shrink by lr * wd = 0.001 (a bias is not decayed).
    adam = np.sqrt(0.001) * np.array([0.05, -0.1]) / (np.sqrt([0.00025, 0.001]) + 1e-6)
    kernel = np.array([1.0, -2.0]) - adam
    expected = {"kernel": kernel * (1 - 0.1 * 0.01), "bias": kernel}
    optimizer = make_optimizer("adamw_hf", 0.1, weight_decay_rate=0.01, clip_norm=0.0)
    assert isinstance(optimizer, TransformersAdamW) and optimizer.global_clipnorm is None
    result = run(optimizer, {"kernel": np.array([1.0, -2.0], "float32"),
                             "bias": np.array([1.0, -2.0], "float32")},
                 [{"kernel": np.array([0.5, -1.0], "float32"),
                   "bias": np.array([0.5, -1.0], "float32")}])
    for name in expected:
        np.testing.assert_allclose(result[name], expected[name], rtol=1e-6, err_msg=name)
    # Bias-corrected, the first step is about lr * sign(g): [0.9, -1.9] before decay.
    np.testing.assert_allclose(result["bias"], [0.9, -1.9], atol=1e-4)


def test_transformers_adamw_matches_the_reference_over_steps(problem):
    values, grads = problem
    result = run(TransformersAdamW(learning_rate=0.01, weight_decay_rate=0.1), values, grads)
    for name in values:
        expected = reference_transformers_adamw(values[name], [g[name] for g in grads], 0.01,
                                                wd=0.1, decay=name != "LayerNorm_gamma")
        np.testing.assert_allclose(result[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    # ELECTRA's AdamWeightDecay (no bias correction) takes other steps.
    electra = run(AdamWeightDecay(learning_rate=0.01, weight_decay_rate=0.1), values, grads)
    assert not np.allclose(electra["kernel"], result["kernel"], atol=1e-4)
    restored = TransformersAdamW.from_config(TransformersAdamW(0.01, epsilon=1e-8).get_config())
    assert restored.epsilon == 1e-8 and restored.exclude_from_weight_decay == [
        "LayerNorm", "layer_norm", "bias"]


def test_linear_schedule_warms_up_to_the_peak_then_decays_to_zero():
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 150)]
    expected = [0.0, 0.5e-3, 1e-3, 0.5e-3, 0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-12)
    # A warmup longer than the run never reaches the peak; no warmup starts at it.
    assert float(WarmupLinearDecay(1e-3, 10, 20)(5)) == pytest.approx(0.25e-3)
    assert float(WarmupLinearDecay(1e-3, 10)(0)) == pytest.approx(1e-3)
    assert float(WarmupLinearDecay(1e-3, 10)(4)) == pytest.approx(0.6e-3)
    restored = WarmupLinearDecay.from_config(schedule.get_config())
    assert float(restored(55)) == float(schedule(55))
    with pytest.raises(ValueError, match="total_steps must be positive"):
        WarmupLinearDecay(1e-3, total_steps=0)


def test_schedule_is_warmup_times_polynomial_decay():
    schedule = WarmupPolynomialDecay(1e-3, decay_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 50, 100, 150)]
    expected = [0.0, 1e-3 * 0.95 * 0.5, 1e-3 * 0.9, 1e-3 * 0.5, 0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-12)
    squared = WarmupPolynomialDecay(2.0, decay_steps=10, power=2.0, end_learning_rate=1.0)
    assert float(squared(5)) == pytest.approx(1.0 + 0.25)
    restored = WarmupPolynomialDecay.from_config(schedule.get_config())
    assert float(restored(5)) == float(schedule(5))
    with pytest.raises(ValueError, match="decay_steps must be positive"):
        WarmupPolynomialDecay(1e-3, decay_steps=0)


def test_layerwise_multipliers_decay_from_the_head_down():
    m = layerwise_lr_multipliers(num_layers=2, decay=0.5, original_off_by_one=False)
    # head 1, top layer 0.5, next 0.25, embeddings 0.125
    assert m[r"/encoder/layer_1/"] == 0.5 and m[r"/encoder/layer_0/"] == 0.25
    assert m[r"/embeddings/|/embeddings_project/"] == 0.125
    # The original's depths skip one level between the top layer and the head.
    original = layerwise_lr_multipliers(num_layers=2, decay=0.5)  # the default
    assert original[r"/encoder/layer_1/"] == 0.25 and original[r"/encoder/layer_0/"] == 0.125
    assert original[r"/embeddings/|/embeddings_project/"] == 0.0625
    # Keras variables take their path from the name scope they are made in.
    with keras.name_scope("electra"), keras.name_scope("encoder"), \
            keras.name_scope("layer_0"):
        deep = keras.Variable(np.ones(2, "float32"), name="k")
    with keras.name_scope("classifier_head"):
        head = keras.Variable(np.ones(2, "float32"), name="k")
    assert deep.path == "electra/encoder/layer_0/k"
    optimizer = AdamWeightDecay(learning_rate=0.1, lr_multipliers=m)
    optimizer.apply_gradients([(tf.ones(2), deep), (tf.ones(2), head)])
    # First step without bias correction: u = 0.1 / (sqrt(0.001) + eps), times lr.
    step = 0.1 * 0.1 / (np.sqrt(0.001) + 1e-6)
    np.testing.assert_allclose(1 - head.numpy(), step, rtol=1e-5)
    np.testing.assert_allclose(1 - deep.numpy(), 0.25 * step, rtol=1e-5)
    with keras.name_scope("elsewhere"):
        other = keras.Variable(np.ones(2, "float32"), name="k")
    with pytest.raises(ValueError, match="no learning-rate multiplier matches variable "
                                         "elsewhere/k"):
        AdamWeightDecay(learning_rate=0.1, lr_multipliers=m).apply_gradients(
            [(tf.ones(2), other)])


def test_lamb_trains_a_model_under_a_strategy_and_serializes(mirrored_strategy):
    strategy = mirrored_strategy
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=Lamb(WarmupPolynomialDecay(0.05, 40, 4),
                                     weight_decay_rate=0.01,
                                     exclude_from_weight_decay=["bias"],
                                     global_clipnorm=1.0), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    config = model.optimizer.get_config()
    restored = Lamb.from_config(config)
    assert restored.exclude_from_layer_adaptation == ["bias"]
    assert restored.weight_decay_rate == 0.01


@pytest.mark.parametrize("fused_update", [True, False])
@pytest.mark.parametrize("optimizer", [Lamb, AdamWeightDecay, TransformersAdamW])
def test_global_clipping_is_the_originals(optimizer, fused_update):
    # tf.clip_by_global_norm: an embedding's IndexedSlices gradient enters the norm by
    # its rows, a repeated row twice (sqrt(9 + 9 + 16), not the summed row's 6 with the
    # 4), and NaN when the norm is not finite. The first moment after one step is
    # (1 - beta_1) times the clipped gradient, whether the update is one compiled kernel
    # (clipping inside it) or op by op.
    rows = tf.IndexedSlices(tf.constant([[3.0, 0.0], [3.0, 0.0]]), tf.constant([1, 1]),
                            tf.constant([4, 2]))
    dense = tf.constant([4.0])

    def first_moments(clipnorm, grads):
        instance = optimizer(0.1, beta_1=0.5, global_clipnorm=clipnorm)
        variables = [keras.Variable(np.ones(g.dense_shape if isinstance(
            g, tf.IndexedSlices) else g.shape, "float32")) for g in grads]
        with mock.patch.object(fused, "_enabled", fused_update):
            instance.apply_gradients(zip(grads, variables, strict=True))
            assert instance._fuses_update() == fused_update
        return [instance._m[instance._get_variable_index(v)].numpy() for v in variables]

    norm = np.sqrt(34.0)
    embedding, bias = first_moments(1.0, [rows, dense])
    np.testing.assert_allclose(embedding, 0.5 * np.array([[0, 0], [6 / norm, 0], [0, 0],
                                                          [0, 0]]), rtol=1e-6)
    np.testing.assert_allclose(bias, 0.5 * 4 / norm, rtol=1e-6)
    (small,) = first_moments(10.0, [dense])
    np.testing.assert_array_equal(small, 0.5 * dense.numpy())  # under the limit: unchanged
    (broken,) = first_moments(1.0, [dense * np.inf])
    assert np.isnan(broken).all()
    # A clip value changed between eager steps holds from the next step on.
    instance = optimizer(0.1, beta_1=0.5, global_clipnorm=1.0)
    variable = keras.Variable(np.ones(1, "float32"))
    with mock.patch.object(fused, "_enabled", fused_update):
        instance.apply_gradients([(dense, variable)])
        instance.global_clipnorm = 2.0
        instance.apply_gradients([(dense, variable)])
    np.testing.assert_allclose(instance._m[0].numpy(), 0.25 * 1.0 + 0.5 * 2.0, rtol=1e-6)
    # Op by op a missing gradient passes through (Keras drops it before the update).
    plain = optimizer(0.1, global_clipnorm=1.0)
    with fused.disabled():
        clipped = plain._clip_gradients([rows, None, dense])
    assert clipped[1] is None
    np.testing.assert_allclose(clipped[2], [4 / norm], rtol=1e-6)


@pytest.mark.parametrize("optimizer", [Lamb, AdamWeightDecay, TransformersAdamW])
def test_embedding_gradients_update_densely_without_clipping(optimizer, mirrored_strategy):
    # An embedding lookup's gradient arrives as IndexedSlices when nothing clips it.
    ids = np.array([[1, 2], [3, 1]], "int32")
    targets = np.ones((2, 2, 4), "float32")
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = keras.Sequential([keras.Input((2,), dtype="int32"),
                                      keras.layers.Embedding(6, 4)])
            model.compile(optimizer=optimizer(0.1), loss="mse")
        initial = model.weights[0].numpy()
        model.fit(ids, targets, batch_size=2, epochs=2, verbose=0)
        results.append(model.weights[0].numpy())
        assert not np.allclose(results[-1][1], initial[1])  # a looked-up row moved
        np.testing.assert_array_equal(results[-1][5], initial[5])  # never looked up
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer, reference", [
    (Lamb, reference_lamb), (AdamWeightDecay, reference_adamw),
    (TransformersAdamW, reference_transformers_adamw)])
def test_a_traced_step_makes_the_shared_scalars_once(optimizer, reference, problem):
    values, grads = problem
    names = ["w0", "w1", "w2", "w3"]
    variables = [keras.Variable(values["kernel"], name=name) for name in names]
    instance = optimizer(learning_rate=0.01, weight_decay_rate=0.01,
                         lr_multipliers={"w[01]": 0.5, "w": 1.0})

    @tf.function
    def step(gradients):
        instance.apply_gradients(zip(gradients, variables, strict=True))

    steps = [[tf.constant(g["kernel"]) * (k + 1) for k in range(len(names))] for g in grads]
    graph = step.get_concrete_function(steps[0]).graph
    # the bias corrections' two powers once per step, not two per variable (made for
    # AdamWeightDecay too, which does not use them)
    assert [op.type for op in graph.get_operations()].count("Pow") == 2
    for gradients in steps:
        step(gradients)
    for k, variable in enumerate(variables):
        expected = reference(values["kernel"], [s[k].numpy() for s in steps],
                             0.01 * (0.5 if k < 2 else 1.0), wd=0.01)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=names[k])
