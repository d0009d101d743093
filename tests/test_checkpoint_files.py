"""Conversions on non-local paths (ram://, as gs:// on a TPU) and the tokenizer an HF export
carries: TF1 import/export, HF export/import and .keras save/load through electra_tf.files,
and errors that name the file."""

import io
import uuid

import numpy as np
import pytest
import torch
import transformers
from model_checks import assert_same_weights, convert_here
from original_layout import electra_variables, write_tf1_checkpoint
from test_checkpoints import ELECTRA, padded_two_segment_batch

from electra_tf import checkpoints, files
from electra_tf.configs import get_config
from electra_tf.modeling import ElectraPretrainer, Encoder
from electra_tf.tokenization import VocabError, WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "quick", "brown", "fox", "jump", "##s", "##ed", "over", "lazy", "dog",
         "cafe", "!", ",", ".", "'", "t", "##he", "un", "##seen", "[unused0]"]
SENTENCE = "The quick brown fox jumps over the lazy dog, unseen! Café zebra's"


@pytest.fixture
def ram():
    root = f"ram://convert-{uuid.uuid4().hex}"
    yield root
    files.rmtree(root)


def tiny_encoder(vocab_size=1000, model_type="electra", seed=0):
    overrides = dict(vocab_size=vocab_size, max_position_embeddings=32, dropout_rate=0.0)
    if model_type == "bert":  # HF's BertModel has no factorized embedding
        overrides["embedding_size"] = 32
    config = get_config(model_type, "debug", overrides)
    model = Encoder(config)
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # off the init values: zeros and ones hide mix-ups
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    return model


def test_tf1_checkpoint_on_ram_imports_and_exports(ram):
    variables = electra_variables()
    prefix = write_tf1_checkpoint(variables, f"{ram}/orig/model.ckpt-1000")
    # By directory: the 'checkpoint' state file names the prefix.
    model = ElectraPretrainer(ELECTRA)
    report = checkpoints.load_tf1_checkpoint(model, f"{ram}/orig")
    assert sorted(report.assigned) == sorted(variables)
    np.testing.assert_array_equal(model.embeddings.word_embeddings.embeddings.numpy(),
                                  variables["electra/embeddings/word_embeddings"])
    np.testing.assert_array_equal(model.generator_head.output_bias.numpy(),
                                  variables["generator_predictions/output_bias"])
    config = checkpoints.config_from_tf1(prefix)
    assert (config.hidden_size, config.embedding_size, config.vocab_size) == (32, 16, 1000)

    # Export back to ram://, with no 'checkpoint' file: the newest .index is found.
    checkpoints.save_tf1_checkpoint(model, f"{ram}/back/model.ckpt-3")
    assert files.listdir(f"{ram}/back") == [
        "checkpoint", "electra_tf_config.json", "model.ckpt-3.data-00000-of-00001",
        "model.ckpt-3.index"]  # no temporary folder left
    assert files.read_text(f"{ram}/back/checkpoint") == 'model_checkpoint_path: "model.ckpt-3"\n'
    files.remove(f"{ram}/back/checkpoint")
    again = ElectraPretrainer(ELECTRA)
    checkpoints.load_tf1_checkpoint(again, f"{ram}/back")
    assert_same_weights(model, again)
    assert checkpoints.config_from_tf1(f"{ram}/back") == ELECTRA  # the saved config


def test_bad_tf1_checkpoints_are_named(ram):
    with pytest.raises(FileNotFoundError, match=f"{ram}/none: no TF checkpoint"):
        files.makedirs(f"{ram}/none")
        files.atomic_write(f"{ram}/none/notes.txt", "x")
        checkpoints.load_tf1_checkpoint(Encoder(ELECTRA), f"{ram}/none")
    files.atomic_write(f"{ram}/bad/model.ckpt-1.index", b"not an index")
    with pytest.raises(ValueError, match=f"{ram}/bad/model.ckpt-1: not a readable TF "
                                         f"checkpoint"):
        checkpoints.load_tf1_checkpoint(Encoder(ELECTRA), f"{ram}/bad")
    # A 'checkpoint' file naming a prefix that is not there: the newest index instead.
    files.atomic_write(f"{ram}/bad/checkpoint", 'model_checkpoint_path: "gone/model.ckpt-9"\n')
    assert checkpoints._checkpoint_prefix(f"{ram}/bad") == f"{ram}/bad/model.ckpt-1"


