"""The XLA-compiled element-wise kernels give the plain TensorFlow ops' values and
gradients, the fused LAMB update the per-variable one's, and the generator samples from
softmax(logits)."""

from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling import fused
from electra_tf.modeling.layers import GeneratorSampler
from electra_tf.optimization import DEFAULT_EXCLUDE, Lamb


def both(fn):
    """fn() traced with the fused kernels (whatever ELECTRA_TF_FUSED says) and with the
    plain ops."""
    with mock.patch.object(fused, "_enabled", True):
        fused_result = fn()
    with fused.disabled():
        plain_result = fn()
    return fused_result, plain_result


def value_and_grads(fn, inputs, upstream):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = fn()
    return [y, *tape.gradient(y, inputs, output_gradients=upstream)]


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("bfloat16", 0.02)])
def test_gelu_is_the_exact_gelu_with_its_gradient(dtype, atol):
    x = tf.cast(tf.linspace(-6.0, 6.0, 241), dtype)
    upstream = tf.cast(tf.random.stateless_normal([241], [1, 2]), dtype)
    for got in both(lambda: value_and_grads(lambda: fused.gelu(x), [x], upstream)):
        assert got[0].dtype == dtype
        x32 = tf.cast(x, "float32")
        with tf.GradientTape() as tape:
            tape.watch(x32)
            want = tf.nn.gelu(x32, approximate=False)
        want_grad = tape.gradient(want, x32, tf.cast(upstream, "float32"))
        np.testing.assert_allclose(tf.cast(got[0], "float32"), want, atol=atol)
        np.testing.assert_allclose(tf.cast(got[1], "float32"), want_grad, atol=atol)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_layer_norm_equals_the_keras_layer_with_all_gradients(policy):
    layer = keras.layers.LayerNormalization(epsilon=1e-12, dtype=policy)
    layer.build((None, None, 32))
    layer.gamma.assign(tf.random.stateless_normal([32], [3, 4]))
    layer.beta.assign(tf.random.stateless_normal([32], [5, 6]))
    x = tf.cast(tf.random.stateless_normal([2, 5, 32], [7, 8]) * 3 + 1, layer.compute_dtype)
    upstream = tf.cast(tf.random.stateless_normal([2, 5, 32], [9, 10]), layer.compute_dtype)
    inputs = [x, layer.gamma.value, layer.beta.value]
    got, plain = both(lambda: value_and_grads(lambda: fused.layer_norm(layer, x), inputs,
                                              upstream))
    want = value_and_grads(lambda: layer(x), inputs, upstream)
    assert got[0].dtype == want[0].dtype == layer.compute_dtype
    atol = 1e-5 if policy == "float32" else 0.05
    for a, b, c in zip(got, plain, want, strict=True):
        np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(c, "float32"), atol=atol)
        np.testing.assert_allclose(tf.cast(b, "float32"), tf.cast(c, "float32"), atol=atol)


def test_cross_entropy_and_its_gradient_equal_tensorflows():
    logits = tf.random.stateless_normal([6, 50], [1, 1]) * 5
    labels = tf.constant([0, 49, 3, 3, 17, 25])
    upstream = tf.random.stateless_normal([6], [2, 2])
    got, _ = both(lambda: value_and_grads(
        lambda: fused.sparse_softmax_cross_entropy(labels, logits), [logits], upstream))
    want = value_and_grads(lambda: tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits), [logits], upstream)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fused_lamb_update_equals_the_per_variable_one():
    def train():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,), dtype="int32"),
                                  keras.layers.Embedding(20, 8),
                                  keras.layers.LayerNormalization(),
                                  keras.layers.Dense(4)])
        model.compile(optimizer=Lamb(0.05, weight_decay_rate=0.01, global_clipnorm=1.0,
                                     exclude_from_weight_decay=list(DEFAULT_EXCLUDE)),
                      loss="mse")
        x = np.array([[1, 2, 3], [4, 5, 1]], "int32")
        model.fit(x, np.ones((2, 3, 4), "float32"), epochs=3, verbose=0)
        return model

    fused_model, plain_model = both(train)
    assert getattr(fused_model.optimizer, "_fused_update", None) is not None
    assert getattr(plain_model.optimizer, "_fused_update", None) is None
    for a, b in zip(fused_model.weights, plain_model.weights, strict=True):
        assert not np.allclose(a.numpy(), 0)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_generator_samples_follow_the_softmax():
    # 4,000 draws per row over 5 tokens: each frequency within 4 standard errors of
    # softmax(logits / temperature); a banned (disallowed) token is never drawn.
    logits = np.log(np.array([[0.5, 0.25, 0.15, 0.07, 0.03]] * 4000, "float32"))[None]
    sampler = GeneratorSampler(temperature=1.0, seed=3)
    ids = np.zeros((1, 8), "int32")
    out = sampler(tf.constant(logits), ids, np.zeros((1, 4000), "int32"),
                  np.zeros((1, 4000), "int32"), np.ones((1, 4000), "float32"))
    counts = np.bincount(out["sampled_ids"].numpy().ravel(), minlength=5) / 4000
    p = np.exp(logits[0, 0])
    assert np.all(np.abs(counts - p) < 4 * np.sqrt(p * (1 - p) / 4000)), counts
    banned = GeneratorSampler(disallow_correct=True, seed=3)(
        tf.constant(logits), ids, np.zeros((1, 4000), "int32"),
        np.zeros((1, 4000), "int32"), np.ones((1, 4000), "float32"))
    assert not np.any(banned["sampled_ids"].numpy() == 0)


