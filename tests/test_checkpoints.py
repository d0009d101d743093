"""TF1 checkpoints <-> this package <-> Hugging Face: names, errors, parity, round trips."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch
import transformers
from conftest import make_batch
from model_checks import convert_here
from original_layout import (
    bert_variables,
    electra_variables,
    to_hf_state,
    torch_inputs,
    write_tf1_checkpoint,
)

from electra_tf import checkpoints
from electra_tf.checkpoints import CheckpointMismatchError
from electra_tf.configs import get_config
from electra_tf.modeling import BertPretrainer, ElectraPretrainer, Encoder, build_pretrainer

# Matches electra_variables(): factorized embedding 16 -> hidden 32, generator 8 wide.
ELECTRA = get_config("electra", "debug", dict(vocab_size=1000, max_position_embeddings=64,
                                              dropout_rate=0.0))
BERT = get_config("bert", "debug", dict(vocab_size=1000, max_position_embeddings=64,
                                        embedding_size=32, dropout_rate=0.0))
TOL = 1e-4


def padded_two_segment_batch(config, seed=0):
    batch = make_batch(config, seq_len=16, seed=seed)
    batch["segment_ids"][:, 7:] = 1
    batch["segment_ids"][batch["input_mask"] == 0] = 0
    return batch


def max_diff(ours, theirs, mask):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return float(np.abs(ours - theirs)[mask.astype(bool)].max())


@pytest.fixture(scope="module")
def electra_ckpt(tmp_path_factory):
    variables = electra_variables()
    prefix = write_tf1_checkpoint(variables, str(tmp_path_factory.mktemp("orig") /
                                                 "model.ckpt-1000"))
    return variables, prefix


def test_original_checkpoint_assigns_every_variable_once(electra_ckpt):
    variables, prefix = electra_ckpt
    model = ElectraPretrainer(ELECTRA)
    report = checkpoints.load_tf1_checkpoint(model, prefix)
    assert sorted(report.assigned) == sorted(variables)
    assert len(report.assigned) == len(model.weights)
    assert "global_step" in report.skipped and all(
        n.endswith(("adam_m", "adam_v", "global_step")) for n in report.skipped)
    # Values land where the original name says, in this package's layout.
    query = model.discriminator.transformer.transformer_layers[1]._self_attention_layer
    np.testing.assert_array_equal(
        query._query_dense.kernel.numpy().reshape(32, 32),
        variables["electra/encoder/layer_1/attention/self/query/kernel"])
    np.testing.assert_array_equal(
        model.embeddings.word_embeddings.embeddings.numpy(),
        variables["electra/embeddings/word_embeddings"])
    np.testing.assert_array_equal(model.generator_head.output_bias.numpy(),
                                  variables["generator_predictions/output_bias"])
    np.testing.assert_array_equal(
        model.generator.transformer.embeddings_project.kernel.numpy(),
        variables["generator/embeddings_project/kernel"])


def test_original_checkpoint_matches_hf_on_the_same_weights(electra_ckpt):
    """The original layout, read by us, computes what HF computes from the same weights."""
    variables, prefix = electra_ckpt
    model = ElectraPretrainer(ELECTRA)
    checkpoints.load_tf1_checkpoint(model, prefix)
    hf_config = transformers.ElectraConfig(
        vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=128, max_position_embeddings=64,
        hidden_act="gelu")  # the original ELECTRA code's erf GELU
    hf = transformers.ElectraForPreTraining(hf_config).eval()
    result = hf.load_state_dict(to_hf_state(variables, "electra", "electra."), strict=False)
    assert not result.unexpected_keys and not [
        k for k in result.missing_keys if "position_ids" not in k]
    batch = padded_two_segment_batch(ELECTRA)
    with torch.no_grad():
        hf_out = hf(**torch_inputs(batch), output_hidden_states=True)
    ours = model.discriminator(batch)["sequence_output"].numpy()
    assert max_diff(ours, hf_out.hidden_states[-1].numpy(), batch["input_mask"]) < TOL
    assert max_diff(model.discriminator_logits(batch), hf_out.logits.numpy(),
                    batch["input_mask"]) < TOL


def test_missing_unexpected_and_misshapen_variables_are_clear_errors(tmp_path):
    variables = electra_variables()
    no_layer = dict(variables)
    del no_layer["electra/encoder/layer_1/output/dense/kernel"]
    prefix = write_tf1_checkpoint(no_layer, str(tmp_path / "a" / "model.ckpt-1"), False)
    with pytest.raises(CheckpointMismatchError,
                       match="missing from .*electra/encoder/layer_1/output/dense/kernel"):
        checkpoints.load_tf1_checkpoint(ElectraPretrainer(ELECTRA), prefix)

    extra = dict(variables)
    extra["electra/encoder/layer_2/output/dense/bias"] = np.zeros(32, "float32")
    prefix = write_tf1_checkpoint(extra, str(tmp_path / "b" / "model.ckpt-1"), False)
    with pytest.raises(CheckpointMismatchError,
                       match="not in the model.*electra/encoder/layer_2/output/dense/bias"):
        checkpoints.load_tf1_checkpoint(ElectraPretrainer(ELECTRA), prefix)

    wider = ELECTRA.replace(intermediate_size=96)
    prefix = write_tf1_checkpoint(variables, str(tmp_path / "c" / "model.ckpt-1"), False)
    with pytest.raises(CheckpointMismatchError,
                       match=r"electra/encoder/layer_0/intermediate/dense/kernel \(32, 128\) "
                             r"vs model \(32, 96\)"):
        checkpoints.load_tf1_checkpoint(ElectraPretrainer(wider), prefix)


def test_missing_heads_need_allow_missing(tmp_path):
    variables = {k: v for k, v in electra_variables().items()
                 if not k.startswith("discriminator_predictions/")}
    prefix = write_tf1_checkpoint(variables, str(tmp_path / "model.ckpt-1"), False)
    with pytest.raises(CheckpointMismatchError, match="--allow_missing"):
        checkpoints.load_tf1_checkpoint(ElectraPretrainer(ELECTRA), prefix)
    report = checkpoints.load_tf1_checkpoint(ElectraPretrainer(ELECTRA), prefix,
                                             allow_missing=True)
    assert sorted(report.missing_heads) == sorted(
        f"discriminator_predictions/{n}/{p}" for n in ("dense", "dense_1")
        for p in ("kernel", "bias"))


def test_encoder_target_takes_the_discriminator_and_skips_the_rest(electra_ckpt):
    variables, prefix = electra_ckpt
    encoder = Encoder(ELECTRA)
    report = checkpoints.load_tf1_checkpoint(encoder, prefix)
    assert sorted(report.assigned) == sorted(
        n for n in variables if n.startswith("electra/"))
    assert "generator/encoder/layer_0/output/dense/kernel" in report.skipped
    assert "discriminator_predictions/dense/kernel" in report.skipped


def test_config_inferred_from_checkpoint_shapes(electra_ckpt):
    _, prefix = electra_ckpt
    config = checkpoints.config_from_tf1(os.path.dirname(prefix))
    for field in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                  "intermediate_size", "max_position_embeddings", "generator_hidden_size",
                  "generator_layers", "untied_generator_embeddings"):
        assert getattr(config, field) == getattr(ELECTRA, field), field
    # Heads are not in the shapes: hidden // 64 as in the original's table (the debug
    # model has 2; the CLI says it inferred 1, and --model_size fixes it).
    assert config.num_attention_heads == 1 and config.size == "from-checkpoint"


def test_bert_checkpoint_with_pooler_and_nsp_head(tmp_path):
    variables = bert_variables()
    prefix = write_tf1_checkpoint(variables, str(tmp_path / "model.ckpt-7"))
    model = BertPretrainer(BERT)
    report = checkpoints.load_tf1_checkpoint(model, prefix)
    assert {"bert/pooler/dense/kernel", "cls/seq_relationship/output_weights/kernel"} <= set(
        report.skipped)
    assert len(report.assigned) == len(model.weights)
    hf = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64, hidden_act="gelu")).eval()
    hf.load_state_dict(to_hf_state(variables, "bert", "bert."), strict=False)
    batch = padded_two_segment_batch(BERT)
    with torch.no_grad():
        hf_logits = hf(**torch_inputs(batch)).logits.numpy()
    positions = np.tile(np.arange(16, dtype="int32"), (2, 1))
    ours = model(dict(batch, masked_lm_positions=positions))["mlm_logits"].numpy()
    assert max_diff(ours, hf_logits, batch["input_mask"]) < TOL


def test_round_trip_original_to_hf_to_this_package(electra_ckpt, tmp_path):
    variables, prefix = electra_ckpt
    first = ElectraPretrainer(ELECTRA, seed=5)
    checkpoints.load_tf1_checkpoint(first, prefix)
    checkpoints.save_hf(first, str(tmp_path / "hf"))
    second, report = checkpoints.model_from_hf(str(tmp_path / "hf"))
    assert second.model_config == ELECTRA and len(report.assigned) == len(second.weights)
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    batch = padded_two_segment_batch(ELECTRA)
    np.testing.assert_array_equal(first.discriminator_logits(batch).numpy(),
                                  second.discriminator_logits(batch).numpy())
    # ... and back to the original layout, byte for byte.
    out_prefix = str(tmp_path / "back" / "model.ckpt-1000")
    checkpoints.save_tf1_checkpoint(second, out_prefix)
    import tensorflow as tf
    reader = tf.train.load_checkpoint(out_prefix)
    assert set(reader.get_variable_to_shape_map()) == set(variables)
    for name, value in variables.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value, err_msg=name)


def test_ale_exports_unrolled_and_refuses_unequal_layers(tmp_path):
    config = get_config("ale", "debug", dict(vocab_size=500, max_position_embeddings=32,
                                             num_hidden_layers=4, num_layer_groups=2))
    model = Encoder(config)
    report = checkpoints.save_hf(model, str(tmp_path / "ale"))
    assert any("repeated" in note for note in report.notes)
    hf = transformers.ElectraModel.from_pretrained(str(tmp_path / "ale")).eval()
    batch = padded_two_segment_batch(config)
    with torch.no_grad():
        theirs = hf(**torch_inputs(batch)).last_hidden_state.numpy()
    ours = model(batch)["sequence_output"].numpy()
    assert max_diff(ours, theirs, batch["input_mask"]) < TOL
    back, _ = checkpoints.model_from_hf(str(tmp_path / "ale"), target="encoder")
    assert back.model_config.num_layer_groups == 2
    np.testing.assert_array_equal(back(batch)["sequence_output"].numpy(), ours)
    # A real 4-layer HF model has four different layers: it cannot become 2 groups.
    hf.save_pretrained(str(tmp_path / "plain"))
    hf_config = transformers.ElectraConfig.from_pretrained(str(tmp_path / "plain"))
    unshared = transformers.ElectraModel(hf_config)
    unshared.save_pretrained(str(tmp_path / "plain"))
    with pytest.raises(CheckpointMismatchError, match="encoder.layer.1.* differs from "
                                                      "encoder.layer.0"):
        checkpoints.load_hf(Encoder(config), str(tmp_path / "plain"))


def test_convert_cli_in_each_direction(electra_ckpt, tmp_path):
    _, prefix = electra_ckpt
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "electra_tf.run_convert", *args],
                              capture_output=True, text=True, timeout=300, env=env)

    keras_path = str(tmp_path / "electra.keras")
    result = run(f"--input={prefix}", "--model_size=debug",
                 '--model_hparam_overrides={"vocab_size": 1000, "max_position_embeddings": 64,'
                 ' "dropout_rate": 0.0}', f"--output={keras_path}")
    assert result.returncode == 0, result.stderr
    assert "read: assigned 82 variables" in result.stdout
    assert "wrote " + keras_path in result.stdout
    # The other directions in this process (the CLI's start-up is paid once above).
    assert "wrote Hugging Face folder" in convert_here(f"--input={keras_path}",
                                                       f"--output={tmp_path / 'hf'}")
    assert sorted(os.listdir(tmp_path / "hf")) == ["discriminator", "generator"]
    convert_here(f"--input={tmp_path / 'hf'}", "--target=encoder",
                 f"--output={tmp_path / 'encoder.keras'}")
    encoder = keras.models.load_model(tmp_path / "encoder.keras")
    assert isinstance(encoder, Encoder) and encoder.model_config == ELECTRA
    np.testing.assert_array_equal(
        encoder.embeddings.word_embeddings.embeddings.numpy(),
        keras.models.load_model(keras_path).embeddings.word_embeddings.embeddings.numpy())
    assert "wrote TF1 checkpoint" in convert_here(
        f"--input={keras_path}", "--output_format=tf1",
        f"--output={tmp_path / 'tf1' / 'model.ckpt-5'}")
    assert os.path.exists(tmp_path / "tf1" / "model.ckpt-5.index")
    with pytest.raises(ValueError, match="only apply to TF1 input"):
        convert_here(f"--input={tmp_path / 'hf'}", "--model_size=small",
                     f"--output={tmp_path / 'y.keras'}")
    result = run(f"--input={tmp_path / 'nowhere'}", f"--output={tmp_path / 'x.keras'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # (TensorFlow's C++ start-up lines come first; they are not ours to silence.)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("electra-convert: error:") and "nowhere" in last


def test_untied_generator_embeddings_round_trip(tmp_path):
    config = ELECTRA.replace(untied_generator_embeddings=True)
    model = ElectraPretrainer(config, seed=1)
    checkpoints.save_hf(model, str(tmp_path / "hf"))
    back, _ = checkpoints.model_from_hf(str(tmp_path / "hf"))
    assert back.model_config.untied_generator_embeddings
    checkpoints.save_tf1_checkpoint(model, str(tmp_path / "tf1" / "model.ckpt-3"))
    assert checkpoints.config_from_tf1(str(tmp_path / "tf1")) == config
    again = build_pretrainer(config)
    report = checkpoints.load_tf1_checkpoint(again, str(tmp_path / "tf1"))
    assert "generator/embeddings/word_embeddings" in report.assigned
    batch = padded_two_segment_batch(config)
    positions = np.tile(np.arange(16, dtype="int32"), (2, 1))
    for other in (back, again):
        for a, b in zip(model.weights, other.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
        np.testing.assert_array_equal(model.generator_logits(batch, positions).numpy(),
                                      other.generator_logits(batch, positions).numpy())


def test_checkpoint_paths_and_destinations(electra_ckpt, tmp_path):
    _, prefix = electra_ckpt
    model = ElectraPretrainer(ELECTRA)
    checkpoints.load_tf1_checkpoint(model, prefix + ".index")  # the .index file itself
    lonely = tmp_path / "no_checkpoint_file"
    checkpoints.save_tf1_checkpoint(model, str(lonely / "model.ckpt-9"))
    os.remove(lonely / "checkpoint")
    checkpoints.load_tf1_checkpoint(ElectraPretrainer(ELECTRA), str(lonely))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not an electra-tf export"):
        checkpoints.save_hf(model, str(precious))
    assert (precious / "notes.txt").read_text() == "keep me"
    checkpoints.save_hf(model, str(tmp_path / "export"))
    checkpoints.save_hf(model, str(tmp_path / "export"))  # an earlier export is replaced
    assert sorted(os.listdir(tmp_path / "export")) == ["discriminator", "generator"]