def test_encoder_hf_export_on_ram_round_trips_exactly(ram):
    encoder = tiny_encoder(vocab_size=len(SPECIALS) + len(WORDS))
    files.atomic_write(f"{ram}/vocab.txt", "\n".join(SPECIALS + WORDS) + "\n")
    report = checkpoints.save_hf(encoder, f"{ram}/hf", vocab_file=f"{ram}/vocab.txt")
    assert files.listdir(f"{ram}/hf") == ["config.json", "model.safetensors",
                                          "special_tokens_map.json", "tokenizer_config.json",
                                          "vocab.txt"]
    assert any("do_lower_case=True (from the vocab)" in note for note in report.notes)
    hf, state = checkpoints.read_hf_folder(f"{ram}/hf")
    assert hf == checkpoints.hf_config(encoder, "encoder", "ElectraModel")
    assert hf["architectures"] == ["ElectraModel"] and hf["vocab_size"] == 25
    # Values in HF layout: embeddings as they are, kernels transposed, exactly.
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"],
                                  encoder.embeddings.word_embeddings.embeddings.numpy())
    dense = encoder.transformer.transformer_layers[1]._feedforward_intermediate_dense
    np.testing.assert_array_equal(state["encoder.layer.1.intermediate.dense.weight"],
                                  dense.kernel.numpy().T)
    back, read = checkpoints.model_from_hf(f"{ram}/hf", target="encoder")
    assert back.model_config == encoder.model_config
    assert len(read.assigned) == len(back.weights)
    assert_same_weights(encoder, back)
    assert files.read_text(f"{ram}/hf/vocab.txt").split() == SPECIALS + WORDS

    # An earlier export is replaced (a pretrainer's two folders now, no stale files) ...
    pretrainer = ElectraPretrainer(ELECTRA, seed=2)
    checkpoints.save_hf(pretrainer, f"{ram}/hf")
    assert files.listdir(f"{ram}/hf") == ["discriminator", "generator"]
    # ... and what an interrupted remote export left (weights, no config.json yet) too;
    # a folder that holds something else is not touched.
    files.rmtree(f"{ram}/hf/generator")
    files.remove(f"{ram}/hf/discriminator/config.json")
    checkpoints.save_hf(pretrainer, f"{ram}/hf")
    again, _ = checkpoints.model_from_hf(f"{ram}/hf")
    assert_same_weights(pretrainer, again)
    files.atomic_write(f"{ram}/precious/notes.txt", "keep me")
    with pytest.raises(ValueError, match="exists and is not an electra-tf export"):
        checkpoints.save_hf(pretrainer, f"{ram}/precious")
    assert files.read_text(f"{ram}/precious/notes.txt") == "keep me"