@pytest.mark.parametrize("temperature, correct", [(1.0, None), (2.0, 200)])
def test_draws_across_blocks_follow_the_softmax_in_both_paths(temperature, correct):
    # 300 tokens: two full blocks of 128 and a partial one. 60,000 draws of one row,
    # counted against softmax(logits / temperature) by a chi-square test; -inf logits
    # and the disallowed (correct) token have no mass and are never drawn.
    from scipy.stats import chisquare

    logits = tf.random.stateless_uniform([300], [5, 6], -1.5, 1.5).numpy()
    logits[[7, 130, 299]] = -np.inf
    p = np.exp(logits.astype("float64") / temperature)
    if correct is not None:
        p[correct] = 0.0
    p /= p.sum()
    rows = tf.tile(tf.constant(logits)[None], [60000, 1])
    ids = None if correct is None else tf.fill([60000], correct)
    drawn = both(lambda: fused.categorical_sample(rows, tf.constant([1, 2]), temperature, ids))
    for sample in drawn:
        counts = np.bincount(sample.numpy(), minlength=300)
        assert counts.sum() == 60000 and not counts[p == 0].any()
        expected = 60000 * p[p > 0] / p[p > 0].sum()
        assert chisquare(counts[p > 0], expected).pvalue > 1e-3


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mlm_logits_under_a_mixed_policy_keep_the_float32_bias(policy):
    # The product of the half-precision hidden states and table, summed in float32, plus
    # the bias in float32 (0.1 + 1e-4 is not a bfloat16 number); fused, the backward runs
    # in the compute dtype: within its precision of the plain gradients, the bias's exact.
    # Eagerly, under a tape, as a custom training loop runs it.
    from keras_hub.layers import ReversibleEmbedding

    from electra_tf.modeling.layers import TiedMaskedLMHead

    table = ReversibleEmbedding(300, 16, embeddings_initializer="glorot_uniform",
                                dtype=policy)
    table.build((None,))
    head = TiedMaskedLMHead(table, dtype=policy)
    hidden = tf.random.stateless_normal([2, 6, 24], [1, 2])
    positions = tf.constant([[0, 5, 2], [1, 1, 4]])
    head(hidden, positions)
    head.output_bias.assign(tf.fill([300], 0.1 + 1e-4))

    def logits_and_grads():
        with tf.GradientTape() as tape:
            tape.watch(hidden)
            logits = head(hidden, positions)
            loss = tf.reduce_sum(logits * tf.random.stateless_normal([2, 3, 300], [3, 4]))
        return [logits, *tape.gradient(loss, [hidden, table.embeddings, head.output_bias])]

    (logits, *grads), (plain, *plain_grads) = both(logits_and_grads)
    x = tf.gather(hidden, positions, batch_dims=1)
    x = tf.cast(head.layer_norm(head.dense(tf.cast(x, head.compute_dtype))), "float64")
    rounded = tf.cast(tf.cast(table.embeddings, head.compute_dtype), "float64")
    want = tf.einsum("bpe,ve->bpv", x, rounded) + (0.1 + 1e-4)
    assert logits.dtype == "float32"
    np.testing.assert_allclose(logits, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(plain, want, rtol=1e-6, atol=1e-6)  # float32 sums both
    for got, want, tol in zip(grads, plain_grads, (0.02, 0.02, 1e-5), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_non_finite_logits_still_sample_valid_ids():
    logits = tf.constant([[[np.nan] * 7, [np.inf] * 7]], "float32")
    out = GeneratorSampler(seed=1)(logits, np.zeros((1, 4), "int32"),
                                   np.array([[1, 2]], "int32"), np.zeros((1, 2), "int32"),
                                   np.ones((1, 2), "float32"))
    assert np.all((out["sampled_ids"].numpy() >= 0) & (out["sampled_ids"].numpy() < 7))


@pytest.mark.parametrize("policy, atol", [("float32", 1e-5), ("mixed_bfloat16", 0.05)])
def test_dense_gelu_equals_the_keras_dense_with_all_gradients(policy, atol):
    from electra_tf.modeling.layers import gelu

    layer = keras.layers.Dense(16, activation=gelu, dtype=policy,
                               kernel_initializer=keras.initializers.GlorotUniform(seed=0))
    layer.build((None, None, 8))
    layer.bias.assign(tf.random.stateless_normal([16], [1, 2]))
    x = tf.cast(tf.random.stateless_normal([2, 3, 8], [3, 4]), layer.compute_dtype)
    upstream = tf.cast(tf.random.stateless_normal([2, 3, 16], [5, 6]), layer.compute_dtype)
    inputs = [x, layer.kernel.value, layer.bias.value]
    got, plain = both(lambda: value_and_grads(lambda: fused.dense_gelu(layer, x), inputs,
                                              upstream))
    want = value_and_grads(lambda: layer(x), inputs, upstream)
    assert got[0].shape == want[0].shape == (2, 3, 16) and got[0].dtype == want[0].dtype
    # bfloat16: Keras adds the bias and takes the GELU in bfloat16, the kernel in float32,
    # so large values may differ by one bfloat16 step (2^-7 of the value).
    rtol = 2.0**-7 if policy == "mixed_bfloat16" else 1e-7
    for a, b, c in zip(got, plain, want, strict=True):
        np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(c, "float32"), atol=atol,
                                   rtol=rtol)
        np.testing.assert_allclose(tf.cast(b, "float32"), tf.cast(c, "float32"), atol=atol,
                                   rtol=rtol)


@pytest.mark.parametrize("policy, atol", [("float32", 1e-5), ("mixed_bfloat16", 0.1)])
def test_dropout_add_layer_norm_equals_the_three_steps_with_all_gradients(policy, atol):
    layer = keras.layers.LayerNormalization(epsilon=1e-12, dtype=policy)
    layer.build((None, None, 32))
    layer.gamma.assign(tf.random.stateless_normal([32], [3, 4]))
    dtype = layer.compute_dtype
    y = tf.cast(tf.random.stateless_normal([2, 5, 32], [1, 2]), dtype)
    residual = tf.cast(tf.random.stateless_normal([2, 5, 32], [5, 6]), dtype)
    bias = tf.random.stateless_normal([32], [11, 12])
    keep = tf.random.stateless_uniform([2, 5, 32], [7, 8]) > 0.1
    upstream = tf.cast(tf.random.stateless_normal([2, 5, 32], [9, 10]), dtype)
    for mask, kept in (((keep, 1 / 0.9), tf.cast(keep, dtype) / 0.9), (None, 1.0)):
        for b in (bias, None):
            inputs = [y, residual, layer.gamma.value, layer.beta.value] + (
                [b] if b is not None else [])
            got, plain = both(lambda mask=mask, b=b, inputs=inputs: value_and_grads(
                lambda: fused.dropout_add_layer_norm(layer, y, residual, mask, b), inputs,
                upstream))
            want = value_and_grads(lambda kept=kept, b=b: layer(
                (y if b is None else y + tf.cast(b, dtype)) * kept + residual), inputs,
                upstream)
            assert got[0].dtype == want[0].dtype == dtype and len(got) == len(inputs) + 1
            for a, p, c in zip(got, plain, want, strict=True):
                np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(c, "float32"),
                                           atol=atol)
                np.testing.assert_allclose(tf.cast(p, "float32"), tf.cast(c, "float32"),
                                           atol=atol)


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("bfloat16", 0.02)])
def test_split_heads_adds_the_biases_scales_the_query_and_puts_heads_first(dtype, atol):
    batch, positions, heads, size = 2, 5, 3, 4
    y = tf.cast(tf.random.stateless_normal([batch, positions, 3 * heads * size], [1, 2]),
                dtype)
    bias = tf.random.stateless_normal([3, heads, size], [3, 4])
    upstream = [tf.cast(tf.random.stateless_normal([batch, heads, positions, size],
                                                   [5, i]), dtype) for i in range(3)]

    def reference():
        parts = tf.split(tf.cast(y, tf.float32), 3, axis=-1)
        return [tf.cast(tf.transpose(tf.reshape(part + tf.reshape(bias[i], [-1]),
                                                [batch, positions, heads, size]),
                                     (0, 2, 1, 3)) * (0.5 if i == 0 else 1.0), dtype)
                for i, part in enumerate(parts)]

    for used in (3, 1):  # all three outputs, or the query alone (None gradients)
        results = []
        for fn in (lambda: fused.split_heads(y, bias, 0.5), reference):
            with tf.GradientTape() as tape:
                tape.watch([y, bias])
                outputs = fn()[:used]
            results.append([*outputs, *tape.gradient(outputs, [y, bias],
                                                     output_gradients=upstream[:used])])
        got, want = results
        assert [t.shape for t in got] == [t.shape for t in want]
        assert got[0].shape == (batch, heads, positions, size) and got[0].dtype == dtype
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(b, "float32"),
                                       atol=atol)


