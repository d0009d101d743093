"""The size table, generator sizing, ALE defaults and override checking."""

import pytest

from electra_tf.configs import OPTIMIZER_NAMES, SIZES, ModelConfig, get_config


def test_original_size_table():
    small, base, large = (get_config("electra", s) for s in ("small", "base", "large"))
    as_tuple = lambda c: (c.num_hidden_layers, c.hidden_size, c.embedding_size,  # noqa: E731
                          c.num_attention_heads, c.intermediate_size)
    assert as_tuple(small) == (12, 256, 128, 4, 1024)
    assert as_tuple(base) == (12, 768, 768, 12, 3072)
    assert as_tuple(large) == (24, 1024, 1024, 16, 4096)
    for config in (small, base, large):
        assert config.vocab_size == 30522 and config.max_position_embeddings == 512
        assert config.num_layer_groups is None
    # Generator fractions of the paper's Table 6; 0.25 is the default otherwise.
    assert small.generator_hidden_size == large.generator_hidden_size == 0.25
    assert abs(base.generator_hidden_size - 1 / 3) < 1e-12
    assert get_config("electra", "tiny").generator_hidden_size == 0.25
    assert {"debug", "tiny"} <= set(SIZES)


@pytest.mark.parametrize("size,hidden,heads,layers", [
    ("small", 64, 1, 12), ("base", 256, 4, 12), ("large", 256, 4, 24)])
def test_generator_sizes_from_fraction(size, hidden, heads, layers):
    gen = get_config("electra", size).generator_config()
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size,
            gen.num_hidden_layers) == (hidden, heads, 4 * hidden, layers)
    assert gen.embedding_size == get_config("electra", size).embedding_size  # tied


def test_generator_fractions_and_untied_embeddings():
    config = get_config("electra", "base", {"generator_hidden_size": 1 / 3.0,
                                            "generator_layers": 0.5,
                                            "untied_generator_embeddings": True})
    gen = config.generator_config()
    assert (gen.hidden_size, gen.num_attention_heads, gen.num_hidden_layers) == (256, 4, 6)
    assert gen.embedding_size == 256


def test_ale_defaults():
    ale = get_config("ale", "base")
    assert ale.embedding_size == 128 and ale.num_layer_groups == 1 and ale.num_groups == 1
    assert ale.generator_config().num_layer_groups == 1
    assert get_config("ale", "debug").embedding_size == SIZES["debug"]["embedding_size"]
    assert get_config("ale", "base", {"num_layer_groups": 3}).num_groups == 3


def test_overrides_dict_and_json():
    assert get_config("electra", "small", {"hidden_size": 512}).hidden_size == 512
    assert get_config("bert", "small", '{"num_hidden_layers": 6}').num_hidden_layers == 6


def test_unknown_override_key_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown model hyperparameter\(s\) 'hiden_size'.*"
                                         r"allowed keys: .*hidden_size"):
        get_config("electra", "small", {"hiden_size": 512})
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        get_config("electra", "huge")
    with pytest.raises(ValueError, match="unknown model_type 'gpt'"):
        get_config("gpt", "small")
    with pytest.raises(ValueError, match="not valid JSON"):
        get_config("electra", "small", "{hidden_size: 1}")


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError, match="not divisible by num_attention_heads"):
        get_config("electra", "small", {"num_attention_heads": 3})
    with pytest.raises(ValueError, match="num_layer_groups=5"):
        get_config("ale", "small", {"num_layer_groups": 5})
    with pytest.raises(ValueError, match="generator_hidden_size"):
        get_config("electra", "small", {"generator_hidden_size": 0})


def test_dict_round_trip():
    config = get_config("ale", "tiny")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model hyperparameter"):
        ModelConfig.from_dict(dict(config.to_dict(), extra=1))


def test_generator_sharing_groups_divide_its_depth():
    config = get_config("electra", "small", {"num_layer_groups": 12, "generator_layers": 0.5})
    assert config.generator_config().num_hidden_layers == 6
    assert config.generator_config().num_layer_groups == 6
    config = get_config("ale", "small", {"num_layer_groups": 4, "generator_layers": 0.5})
    assert config.generator_config().num_layer_groups == 2


def test_the_configs_know_the_optimizers_by_name():
    # The configs check a name without importing TensorFlow; the optimizers are built in
    # electra_tf.optimization.
    from electra_tf.optimization import OPTIMIZERS

    assert OPTIMIZER_NAMES == tuple(OPTIMIZERS)