def test_bad_hf_files_on_ram_are_named(ram):
    encoder = tiny_encoder()
    checkpoints.save_hf(encoder, f"{ram}/hf")
    checkpoints.save_hf(encoder, f"{ram}/good")
    files.atomic_write(f"{ram}/hf/model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{bad")
    with pytest.raises(ValueError, match=f"{ram}/hf/model.safetensors: not a readable"):
        checkpoints.read_hf_folder(f"{ram}/hf")
    files.atomic_write(f"{ram}/hf/config.json", '{\n  "model_type": "electra",\n}')
    with pytest.raises(ValueError, match=f"{ram}/hf/config.json:3: not valid JSON"):
        checkpoints.read_hf_folder(f"{ram}/hf")
    # pytorch_model.bin is read through a local copy (torch reads local files only).
    files.rmtree(f"{ram}/hf")
    files.atomic_write(f"{ram}/hf/config.json", files.json_text(
        checkpoints.hf_config(encoder, "encoder", "ElectraModel")))
    files.atomic_write(f"{ram}/hf/pytorch_model.bin", b"not a torch file")
    with pytest.raises(ValueError, match=f"{ram}/hf/pytorch_model.bin: not a readable "
                                         f"PyTorch state dict"):
        checkpoints.read_hf_folder(f"{ram}/hf")
    buffer = io.BytesIO()
    torch.save({name: torch.tensor(value) for name, value in
                checkpoints.read_hf_folder(f"{ram}/good")[1].items()}, buffer)
    files.atomic_write(f"{ram}/hf/pytorch_model.bin", buffer.getvalue())
    back, _ = checkpoints.model_from_hf(f"{ram}/hf", target="encoder")
    assert_same_weights(encoder, back)
    # A vocab that is not the model's.
    files.atomic_write(f"{ram}/big_vocab.txt", "\n".join(SPECIALS + [
        f"w{i}" for i in range(1000)]) + "\n")
    with pytest.raises(ValueError, match=f"{ram}/big_vocab.txt: 1005 tokens, but the model "
                                         f"has only 1000"):
        checkpoints.save_hf(encoder, f"{ram}/out", vocab_file=f"{ram}/big_vocab.txt")
    files.atomic_write(f"{ram}/no_mask.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\n")
    with pytest.raises(VocabError, match=f"{ram}/no_mask.txt: lacks the special token"):
        checkpoints.save_hf(encoder, f"{ram}/out", vocab_file=f"{ram}/no_mask.txt")
    with pytest.raises(FileNotFoundError, match=f"{ram}/nowhere.txt: no such vocab file"):
        checkpoints.save_hf(encoder, f"{ram}/out", vocab_file=f"{ram}/nowhere.txt")
    assert not files.exists(f"{ram}/out")


def test_keras_on_ram_saves_and_loads(ram):
    encoder = tiny_encoder()
    checkpoints.save_keras(encoder, f"{ram}/models/encoder.keras")
    assert files.listdir(f"{ram}/models") == ["encoder.keras"]
    back = checkpoints.load_keras(f"{ram}/models/encoder.keras")
    assert isinstance(back, Encoder) and back.model_config == encoder.model_config
    assert_same_weights(encoder, back)
    batch = padded_two_segment_batch(encoder.model_config)
    np.testing.assert_array_equal(back(batch)["sequence_output"].numpy(),
                                  encoder(batch)["sequence_output"].numpy())
    with pytest.raises(FileNotFoundError, match=f"{ram}/models/missing.keras: no such file"):
        checkpoints.load_keras(f"{ram}/models/missing.keras")
    files.atomic_write(f"{ram}/models/bad.keras", b"not a zip")
    with pytest.raises(ValueError, match=f"{ram}/models/bad.keras"):
        checkpoints.load_keras(f"{ram}/models/bad.keras")


@pytest.mark.parametrize("cased", [False, True])
def test_hf_export_tokenizer_encodes_like_ours(cased, tmp_path):
    vocab = SPECIALS + WORDS + (["The", "Caf", "##é", "Z"] if cased else [])
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    model_type = "bert" if cased else "electra"
    encoder = tiny_encoder(vocab_size=64, model_type=model_type)
    checkpoints.save_hf(encoder, str(tmp_path / "hf"), vocab_file=str(tmp_path / "vocab.txt"))

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    name = "BertTokenizer" if cased else "ElectraTokenizer"  # one class in transformers 5
    assert files.read_json(str(tmp_path / "hf/tokenizer_config.json"))["tokenizer_class"] == name
    assert isinstance(tokenizer, (getattr(transformers, name),
                                  getattr(transformers, name + "Fast")))
    assert tokenizer.model_max_length == 32 and tokenizer.do_lower_case is not cased
    ours = WordPieceTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=not cased)
    expected = ours.tokenize(SENTENCE)
    assert vocab.index("[UNK]") in expected and len(set(expected)) > 8  # a real test
    assert tokenizer(SENTENCE, add_special_tokens=False)["input_ids"] == expected
    assert tokenizer(SENTENCE)["input_ids"] == [2, *expected, 3]  # [CLS] ... [SEP]
    assert tokenizer.mask_token_id == 4 and tokenizer.pad_token_id == 0
    # The folder is a whole HF model: the weights load beside the tokenizer.
    hf = transformers.AutoModel.from_pretrained(str(tmp_path / "hf"))
    assert type(hf).__name__ == ("BertModel" if cased else "ElectraModel")


