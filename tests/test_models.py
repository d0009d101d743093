"""Encoders, heads and pretrainers: parameter counts, sharing, tying, save/load, strategy."""

import math
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.configs import get_config
from electra_tf.flops import count_parameters
from electra_tf.modeling import (
    BertPretrainer,
    ElectraPretrainer,
    Encoder,
    build_pretrainer,
    encoder_of,
    gelu_approximate,
)

ENCODER_KEYS = ("input_ids", "input_mask", "segment_ids")


def encoder_inputs(batch):
    return {k: batch[k] for k in ENCODER_KEYS}


def test_electra_small_discriminator_encoder_has_exactly_13483008_parameters(zero_initialized):
    model = ElectraPretrainer(get_config("electra", "small"))
    assert model.discriminator.count_params() == 13_483_008
    # The built model agrees with the formula for every part.
    counts = count_parameters(model.model_config)
    assert model.count_params() == counts["total"]
    assert model.discriminator_head.count_params() == counts["discriminator_head"]
    assert model.generator.transformer.count_params() == counts["generator"]
    # ~14M in the ELECTRA paper (Table 1).
    assert round(model.count_params() / 1e6) == 14


@pytest.mark.parametrize("size,published", [("base", 108.9e6), ("large", 334.1e6)])
def test_base_and_large_encoder_parameter_counts(size, published, zero_initialized):
    encoder = Encoder(get_config("electra", size))
    assert abs(encoder.count_params() / published - 1) < 1e-3
    assert encoder.count_params() == count_parameters(get_config("electra", size))["encoder"]


def test_generator_is_sized_from_the_fraction_and_shares_the_embeddings():
    model = ElectraPretrainer(get_config("electra", "small"))
    gen = model.generator.transformer
    assert gen.hidden_size == 64 and gen.num_hidden_layers == 12
    assert gen.num_attention_heads == 1 and gen.intermediate_size == 256
    # Same embedding module; each encoder has its own projection 128 -> hidden.
    assert model.generator.embeddings is model.discriminator.embeddings
    assert gen.embeddings_project.kernel.shape == (128, 64)
    assert model.discriminator.transformer.embeddings_project.kernel.shape == (128, 256)
    paths = [w.path for w in model.weights]
    assert len(paths) == len(set(paths)), "a shared weight is listed twice"


def test_untied_generator_has_its_own_embeddings():
    model = ElectraPretrainer(get_config("electra", "debug",
                                         {"untied_generator_embeddings": True}))
    assert model.generator.embeddings is not model.discriminator.embeddings
    assert model.generator.embeddings.embedding_size == model.generator.transformer.hidden_size
    assert model.count_params() == count_parameters(model.model_config)["total"]


def test_ale_one_group_has_one_set_of_layer_weights(batch_for):
    electra = ElectraPretrainer(get_config("electra", "small", {"embedding_size": 128}))
    ale = ElectraPretrainer(get_config("ale", "small"))
    stack = ale.discriminator.transformer
    assert len(stack.transformer_layers) == 1
    assert all(stack.layer_for(i) is stack.transformer_layers[0] for i in range(12))
    per_layer = electra.discriminator.transformer.transformer_layers[0].count_params()
    assert (electra.discriminator.count_params() - ale.discriminator.count_params()
            == 11 * per_layer)
    assert len(ale.generator.transformer.transformer_layers) == 1
    # The encoder output is the one shared layer applied 12 times (not once).
    batch = batch_for(ale.model_config)
    mask = batch["input_mask"].astype(bool)
    x = stack.embeddings_project(
        ale.discriminator.embeddings(batch["input_ids"], batch["segment_ids"]))
    by_hand = []
    for _ in range(12):
        x = stack.transformer_layers[0](x, padding_mask=mask)
        by_hand.append(x.numpy())
    encoded = ale.discriminator(encoder_inputs(batch))["sequence_output"].numpy()
    np.testing.assert_allclose(encoded, by_hand[-1], atol=1e-5)
    assert not np.allclose(encoded, by_hand[0], atol=1e-3)


def test_layer_groups_follow_albert_assignment():
    stack = Encoder(get_config("ale", "debug", {"num_hidden_layers": 6,
                                                "num_layer_groups": 3})).transformer
    groups = [stack.transformer_layers.index(stack.layer_for(i)) for i in range(6)]
    assert groups == [0, 0, 1, 1, 2, 2]


