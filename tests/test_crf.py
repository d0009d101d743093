"""The linear-chain CRF against brute-force enumeration of all tag paths."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.modeling.crf import (
    CRF,
    crf_decode,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
)

K = 3


def random_case(seed, lengths, time):
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(len(lengths), time, K)).astype("float32")
    weights = (rng.normal(size=(K, K)).astype("float32"), rng.normal(size=K).astype("float32"),
               rng.normal(size=K).astype("float32"))
    mask = np.arange(time)[None, :] < np.asarray(lengths)[:, None]
    return emissions, mask, weights


def path_score(emissions, path, transitions, start, end):
    if not path:
        return 0.0
    score = start[path[0]] + end[path[-1]]
    score += sum(emissions[t, tag] for t, tag in enumerate(path))
    score += sum(transitions[a, b] for a, b in itertools.pairwise(path))
    return float(score)


def all_paths(length):
    return list(itertools.product(range(K), repeat=length))


CASES = [  # (seed, lengths, time): mixed lengths including 1 and 0
    (0, [4, 1, 0, 3], 4),
    (1, [2, 4, 4, 1], 4),
    (2, [1, 0, 1, 1], 1),
    (3, [3, 2, 0, 3], 3),
    (4, [0, 0, 0, 0], 2),
]


@pytest.mark.parametrize("seed,lengths,time", CASES)
def test_log_partition_and_viterbi_match_brute_force(seed, lengths, time):
    emissions, mask, weights = random_case(seed, lengths, time)
    log_norm = crf_log_norm(emissions, mask, *weights).numpy()
    tags, scores = (t.numpy() for t in crf_decode(emissions, mask, *weights))
    assert tags.shape == (len(lengths), time) and tags.dtype == np.int32
    for b, length in enumerate(lengths):
        paths = all_paths(length)
        brute = np.array([path_score(emissions[b], p, *weights) for p in paths])
        assert log_norm[b] == pytest.approx(np.logaddexp.reduce(brute), abs=1e-5, rel=1e-6)
        best = int(np.argmax(brute))
        assert tuple(tags[b, :length]) == paths[best]
        assert (tags[b, length:] == 0).all()
        assert scores[b] == pytest.approx(brute[best], abs=1e-5, rel=1e-6)


@pytest.mark.parametrize("seed,lengths,time", CASES)
def test_likelihoods_of_all_paths_sum_to_one(seed, lengths, time):
    emissions, mask, weights = random_case(seed, lengths, time)
    for b, length in enumerate(lengths):
        paths = all_paths(length)
        # Every path of sequence b as one batch; padded tags are -1 (ignored).
        tags = np.full((len(paths), time), -1, "int32")
        for i, path in enumerate(paths):
            tags[i, :length] = path
        repeat = np.repeat(emissions[b:b + 1], len(paths), axis=0)
        masks = np.repeat(mask[b:b + 1], len(paths), axis=0)
        log_likelihood = crf_log_likelihood(repeat, tags, masks, *weights).numpy()
        assert np.exp(log_likelihood).sum() == pytest.approx(1.0, abs=1e-5)
        scores = crf_sequence_score(repeat, tags, masks, *weights).numpy()
        brute = [path_score(emissions[b], p, *weights) for p in paths]
        np.testing.assert_allclose(scores, brute, atol=1e-5, rtol=1e-6)
    if time:  # length 0 has log-likelihood 0 (probability 1 for the empty path)
        empty = np.zeros((1, time), bool)
        assert crf_log_likelihood(emissions[:1], np.zeros((1, time), "int32"), empty,
                                  *weights).numpy()[0] == 0.0


def test_zero_length_time_axis_and_int_mask():
    emissions, _, weights = random_case(5, [0, 0], 0)
    tags, scores = crf_decode(emissions, None, *weights)
    assert tags.shape == (2, 0) and scores.numpy().tolist() == [0.0, 0.0]
    assert crf_log_likelihood(emissions, np.zeros((2, 0), "int32"), None,
                              *weights).numpy().tolist() == [0.0, 0.0]
    emissions, mask, weights = random_case(6, [3, 1], 3)
    as_int = crf_decode(emissions, mask.astype("int32"), *weights)[0].numpy()
    np.testing.assert_array_equal(as_int, crf_decode(emissions, mask, *weights)[0].numpy())


def test_inside_tf_function_with_dynamic_shapes():
    spec = (tf.TensorSpec([None, None, K]), tf.TensorSpec([None, None], tf.bool),
            tf.TensorSpec([K, K]), tf.TensorSpec([K]), tf.TensorSpec([K]))
    decode = tf.function(crf_decode, input_signature=spec, jit_compile=False)
    log_norm = tf.function(crf_log_norm, input_signature=spec, jit_compile=False)
    for seed, lengths, time in CASES:
        emissions, mask, weights = random_case(seed, lengths, time)
        eager_tags, eager_scores = crf_decode(emissions, mask, *weights)
        graph_tags, graph_scores = decode(emissions, mask, *weights)
        np.testing.assert_array_equal(graph_tags.numpy(), eager_tags.numpy())
        np.testing.assert_allclose(graph_scores.numpy(), eager_scores.numpy(), atol=1e-6)
        np.testing.assert_allclose(log_norm(emissions, mask, *weights).numpy(),
                                   crf_log_norm(emissions, mask, *weights).numpy(), atol=1e-6)


def test_gradients_reach_emissions_and_transitions_and_fitting_works():
    rng = np.random.default_rng(7)
    targets = np.array([[0, 1, 2, 0, 1], [2, 0, 1, 2, 0], [1, 2, 0, 0, 0]], "int32")
    mask = np.array([[1] * 5, [1] * 5, [1, 1, 1, 0, 0]], bool)
    emissions = tf.Variable(rng.normal(scale=0.1, size=(3, 5, K)).astype("float32"))
    layer = CRF(K, initializer="glorot_uniform")

    def loss():
        return -tf.reduce_mean(layer.log_likelihood(emissions, targets, mask))

    with tf.GradientTape() as tape:
        value = loss()
    variables = [emissions, *layer.trainable_variables]
    grads = tape.gradient(value, variables)
    assert len(layer.trainable_variables) == 3
    for grad in grads:
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    # Padded steps get no gradient from the emissions.
    assert float(tf.reduce_max(tf.abs(grads[0][2, 3:]))) == 0.0

    optimizer = keras.optimizers.Adam(0.1)

    @tf.function(jit_compile=False)
    def step():
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables,
                                      strict=True))

    first = float(loss())
    for _ in range(60):
        step()
    assert float(loss()) < 0.1 * first
    decoded = layer(emissions, mask=mask).numpy()
    np.testing.assert_array_equal(decoded, np.where(mask, targets, 0))


def test_layer_config_round_trip_and_weights():
    layer = CRF(5, initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=3),
                name="tagger_crf")
    config = layer.get_config()
    assert config["num_tags"] == 5 and config["name"] == "tagger_crf"
    again = CRF.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, CRF) and restored.get_config() == config
    assert [tuple(w.shape) for w in layer.weights] == [(5, 5), (5,), (5,)]
    assert sorted(w.path.split("/")[-1] for w in layer.weights) == [
        "end_transitions", "start_transitions", "transitions"]
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)


def test_layer_under_mixed_precision_computes_in_float32():
    emissions, mask, _ = random_case(8, [4, 2], 4)
    reference = CRF(K, initializer=keras.initializers.RandomNormal(seed=1))
    mixed = CRF(K, initializer=keras.initializers.RandomNormal(seed=1), dtype="mixed_float16")
    for w_ref, w_mixed in zip(reference.weights, mixed.weights, strict=True):
        assert w_mixed.dtype == "float32"
        w_mixed.assign(w_ref)
    half = tf.constant(emissions, tf.float16)
    tags = mixed(half, mask=mask)
    np.testing.assert_array_equal(tags.numpy(), reference(tf.cast(half, tf.float32),
                                                          mask=mask).numpy())
    log_likelihood = mixed.log_likelihood(half, tags, mask)
    assert log_likelihood.dtype == tf.float32
    np.testing.assert_allclose(
        log_likelihood.numpy(),
        reference.log_likelihood(tf.cast(half, tf.float32), tags, mask).numpy(), rtol=1e-6)


def test_layer_in_a_functional_model():
    inputs = keras.Input((None, K))
    tags = CRF(K)(inputs)
    model = keras.Model(inputs, tags)
    emissions, _, _ = random_case(9, [3, 3], 3)
    np.testing.assert_array_equal(model(emissions).numpy(), np.argmax(emissions, -1))
