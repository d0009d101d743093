"""keras-hub presets: this package's encoders exported as keras_hub ElectraBackbone presets
(outputs equal keras-hub's, tokenizer included) and imported back, through electra-convert
too; what keras-hub cannot express is refused by name."""

import uuid

import h5py
import keras_hub
import numpy as np
import pytest
from model_checks import assert_same_weights, convert_here

from electra_tf import checkpoints, files, presets
from electra_tf.configs import get_config
from electra_tf.modeling import ElectraPretrainer, Encoder
from electra_tf.tokenization import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "quick", "brown", "fox", "jump", "##s", "##ed", "over", "lazy", "dog",
         "cafe", "!", ",", ".", "'", "t", "##he", "un", "##seen", "[unused0]"]
CASED = ["The", "Caf", "##é", "Z"]
SENTENCES = ["The quick brown fox jumps over the lazy dog, unseen! Café zebra's",
             "  THE  lazy\tdog jumped... über 'cafe'"]
VOCAB_SIZE = 40  # more embeddings than vocab tokens, as a model may have
TOL = 1e-5


@pytest.fixture
def ram():
    root = f"ram://presets-{uuid.uuid4().hex}"
    yield root
    files.rmtree(root)


def tiny_encoder(model_type="electra", hidden_act="gelu_approximate", seed=0, **overrides):
    values = dict(vocab_size=VOCAB_SIZE, max_position_embeddings=32, dropout_rate=0.0,
                  hidden_act=hidden_act, **overrides)
    model = Encoder(get_config(model_type, "debug", values))
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # off the init values: zeros and ones hide mix-ups
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    return model


def write_vocab(path, tokens=SPECIALS + WORDS):
    files.atomic_write(str(path), "\n".join(tokens) + "\n")
    return str(path)


