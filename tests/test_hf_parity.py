"""Parity with Hugging Face transformers on identical weights, in both directions."""

import os

import numpy as np
import pytest
import torch
import transformers
from original_layout import torch_inputs
from test_checkpoints import TOL, max_diff, padded_two_segment_batch

from electra_tf import checkpoints
from electra_tf.configs import get_config
from electra_tf.modeling import BertPretrainer, ElectraPretrainer, Encoder

SIZES = dict(vocab_size=600, max_position_embeddings=32, type_vocab_size=2)


def all_positions(batch):
    length = batch["input_ids"].shape[1]
    return np.tile(np.arange(length, dtype="int32"), (len(batch["input_ids"]), 1))


@pytest.fixture(scope="module")
def hf_electra(tmp_path_factory):
    """A random HF ELECTRA pair (factorized embedding, generator 1/4) saved as Google did."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_electra")
    disc_config = transformers.ElectraConfig(
        embedding_size=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, **SIZES)
    gen_config = transformers.ElectraConfig(
        embedding_size=16, hidden_size=16, num_hidden_layers=2, num_attention_heads=1,
        intermediate_size=64, **SIZES)
    disc = transformers.ElectraForPreTraining(disc_config).eval()
    gen = transformers.ElectraForMaskedLM(gen_config).eval()
    # Random init is near-trivial for LayerNorms and biases: perturb every parameter so
    # a wrong mapping cannot hide behind zeros and ones.
    with torch.no_grad():
        for module in (disc, gen):
            for parameter in module.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    disc.save_pretrained(root / "discriminator")
    gen.save_pretrained(root / "generator")
    return root, disc, gen


def test_hf_electra_into_this_package_matches(hf_electra):
    root, disc, gen = hf_electra
    model, report = checkpoints.model_from_hf(str(root))
    assert isinstance(model, ElectraPretrainer)
    assert len(report.assigned) == len(model.weights)
    config = model.model_config
    assert (config.hidden_act, config.embedding_size, config.generator_hidden_size) == (
        "gelu", 16, 0.25)
    batch = padded_two_segment_batch(config)
    with torch.no_grad():
        disc_out = disc(**torch_inputs(batch), output_hidden_states=True)
        gen_logits = gen(**torch_inputs(batch)).logits.numpy()
    mask = batch["input_mask"]
    hidden = model.discriminator(batch)["sequence_output"].numpy()
    assert max_diff(hidden, disc_out.hidden_states[-1].numpy(), mask) < TOL
    assert max_diff(model.discriminator_logits(batch), disc_out.logits.numpy(), mask) < TOL
    ours = model.generator_logits(batch, all_positions(batch)).numpy()
    assert max_diff(ours, gen_logits, mask) < TOL


def test_hf_electra_model_into_encoder_matches(hf_electra, tmp_path):
    root, disc, _ = hf_electra
    disc.electra.save_pretrained(tmp_path / "bare")  # a bare ElectraModel, no prefix
    encoder, report = checkpoints.model_from_hf(str(tmp_path / "bare"), target="encoder")
    assert isinstance(encoder, Encoder) and not report.skipped
    # ... and the *ForPreTraining folder as an encoder: the head is skipped, not an error.
    encoder2, report2 = checkpoints.model_from_hf(str(root / "discriminator"),
                                                  target="encoder")
    assert any(k.startswith("discriminator_predictions.") for k in report2.skipped)
    batch = padded_two_segment_batch(encoder.model_config)
    with torch.no_grad():
        theirs = disc.electra(**torch_inputs(batch)).last_hidden_state.numpy()
    for model in (encoder, encoder2):
        ours = model(batch)["sequence_output"].numpy()
        assert max_diff(ours, theirs, batch["input_mask"]) < TOL


def test_hf_bert_matches(tmp_path):
    torch.manual_seed(1)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128, **SIZES)
    bert = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():
        for parameter in bert.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    bert.save_pretrained(tmp_path / "mlm")
    bert_model = transformers.BertModel(config).eval()
    bert_model.load_state_dict(bert.bert.state_dict(), strict=False)
    bert_model.save_pretrained(tmp_path / "bare")

    model, _ = checkpoints.model_from_hf(str(tmp_path / "mlm"))
    encoder, report = checkpoints.model_from_hf(str(tmp_path / "bare"), target="encoder")
    assert isinstance(model, BertPretrainer)
    assert any(k.startswith("pooler.") for k in report.skipped)
    batch = padded_two_segment_batch(model.model_config)
    with torch.no_grad():
        logits = bert(**torch_inputs(batch)).logits.numpy()
        hidden = bert_model(**torch_inputs(batch)).last_hidden_state.numpy()
    mask = batch["input_mask"]
    ours = model(dict(batch, masked_lm_positions=all_positions(batch)))["mlm_logits"]
    assert max_diff(ours.numpy(), logits, mask) < TOL
    assert max_diff(encoder(batch)["sequence_output"].numpy(), hidden, mask) < TOL


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_approximate"])
def test_export_loads_in_transformers_with_the_same_outputs(hidden_act, tmp_path):
    config = get_config("electra", "debug", dict(SIZES, hidden_act=hidden_act))
    model = ElectraPretrainer(config)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # move LayerNorms and biases off their init values
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    report = checkpoints.save_hf(model, str(tmp_path / "hf"))
    disc = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "hf/discriminator")
    gen = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "hf/generator")
    batch = padded_two_segment_batch(config)
    with torch.no_grad():
        disc_logits = disc.eval()(**torch_inputs(batch)).logits.numpy()
        gen_logits = gen.eval()(**torch_inputs(batch)).logits.numpy()
    mask = batch["input_mask"]
    assert max_diff(model.discriminator_logits(batch), disc_logits, mask) < TOL
    gen_diff = max_diff(model.generator_logits(batch, all_positions(batch)), gen_logits, mask)
    if hidden_act == "gelu":
        assert gen_diff < TOL and not report.notes
    else:
        # HF's generator head is fixed to exact GELU: close, and the export says so.
        assert gen_diff < 0.05
        assert any("exact GELU" in note for note in report.notes)


def test_reads_pytorch_bin_and_legacy_layer_norm_names(hf_electra, tmp_path):
    _, disc, _ = hf_electra
    folder = tmp_path / "bin"
    folder.mkdir()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma")
             .replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in disc.electra.state_dict().items()}
    torch.save(state, folder / "pytorch_model.bin")
    disc.electra.config.to_json_file(folder / "config.json")
    encoder, _ = checkpoints.model_from_hf(str(folder), target="encoder")
    batch = padded_two_segment_batch(encoder.model_config)
    with torch.no_grad():
        theirs = disc.electra(**torch_inputs(batch)).last_hidden_state.numpy()
    assert max_diff(encoder(batch)["sequence_output"].numpy(), theirs,
                    batch["input_mask"]) < TOL


def test_bad_hf_folders_are_clear_errors(hf_electra, tmp_path):
    root, _, _ = hf_electra
    with pytest.raises(FileNotFoundError, match="no config.json"):
        checkpoints.model_from_hf(str(tmp_path))
    with pytest.raises(ValueError, match="needs a folder with discriminator/ and generator/"):
        checkpoints.model_from_hf(str(root / "discriminator"))
    wrong = get_config("electra", "debug", dict(SIZES, hidden_size=48, num_attention_heads=2))
    with pytest.raises(checkpoints.CheckpointMismatchError, match="vs model"):
        checkpoints.load_hf(Encoder(wrong), str(root / "discriminator"))
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="neither model.safetensors"):
        checkpoints.read_hf_folder(str(tmp_path / "empty"))


def test_bert_pretrainer_export_loads_in_transformers(tmp_path):
    config = get_config("bert", "debug", dict(SIZES, embedding_size=32))
    model = BertPretrainer(config)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    checkpoints.save_hf(model, str(tmp_path / "bert"))
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path / "bert").eval()
    batch = padded_two_segment_batch(config)
    with torch.no_grad():
        theirs = hf(**torch_inputs(batch)).logits.numpy()
    ours = model(dict(batch, masked_lm_positions=all_positions(batch)))["mlm_logits"].numpy()
    assert max_diff(ours, theirs, batch["input_mask"]) < TOL