def test_attention_probabilities_are_kerass_masked_softmax_and_dropout_with_gradient():
    scores = tf.random.stateless_normal([2, 3, 4, 5], [1, 2]) * 3
    mask = tf.constant([[True] * 5, [True, True, False, False, False]])[:, None, None, :]
    mask = tf.broadcast_to(mask, [2, 1, 4, 5]) & tf.constant(
        [True, True, True, False])[None, None, :, None]  # a fully masked query row
    keep = tf.random.stateless_uniform([2, 3, 4, 5], [3, 4]) > 0.2
    upstream = tf.random.stateless_normal([2, 3, 4, 5], [5, 6])
    softmax = keras.layers.Softmax(axis=-1)

    def reference(dropout):
        probabilities = softmax(scores, mask=mask)
        if dropout is None:
            return probabilities
        return tf.where(dropout[0], probabilities * dropout[1], 0.0)

    for dropout in ((keep, 1.25), None):
        got = value_and_grads(lambda d=dropout: fused.attention_probabilities(
            scores, mask, d), [scores], upstream)
        want = value_and_grads(lambda d=dropout: reference(d), [scores], upstream)
        assert np.all(got[0].numpy()[1, :, :, 2:] == 0) and np.all(got[0].numpy()[:, :, 3] == 0)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("policy, atol", [("float32", 2e-5), ("mixed_bfloat16", 0.1)])