def test_cli_exports_a_pretraining_model_dir_with_its_tokenizer(ram, tmp_path):
    """electra-convert on a model dir as electra-pretrain leaves it (encoder.keras and
    vocab.txt), on ram:// as on gs://, to a local HF folder transformers loads."""
    encoder = tiny_encoder(vocab_size=len(SPECIALS) + len(WORDS))
    model_dir = f"{ram}/models/electra_tiny"
    checkpoints.save_keras(encoder, f"{model_dir}/encoder.keras")
    files.atomic_write(f"{model_dir}/vocab.txt", "\n".join(SPECIALS + WORDS) + "\n")
    out = str(tmp_path / "hf")
    summary = convert_here(f"--input={model_dir}", "--target=encoder", f"--output={out}")
    assert f"tokenizer: {model_dir}/vocab.txt (25 tokens), do_lower_case=True" in summary
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    expected = WordPieceTokenizer(SPECIALS + WORDS).tokenize(SENTENCE)
    assert tokenizer(SENTENCE, add_special_tokens=False)["input_ids"] == expected
    back, _ = checkpoints.model_from_hf(out, target="encoder")
    assert_same_weights(encoder, back)
    # --do_lower_case overrides the vocab's casing; the HF export on ram:// round-trips
    # back to a .keras on ram://, and its tokenizer comes along to a second HF export.
    convert_here(f"--input={model_dir}", "--target=encoder", "--nodo_lower_case",
                 f"--output={ram}/hf")
    assert files.read_json(f"{ram}/hf/tokenizer_config.json")["do_lower_case"] is False
    convert_here(f"--input={ram}/hf", "--target=encoder", f"--output={ram}/again.keras")
    assert_same_weights(encoder, checkpoints.load_keras(f"{ram}/again.keras"))
    summary = convert_here(f"--input={ram}/hf", "--target=encoder", f"--output={ram}/hf2")
    assert "do_lower_case=False (from the tokenizer_config.json)" in summary
    with pytest.raises(ValueError, match="--vocab_file only apply to Hugging Face output"):
        convert_here(f"--input={model_dir}", "--target=encoder",
                     f"--vocab_file={model_dir}/vocab.txt", f"--output={ram}/x.keras")
    files.remove(f"{model_dir}/vocab.txt")
    summary = convert_here(f"--input={model_dir}", "--target=encoder", f"--output={ram}/bare")
    assert "no vocab.txt beside" in summary and "--vocab_file" in summary
    assert "vocab.txt" not in files.listdir(f"{ram}/bare")