def test_pooled_output_is_the_plain_cls_vector_and_padding_is_masked(batch_for):
    encoder = Encoder(get_config("electra", "debug"))
    batch = batch_for(encoder.model_config)
    out = encoder(encoder_inputs(batch))
    assert out["sequence_output"].shape == (2, 16, 32)
    np.testing.assert_array_equal(out["pooled_output"].numpy(),
                                  out["sequence_output"].numpy()[:, 0])
    # Tokens under the padding mask do not change the real positions' outputs.
    changed = dict(encoder_inputs(batch))
    changed["input_ids"] = batch["input_ids"].copy()
    changed["input_ids"][1, -4:] = 2000
    again = encoder(changed)["sequence_output"].numpy()
    np.testing.assert_allclose(again[1, :12], out["sequence_output"].numpy()[1, :12],
                               atol=1e-5)


def _set_token_table(embeddings, new_table):
    embeddings.word_embeddings.embeddings.assign(new_table)


@pytest.mark.parametrize("model_type", ["bert", "electra"])
def test_tied_mlm_head_reads_the_shared_token_table(model_type, batch_for):
    model = build_pretrainer(get_config(model_type, "debug"))
    batch = batch_for(model.model_config)
    head = model.mlm_head if model_type == "bert" else model.generator_head
    embeddings = encoder_of(model).embeddings
    assert head.token_embedding is embeddings.word_embeddings
    table = embeddings.word_embeddings.embeddings
    own_matrices = [w for w in head.weights if len(w.shape) == 2 and w is not table]
    assert all(model.model_config.vocab_size not in w.shape for w in own_matrices), \
        "the head must not own an output matrix"
    before = model(batch)["mlm_logits"].numpy()
    table = embeddings.word_embeddings.embeddings.numpy()
    changed = table.copy()
    # A row no input uses, so only the output side can see the change. (Not a constant
    # shift: the head's LayerNorm output has zero mean and would cancel it.)
    changed[5000] += np.random.default_rng(0).normal(size=changed.shape[1])
    _set_token_table(embeddings, changed)
    after = model(batch)["mlm_logits"].numpy()
    assert not np.allclose(before[..., 5000], after[..., 5000])
    np.testing.assert_allclose(np.delete(before, 5000, -1), np.delete(after, 5000, -1),
                               atol=1e-5)


def test_mlm_and_rtd_head_shapes(batch_for):
    config = get_config("electra", "debug")
    out = ElectraPretrainer(config)(batch_for(config))
    assert out["mlm_logits"].shape == (2, 3, config.vocab_size)
    assert out["rtd_logits"].shape == (2, 16)
    assert out["fake_input_ids"].shape == out["is_replaced"].shape == (2, 16)
    bert = BertPretrainer(get_config("bert", "debug"))
    assert bert(batch_for(config))["mlm_logits"].shape == (2, 3, config.vocab_size)


def _expected_fake(batch, sampled):
    """Where the samples must land, and the original tokens there."""
    fake = batch["input_ids"].copy()
    original = batch["input_ids"].copy()
    is_masked = np.zeros_like(fake, bool)
    for row in range(len(fake)):
        real = batch["masked_lm_weights"][row] > 0
        positions = batch["masked_lm_positions"][row][real]
        is_masked[row, positions] = True
        fake[row, positions] = sampled[row][real]
        original[row, positions] = batch["masked_lm_ids"][row][real]
    return fake, original, is_masked


def test_generator_samples_replace_only_masked_positions(batch_for):
    config = get_config("electra", "debug")
    model = ElectraPretrainer(config, seed=7)
    batch = batch_for(config)
    out = model(batch)
    fake, original, is_masked = _expected_fake(batch, out["sampled_ids"].numpy())
    np.testing.assert_array_equal(out["fake_input_ids"].numpy(), fake)
    assert fake[0, 0] == 101, "padding predictions must not overwrite [CLS]"
    np.testing.assert_array_equal(out["is_replaced"].numpy(),
                                  (is_masked & (fake != original)).astype("int32"))


@pytest.mark.parametrize("disallow_correct", [False, True])
def test_a_correct_sample_is_labelled_original_unless_disallowed(disallow_correct, batch_for):
    config = get_config("electra", "debug")
    model = ElectraPretrainer(config, disallow_correct=disallow_correct, seed=3)
    batch = batch_for(config)
    # One original token everywhere, which the generator is all but certain to predict.
    batch["masked_lm_ids"] = np.where(batch["masked_lm_weights"] > 0, 2000, 0).astype("int32")
    bias = np.zeros(config.vocab_size, "float32")
    bias[2000] = 50.0
    model.generator_head.output_bias.assign(bias)
    out = model(batch)
    _, original, is_masked = _expected_fake(batch, out["sampled_ids"].numpy())
    sampled_original = (out["fake_input_ids"].numpy() == original)[is_masked]
    if disallow_correct:
        assert not sampled_original.any()
        np.testing.assert_array_equal(out["is_replaced"].numpy(), is_masked.astype("int32"))
    else:
        assert sampled_original.all()
        assert out["is_replaced"].numpy().sum() == 0


