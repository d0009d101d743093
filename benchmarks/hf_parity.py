"""Measurement: how far this package's ELECTRA-Small is from transformers' on the same weights.

Exports a randomly perturbed ELECTRA-Small pretrainer (official shapes) to Hugging Face,
loads it with ElectraForPreTraining / ElectraForMaskedLM and prints the largest absolute
differences on a padded, two-segment batch. The tests assert < 1e-4 on debug shapes.

  python benchmarks/hf_parity.py
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from original_layout import torch_inputs  # noqa: E402
from test_checkpoints import padded_two_segment_batch  # noqa: E402

from electra_tf import checkpoints  # noqa: E402
from electra_tf.configs import get_config  # noqa: E402
from electra_tf.modeling import ElectraPretrainer  # noqa: E402


def main():
    config = get_config("electra", "small")
    model = ElectraPretrainer(config)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    folder = tempfile.mkdtemp(prefix="parity-")
    checkpoints.save_hf(model, os.path.join(folder, "hf"))
    disc = transformers.ElectraForPreTraining.from_pretrained(
        os.path.join(folder, "hf", "discriminator")).eval()
    gen = transformers.ElectraForMaskedLM.from_pretrained(
        os.path.join(folder, "hf", "generator")).eval()
    batch = padded_two_segment_batch(config)
    mask = batch["input_mask"].astype(bool)
    with torch.no_grad():
        theirs = disc(**torch_inputs(batch), output_hidden_states=True)
        gen_logits = gen(**torch_inputs(batch)).logits.numpy()
    positions = np.tile(np.arange(batch["input_ids"].shape[1], dtype="int32"), (2, 1))
    rows = {
        "discriminator hidden states": (model.discriminator(batch)["sequence_output"],
                                        theirs.hidden_states[-1]),
        "discriminator logits": (model.discriminator_logits(batch), theirs.logits),
        "generator logits": (model.generator_logits(batch, positions), gen_logits),
    }
    for name, (ours, hf) in rows.items():
        diff = np.abs(np.asarray(ours) - np.asarray(hf))[mask].max()
        print(f"{name:<28} max |diff| = {diff:.2e}")


if __name__ == "__main__":
    main()