def test_cli_publishes_a_pretraining_run_generator_included(ram, tmp_path):
    """A model dir as electra-pretrain leaves it (pretrainer.keras, encoder.keras,
    vocab.txt) -> Hugging Face discriminator/ and generator/ folders, each a whole model
    with its tokenizer, holding the run's weights."""
    config = get_config("electra", "debug", dict(vocab_size=len(SPECIALS) + len(WORDS),
                                                 max_position_embeddings=32))
    pretrainer = ElectraPretrainer(config)
    rng = np.random.default_rng(0)
    for weight in pretrainer.weights:  # off the init values: zeros and ones hide mix-ups
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    model_dir = f"{ram}/models/electra_debug"
    checkpoints.save_keras(pretrainer, f"{model_dir}/pretrainer.keras")
    checkpoints.save_keras(pretrainer.discriminator, f"{model_dir}/encoder.keras")
    files.atomic_write(f"{model_dir}/vocab.txt", "\n".join(SPECIALS + WORDS) + "\n")

    out = str(tmp_path / "hf")
    convert_here(f"--input={model_dir}", f"--output={out}")  # the default: the pretrainer
    back, _ = checkpoints.model_from_hf(out, target="pretrainer")
    assert_same_weights(pretrainer, back)
    expected = WordPieceTokenizer(SPECIALS + WORDS).tokenize(SENTENCE)
    for part, kind in (("discriminator", "ElectraForPreTraining"),
                       ("generator", "ElectraForMaskedLM")):
        tokenizer = transformers.AutoTokenizer.from_pretrained(f"{out}/{part}")
        assert tokenizer(SENTENCE, add_special_tokens=False)["input_ids"] == expected
        model = getattr(transformers, kind).from_pretrained(f"{out}/{part}")
        assert type(model).__name__ == kind
    # --target=encoder takes the run's encoder.keras; a folder with only an encoder (a
    # snapshot) is no pretrainer.
    convert_here(f"--input={model_dir}", "--target=encoder", f"--output={ram}/enc.keras")
    assert_same_weights(pretrainer.discriminator, checkpoints.load_keras(f"{ram}/enc.keras"))
    files.remove(f"{model_dir}/pretrainer.keras")
    with pytest.raises(ValueError, match="holds only an encoder .a snapshot, or a run that "
                                         "exported no pretrainer.keras.; use --target=encoder"):
        convert_here(f"--input={model_dir}", f"--output={ram}/hf2")


def test_the_published_uncased_vocab_is_detected_as_uncased(sample_paths):
    from electra_tf.checkpoints import vocab_is_uncased
    from electra_tf.tokenization import load_vocab

    tokens = list(load_vocab(sample_paths["vocab"]))
    assert "ℝ" in tokens  # upper case by str.isupper, with no lower-case form
    assert vocab_is_uncased(tokens)
    assert not vocab_is_uncased(tokens + ["Paris"])


def test_cli_reads_an_unfinished_run_from_its_newest_checkpoint(ram, tmp_path):
    """A run with checkpoints but no exported .keras yet (still training, or killed)."""
    from electra_tf.pretraining.config import PretrainingConfig
    from electra_tf.training.checkpointing import model_checkpoint

    config = get_config("electra", "debug", dict(vocab_size=len(SPECIALS) + len(WORDS),
                                                 max_position_embeddings=32))
    pretrainer = ElectraPretrainer(config)
    rng = np.random.default_rng(1)
    for weight in pretrainer.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    model_dir = f"{ram}/models/unfinished"
    settings = PretrainingConfig(data_dir=ram, model_name="unfinished", model_size="debug",
                                 num_train_steps=10)
    files.atomic_write(f"{model_dir}/pretraining_config.json", settings.to_json())
    files.write_json(f"{model_dir}/model_config.json", config.to_dict())
    model_checkpoint(pretrainer).write(f"{model_dir}/model.ckpt-5")
    files.atomic_write(f"{ram}/vocab.txt", "\n".join(SPECIALS + WORDS) + "\n")  # the settings'
    convert_here(f"--input={model_dir}", f"--output={tmp_path}/run.keras")
    assert_same_weights(pretrainer, checkpoints.load_keras(f"{tmp_path}/run.keras"))
    convert_here(f"--input={model_dir}/model.ckpt-5", "--target=encoder",
                 f"--output={tmp_path}/hf")
    encoder, _ = checkpoints.model_from_hf(f"{tmp_path}/hf", target="encoder")
    assert_same_weights(pretrainer.discriminator, encoder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(f"{tmp_path}/hf")  # the run's vocab
    assert tokenizer(SENTENCE, add_special_tokens=False)["input_ids"] == \
        WordPieceTokenizer(SPECIALS + WORDS).tokenize(SENTENCE)