def test_a_position_listed_twice_gets_one_sampled_token(batch_for):
    config = get_config("electra", "debug")
    model = ElectraPretrainer(config, seed=1)
    batch = batch_for(config)
    batch["masked_lm_positions"][0] = [5, 5, 6]
    batch["masked_lm_ids"][0] = batch["masked_lm_ids"][0][[0, 0, 2]]
    out = model(batch)
    sampled = out["sampled_ids"].numpy()[0]
    assert out["fake_input_ids"].numpy()[0, 5] in (sampled[0], sampled[1])


def test_gelu_forms():
    from scipy.special import erf

    from electra_tf.modeling.layers import get_activation

    x = np.linspace(-5, 5, 101).astype("float32")
    # The original ELECTRA's modeling.gelu is the exact erf form, and the default.
    exact = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    assert get_config("electra", "small").hidden_act == "gelu"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(get_activation("gelu")(x)), exact,
                               rtol=1e-5, atol=1e-6)
    tanh_form = 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gelu_approximate(x)), tanh_form,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type", ["bert", "electra", "ale"])
def test_save_load_round_trip_gives_identical_outputs(model_type, tmp_path, batch_for):
    config = get_config(model_type, "debug")
    model = build_pretrainer(config, **({"seed": 11} if model_type != "bert" else {}))
    path = tmp_path / f"{model_type}.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert type(restored) is type(model)
    assert restored.model_config == config
    batch = batch_for(config)
    expected, actual = model(batch, training=False), restored(batch, training=False)
    for key in expected:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(expected[key]),
                                      keras.ops.convert_to_numpy(actual[key]), err_msg=key)
    # Sharing survives the round trip.
    restored_embeddings = encoder_of(restored).embeddings
    if model_type != "bert":
        assert restored.generator.embeddings is restored_embeddings
    # The exported encoder saves and loads on its own.
    encoder_path = tmp_path / "encoder.keras"
    encoder_of(model).save(encoder_path)
    encoder = keras.models.load_model(encoder_path)
    np.testing.assert_array_equal(
        encoder(encoder_inputs(batch))["sequence_output"].numpy(),
        encoder_of(model)(encoder_inputs(batch))["sequence_output"].numpy())


def test_builds_and_runs_under_a_distribution_strategy(batch_for, mirrored_strategy):
    strategy = mirrored_strategy
    config = get_config("ale", "debug")
    with strategy.scope():
        model = build_pretrainer(config, seed=1)
    assert all(isinstance(v.value, tf.distribute.DistributedValues) or
               "Mirrored" in type(v.value).__name__ for v in model.trainable_weights)
    batch = {k: tf.constant(v) for k, v in batch_for(config, batch_size=4).items()}
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).unbatch().batch(4))
    per_replica = strategy.run(lambda x: model(x)["rtd_logits"], args=(next(iter(dataset)),))
    logits = strategy.gather(per_replica, axis=0)
    assert logits.shape == (4, 16)
    # Replicas given the same examples still draw their own samples.
    same = {k: tf.constant(np.concatenate([v[:2], v[:2]])) for k, v in
            batch_for(config, batch_size=2).items()}
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(same).unbatch().batch(4))
    sampled = strategy.gather(strategy.run(lambda x: model(x)["sampled_ids"],
                                           args=(next(iter(dataset)),)), axis=0).numpy()
    assert not np.array_equal(sampled[:2], sampled[2:])


def test_mixed_bfloat16_policy_keeps_float32_logits(batch_for):
    # The TPU recipe: bfloat16 compute, float32 variables, float32 logits for the losses.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        config = get_config("ale", "debug")
        model = build_pretrainer(config, seed=2)
        out = model(batch_for(config))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {w.dtype for w in model.weights} == {"float32"}
    assert model.discriminator.transformer.compute_dtype == "bfloat16"
    assert model.sampler.compute_dtype == "float32", "Gumbel noise must not be bfloat16"
    assert out["mlm_logits"].dtype == tf.float32 and out["rtd_logits"].dtype == tf.float32
    assert np.isfinite(out["mlm_logits"].numpy()).all()