def test_encoder_layer_with_a_padding_mask_equals_keras_hubs_path(policy, atol):
    from electra_tf.modeling.layers import TransformerEncoderLayer, gelu

    layer = TransformerEncoderLayer(intermediate_dim=16, num_heads=2, dropout=0.1,
                                    activation=gelu, dtype=policy)
    layer.build((None, None, 8))
    for i, weight in enumerate(layer.weights):  # biases and LayerNorms not at 0 and 1
        weight.assign(tf.random.stateless_normal(weight.shape, [7, i]) * 0.5)
    x = tf.cast(tf.random.stateless_normal([2, 5, 8], [1, 2]), layer.compute_dtype)
    padding = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]) > 0
    upstream = tf.cast(tf.random.stateless_normal([2, 5, 8], [3, 4]), layer.compute_dtype)
    inputs = [x, *(weight.value for weight in layer.trainable_weights)]

    def run(call):
        return value_and_grads(lambda: call(x, padding_mask=padding, training=False),
                               inputs, upstream)

    got, plain = both(lambda: run(layer))
    with fused.disabled():  # the keras-hub layer's own call, untouched
        base = run(super(TransformerEncoderLayer, layer).call)
    assert len(got) == len(inputs) + 1 == 18 and got[0].dtype == layer.compute_dtype
    for a, b, c in zip(got, plain, base, strict=True):
        np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(c, "float32"), atol=atol)
        np.testing.assert_array_equal(b, c)
    # Traced for any batch and length, as models are: the same values.
    with mock.patch.object(fused, "_enabled", True):
        traced = tf.function(lambda x, padding: layer(x, padding_mask=padding),
                             input_signature=[tf.TensorSpec([None, None, 8], x.dtype),
                                              tf.TensorSpec([None, None], tf.bool)])
        np.testing.assert_array_equal(traced(x, padding), got[0])
