"""Pretraining losses against NumPy, and BERT / ELECTRA / ALE learning on a fixed batch."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_batch

from electra_tf.configs import get_config
from electra_tf.modeling import build_pretrainer
from electra_tf.modeling.losses import discriminator_loss, mlm_loss
from electra_tf.optimization import Lamb
from electra_tf.pretraining.objectives import PretrainingModel


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype("float32")
    ids = rng.integers(0, 7, (2, 3))
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
    expected = (ce * weights).sum() / (weights.sum() + 1e-6)
    assert float(mlm_loss(logits, ids, weights)) == pytest.approx(expected, rel=1e-5)

    rtd = rng.normal(size=(2, 5)).astype("float32")
    labels = rng.integers(0, 2, (2, 5))
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    p = 1 / (1 + np.exp(-rtd))
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    expected = (bce * mask).sum() / (mask.sum() + 1e-6)
    assert float(discriminator_loss(rtd, labels, mask)) == pytest.approx(expected, rel=1e-5)


# BERT and ALE learning is checked on real TFRecords by test_pretraining's budget runs.
@pytest.mark.parametrize("model_type", ["electra"])
def test_pretraining_learns_a_fixed_batch(model_type):
    config = get_config(model_type, "debug", {"vocab_size": 2000, "dropout_rate": 0.0})
    batch = make_batch(config, batch_size=8, seq_len=24, num_predictions=4, seed=1)
    batch["masked_lm_weights"] = batch["masked_lm_weights"].astype("float32")
    keras_seed = {"seed": 3} if model_type != "bert" else {}
    task = PretrainingModel(build_pretrainer(config, **keras_seed))
    task.compile(optimizer=Lamb(3e-2, weight_decay_rate=0.01,
                                exclude_from_weight_decay=["LayerNorm", "bias"],
                                global_clipnorm=1.0))
    dataset = tf.data.Dataset.from_tensors(batch).repeat(60)
    history = task.fit(dataset, epochs=1, verbose=0)
    first = task.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    expected = {"loss", "masked_lm_loss", "masked_lm_accuracy"}
    if model_type != "bert":
        expected |= {"sampled_masked_lm_accuracy", "disc_loss", "disc_accuracy",
                     "disc_precision", "disc_recall", "disc_auc"}
    assert expected <= set(history.history)
    fresh = PretrainingModel(build_pretrainer(config, **keras_seed))
    fresh.compile(optimizer=Lamb(5e-3))
    before = fresh.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0,
                            return_dict=True)
    assert first["masked_lm_loss"] < 0.5 * before["masked_lm_loss"]
    assert first["masked_lm_accuracy"] > before["masked_lm_accuracy"]
    if model_type != "bert":
        assert 0.0 <= first["disc_auc"] <= 1.0 and np.isfinite(first["disc_loss"])