def padded_batch(seed=0):
    """Two rows, two segments, padding in the second row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB_SIZE, (2, 12)).astype("int32")
    ids[:, 0] = 2  # [CLS]
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    ids[mask == 0] = 0
    segments = np.zeros_like(ids)
    segments[:, 6:] = 1
    segments[mask == 0] = 0
    return ids, mask, segments


def outputs(encoder, backbone, seed=0):
    """(ours, keras-hub's) sequence outputs on the same batch, and the real-token mask."""
    ids, mask, segments = padded_batch(seed)
    ours = encoder({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    theirs = backbone({"token_ids": ids, "padding_mask": mask, "segment_ids": segments})
    return (np.asarray(ours["sequence_output"]), np.asarray(theirs["sequence_output"]),
            mask.astype(bool))


def max_diff(encoder, backbone):
    ours, theirs, mask = outputs(encoder, backbone)
    return float(np.abs(ours - theirs)[mask].max())


def test_export_computes_what_the_encoder_computes_and_round_trips(tmp_path):
    encoder = tiny_encoder()
    out = str(tmp_path / "preset")
    report = presets.save_keras_hub_preset(encoder, out,
                                           vocab_file=write_vocab(tmp_path / "vocab.txt"))
    assert sorted(files.walk_files(out)) == sorted(
        files.join(out, name) for name in presets.PRESET_FILES)
    assert len(report.assigned) == len(encoder.weights)  # unshared: one to one
    assert any("tanh pooler" in note for note in report.notes)

    backbone = keras_hub.models.ElectraBackbone.from_preset(out)
    assert backbone.get_config()["embedding_dim"] == 16  # factorized: the projection runs
    assert max_diff(encoder, backbone) < TOL
    # Weights by name, not just outputs: a table and a transposed-looking kernel.
    np.testing.assert_array_equal(backbone.token_embedding.embeddings.numpy(),
                                  encoder.embeddings.word_embeddings.embeddings.numpy())
    np.testing.assert_array_equal(
        backbone.transformer_layers[1]._feedforward_output_dense.kernel.numpy(),
        encoder.transformer.transformer_layers[1]._feedforward_output_dense.kernel.numpy())
    # The pooler keras-hub adds: tanh(Dense([CLS])), seeded, so exports are reproducible.
    again = str(tmp_path / "again")
    presets.save_keras_hub_preset(encoder, again)
    pooler = backbone.get_layer("pooled_dense").kernel.numpy()
    np.testing.assert_array_equal(pooler, keras_hub.models.ElectraBackbone.from_preset(
        again).get_layer("pooled_dense").kernel.numpy())
    assert pooler.std() > 0.01

    back = presets.load_keras_hub_preset(out)
    assert back.model_config == encoder.model_config
    assert_same_weights(encoder, back)
    # An earlier export is replaced; a folder holding anything else is not touched.
    presets.save_keras_hub_preset(tiny_encoder(seed=1), out)
    assert "tokenizer.json" not in files.listdir(out)
    files.atomic_write(str(tmp_path / "other" / "notes.txt"), "mine")
    with pytest.raises(ValueError, match="other: exists and is not an electra-tf keras-hub"):
        presets.save_keras_hub_preset(encoder, str(tmp_path / "other"))


@pytest.mark.parametrize("cased", [False, True])
def test_preset_tokenizer_tokenizes_like_ours(cased, tmp_path):
    tokens = SPECIALS + WORDS + (CASED if cased else [])
    vocab = write_vocab(tmp_path / "vocab.txt", tokens)
    out = str(tmp_path / "preset")
    report = presets.save_keras_hub_preset(tiny_encoder(), out, vocab_file=vocab)
    assert any(f"do_lower_case={not cased} (from the vocab)" in n for n in report.notes)
    assert files.read_text(f"{out}/assets/tokenizer/vocabulary.txt").split("\n")[:-1] == tokens

    tokenizer = keras_hub.models.ElectraTokenizer.from_preset(out)
    assert (tokenizer.lowercase, tokenizer.strip_accents) == (not cased, not cased)
    ours = WordPieceTokenizer(vocab, do_lower_case=not cased)
    for sentence in SENTENCES:
        expected = ours.tokenize(sentence)
        assert tokens.index("[UNK]") in expected and len(set(expected)) > 5  # a real test
        assert np.asarray(tokenizer(sentence)).tolist() == expected
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id) == (2, 0, 4)
    # The documented difference: keras-hub gives [UNK] for a word over 100 bytes, where
    # this package (as the original, up to 200 characters) still splits it.
    long_word = "t" + "he" * 60
    assert ours.tokenize(long_word) == [tokens.index("the")] + [tokens.index("##he")] * 59
    assert np.asarray(tokenizer(long_word)).tolist() == [tokens.index("[UNK]")]


def test_exact_gelu_is_refused_unless_allowed(tmp_path):
    encoder = tiny_encoder(hidden_act="gelu")
    out = str(tmp_path / "preset")
    with pytest.raises(ValueError, match=r"hidden_act='gelu': keras-hub's ElectraBackbone "
                                         r"always uses the tanh GELU.*allow_tanh_gelu"):
        presets.save_keras_hub_preset(encoder, out)
    assert not files.exists(out)
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        presets.save_keras_hub_preset(tiny_encoder(hidden_act="relu"), out, allow_tanh_gelu=True)
    with pytest.raises(ValueError, match="layer_norm_epsilon=1e-06: keras-hub's "
                                         "ElectraBackbone fixes it at 1e-12"):
        presets.save_keras_hub_preset(tiny_encoder(layer_norm_epsilon=1e-6), out)

    report = presets.save_keras_hub_preset(encoder, out, allow_tanh_gelu=True)
    assert any("'gelu' exported as keras-hub's tanh GELU" in note for note in report.notes)
    # keras-hub runs the tanh form: close to the encoder, not equal to it.
    diff = max_diff(encoder, keras_hub.models.ElectraBackbone.from_preset(out))
    assert 1e-6 < diff < 1e-2
    back = presets.load_keras_hub_preset(out)  # the exported model, exact GELU included
    assert back.model_config.hidden_act == "gelu"
    assert_same_weights(encoder, back)


def test_ale_sharing_is_repeated_on_export_and_restored_on_import(tmp_path):
    encoder = tiny_encoder("ale")  # 2 layers, one shared weight set, embedding 16
    assert encoder.model_config.num_layer_groups == 1
    out = str(tmp_path / "preset")
    report = presets.save_keras_hub_preset(encoder, out)
    assert any("no cross-layer sharing" in note for note in report.notes)
    backbone = keras_hub.models.ElectraBackbone.from_preset(out)
    assert max_diff(encoder, backbone) < TOL
    first, second = backbone.transformer_layers
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    back = presets.load_keras_hub_preset(out)
    assert back.model_config == encoder.model_config
    assert len(back.transformer.transformer_layers) == 1
    assert_same_weights(encoder, back)
    # Copies that differ (the preset trained further in keras-hub) cannot be shared again.
    second._feedforward_output_dense.bias.assign(second._feedforward_output_dense.bias + 1.0)
    backbone.save_to_preset(out)  # keras-hub rewrites its files; ours stays
    with pytest.raises(ValueError, match=r"preset/model.weights.h5: transformer_layer_1/"
                                         r"feedforward_output_dense/bias differs from "
                                         r"transformer_layer_0/.*num_layer_groups=1"):
        presets.load_keras_hub_preset(out)


def test_bert_encoder_exports_as_an_electra_backbone(tmp_path):
    encoder = tiny_encoder("bert", embedding_size=32)  # no projection, as BERT
    out = str(tmp_path / "preset")
    report = presets.save_keras_hub_preset(encoder, out)
    assert any("BERT encoder" in note for note in report.notes)
    backbone = keras_hub.models.ElectraBackbone.from_preset(out)
    assert not hasattr(backbone, "embeddings_projection")
    assert max_diff(encoder, backbone) < TOL
    assert presets.load_keras_hub_preset(out).model_config.model_type == "bert"
    # Without this package's config, config.json alone: an ELECTRA encoder, same weights.
    files.remove(f"{out}/{checkpoints.CONFIG_FILE}")
    plain = presets.load_keras_hub_preset(out)
    assert (plain.model_config.model_type, plain.model_config.hidden_act) == (
        "electra", "gelu_approximate")
    for a, b in zip(encoder.weights, plain.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_preset_keras_hub_wrote_imports_with_equal_outputs(tmp_path):
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=VOCAB_SIZE, num_layers=2, num_heads=2, hidden_dim=32, embedding_dim=24,
        intermediate_dim=64, dropout=0.0, max_sequence_length=16, num_segments=3)
    out = str(tmp_path / "keras_hub_preset")
    backbone.save_to_preset(out)
    assert presets.is_keras_hub_preset(out)
    encoder, report = presets.read_keras_hub_preset(out)
    config = encoder.model_config
    assert (config.embedding_size, config.intermediate_size, config.max_position_embeddings,
            config.type_vocab_size, config.dropout_rate) == (24, 64, 16, 3, 0.0)
    assert report.skipped == ["pooled_dense/kernel", "pooled_dense/bias"]
    assert max_diff(encoder, backbone) < TOL


def test_bad_presets_are_named(tmp_path):
    out = str(tmp_path / "preset")
    presets.save_keras_hub_preset(tiny_encoder(), out)
    weights = f"{out}/model.weights.h5"
    query = "layers/transformer_encoder_1/_self_attention_layer/query_dense/vars"
    with h5py.File(weights, "a") as f:  # where Keras keeps transformer_layer_1's query
        assert f[query].attrs["name"] == "query"
        del f[f"{query}/1"]
    with pytest.raises(ValueError, match=f"{weights}: does not fit {out}/config.json: missing "
                                         f"transformer_layer_1/self_attention_layer/query/bias"):
        presets.load_keras_hub_preset(out)

    presets.save_keras_hub_preset(tiny_encoder(), out)
    with h5py.File(weights, "a") as f:
        del f[f"{query}/0"]
        f[f"{query}/0"] = np.zeros((32, 2, 8), "float32")
    with pytest.raises(ValueError, match=r"transformer_layer_1/self_attention_layer/query/"
                                         r"kernel has shape \(32, 2, 8\), config.json says "
                                         r"\(32, 2, 16\)"):
        presets.load_keras_hub_preset(out)

    files.atomic_write(weights, b"not hdf5")
    with pytest.raises(ValueError, match=f"{weights}: not an HDF5 file"):
        presets.load_keras_hub_preset(out)
    files.remove(weights)
    with pytest.raises(FileNotFoundError, match=f"{weights}: no such file"):
        presets.load_keras_hub_preset(out)
    config = files.read_json(f"{out}/config.json")
    files.write_json(f"{out}/config.json", dict(config, registered_name="keras_hub>BertBackbone"))
    with pytest.raises(ValueError, match="a keras_hub>BertBackbone, not a keras-hub "
                                         "ElectraBackbone"):
        presets.load_keras_hub_preset(out)
    config["config"]["num_layers"] = 3
    files.write_json(f"{out}/config.json", config)
    with pytest.raises(ValueError, match=r"electra_tf_config.json describes another model than "
                                         r".*config.json \(num_hidden_layers 2 vs num_layers 3\)"):
        presets.load_keras_hub_preset(out)


def test_cli_exports_and_imports_keras_hub_presets(ram, tmp_path):
    """electra-convert: a model dir as electra-pretrain leaves it (on ram://, as on gs://)
    -> a local preset keras-hub loads -> back to .keras, and preset to preset on ram://."""
    config = get_config("electra", "debug", dict(vocab_size=VOCAB_SIZE,
                                                 max_position_embeddings=32))
    pretrainer = ElectraPretrainer(config)
    model_dir = f"{ram}/models/electra_debug"
    checkpoints.save_keras(pretrainer, f"{model_dir}/pretrainer.keras")
    write_vocab(f"{model_dir}/vocab.txt")
    out = str(tmp_path / "preset")
    with pytest.raises(ValueError, match="hidden_act='gelu'.*--allow_tanh_gelu"):
        convert_here(f"--input={model_dir}", "--output_format=keras_hub", f"--output={out}")
    summary = convert_here(f"--input={model_dir}", "--output_format=keras_hub",
                           "--allow_tanh_gelu", f"--output={out}")
    assert "converting only the (discriminator) encoder" in summary
    assert f"wrote keras-hub preset {out}" in summary and "do_lower_case=True" in summary
    backbone = keras_hub.models.ElectraBackbone.from_preset(out)
    np.testing.assert_array_equal(
        backbone.token_embedding.embeddings.numpy(),
        pretrainer.discriminator.embeddings.word_embeddings.embeddings.numpy())
    tokenizer = keras_hub.models.ElectraTokenizer.from_preset(out)
    expected = WordPieceTokenizer(SPECIALS + WORDS).tokenize(SENTENCES[0])
    assert np.asarray(tokenizer(SENTENCES[0])).tolist() == expected

    # Detected as keras_hub input; one encoder, so --target=encoder.
    with pytest.raises(ValueError, match="a keras-hub preset holds only an encoder; use "
                                         "--target=encoder"):
        convert_here(f"--input={out}", f"--output={ram}/enc.keras")
    summary = convert_here(f"--input={out}", "--target=encoder", f"--output={ram}/enc.keras")
    assert "assigned 39 variables" in summary
    assert_same_weights(pretrainer.discriminator, checkpoints.load_keras(f"{ram}/enc.keras"))
    # Preset -> preset on ram://, its tokenizer along; then back from ram://.
    summary = convert_here(f"--input={out}", "--output_format=keras_hub",
                           "--allow_tanh_gelu", f"--output={ram}/preset")
    assert "do_lower_case=True (from the tokenizer.json)" in summary
    assert sorted(files.listdir(f"{ram}/preset")) == sorted(files.listdir(out))
    assert_same_weights(pretrainer.discriminator,
                        presets.load_keras_hub_preset(f"{ram}/preset"))
    with pytest.raises(ValueError, match="--allow_tanh_gelu only applies to keras_hub output"):
        convert_here(f"--input={out}", "--target=encoder", "--allow_tanh_gelu",
                     f"--output={ram}/x.keras")