def test_gelu_gradient_matches_autodiff_of_tf_gelu_and_bf16_stays_bf16():
    from electra_tf.modeling.layers import gelu

    x = tf.constant(np.linspace(-6, 6, 241), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, reference = gelu(x), tf.nn.gelu(x, approximate=False)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours, x).numpy(),
                               tape.gradient(reference, x).numpy(), atol=1e-6)
    half = gelu(tf.cast(x, tf.bfloat16))
    assert half.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(half, tf.float32).numpy(), reference.numpy(),
                               rtol=1e-2, atol=1e-2)


def test_dropout_rate_scale_and_inference_identity():
    from electra_tf.modeling.layers import Dropout

    layer = Dropout(0.1, seed=3)
    ones = tf.ones([400, 1000])
    out = layer(ones, training=True).numpy()
    dropped = (out == 0).mean()
    assert abs(dropped - 0.1) < 0.003  # 400k draws: the standard deviation is 0.0005
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / 0.9, rtol=1e-6)
    # Each 32-bit number decides four neighbours: each is dropped at the rate, and two of
    # them together at the rate squared (100k words: standard deviations 0.001, 0.0003).
    words = (out == 0).reshape(-1, 4)
    assert np.all(np.abs(words.mean(0) - 0.1) < 0.005)
    for a, b in ((0, 1), (1, 3), (0, 2)):
        assert abs((words[:, a] & words[:, b]).mean() - 0.01) < 0.0015
    assert abs(out.mean() - 1.0) < 0.005
    assert not np.array_equal(out, layer(ones, training=True).numpy())  # a new mask per call
    np.testing.assert_array_equal(layer(ones, training=False).numpy(), ones.numpy())
    odd = layer(tf.ones([3, 5, 7]), training=True)  # an odd element count
    assert odd.shape == (3, 5, 7)
    assert Dropout.from_config(layer.get_config()).rate == 0.1


def test_dropout_patterns_have_their_probabilities_to_2_to_the_minus_32():
    from electra_tf.modeling import fused

    for rate in (0.1, 0.5, 1 / 3):
        bounds = fused.dropout_thresholds(rate)
        widths = np.diff((0, *bounds, 2**32)) / 2**32
        kept = np.array([bin(k).count("1") for k in range(16)])
        np.testing.assert_allclose(widths, (1 - rate) ** kept * rate ** (4 - kept),
                                   rtol=0, atol=2.0**-32)
    # A word at a boundary starts the next pattern (bit e: element e kept), compiled
    # and op by op alike.
    bounds = fused.dropout_thresholds(0.1)
    words = tf.constant([0, bounds[0] - 1, bounds[0], bounds[6], bounds[14] - 1,
                         bounds[14], 2**32 - 1], tf.uint32)
    patterns = [0, 0, 1, 7, 14, 15, 15]
    want = np.array([[(k >> e) & 1 for e in range(4)] for k in patterns], bool).ravel()
    with mock.patch.object(fused, "_enabled", True):
        np.testing.assert_array_equal(fused.dropout_keep(words, 0.1), want)
    with fused.disabled():
        np.testing.assert_array_equal(fused.dropout_keep(words, 0.1), want)
    with pytest.raises(ValueError, match="dropout rate 1.0"):
        fused.dropout_thresholds(1.0)


def test_dropout_masks_differ_across_replicas(mirrored_strategy):
    from electra_tf.modeling.layers import Dropout

    with mirrored_strategy.scope():
        layer = Dropout(0.5, seed=1)
    calls = [[v.numpy() for v in mirrored_strategy.experimental_local_results(
        mirrored_strategy.run(lambda: layer(tf.ones([64, 64]), training=True)))]
        for _ in range(2)]
    assert not np.array_equal(calls[0][0], calls[0][1])
    # Nor does a replica repeat the other's mask of the next call (the generator's
    # counter moves by one per call).
    assert not np.array_equal(calls[0][1], calls[1][0])


def test_encoder_layers_use_the_package_dropout():
    from electra_tf.modeling.layers import Dropout

    encoder = Encoder(get_config("electra", "debug"))
    layer = encoder.transformer.transformer_layers[0]
    assert isinstance(layer._self_attention_dropout, Dropout)
    assert isinstance(layer._feedforward_dropout, Dropout)
    assert isinstance(layer._self_attention_layer._dropout_layer, Dropout)
    assert isinstance(encoder.embeddings.dropout, Dropout)
