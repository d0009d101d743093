"""Pretraining batches and one-step set-ups shared by the tests and their worker scripts."""

import keras
import numpy as np

from electra_tf.configs import get_config
from electra_tf.modeling import build_pretrainer
from electra_tf.optimization import AdamWeightDecay
from electra_tf.pretraining.objectives import PretrainingModel


def make_batch(config, batch_size=2, seq_len=16, num_predictions=3, seed=0):
    """A pretraining batch with [CLS] ... [SEP] and padding in the second row."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(min(1000, config.vocab_size // 2), config.vocab_size,
                             (batch_size, seq_len)).astype("int32")
    input_ids[:, 0] = 101
    input_mask = np.ones((batch_size, seq_len), "int32")
    input_mask[1, seq_len - 4:] = 0
    input_ids[input_mask == 0] = 0
    positions = np.zeros((batch_size, num_predictions), "int32")
    weights = np.zeros((batch_size, num_predictions), "int32")
    for row in range(batch_size):
        real = int(input_mask[row].sum())
        chosen = rng.choice(np.arange(1, real), num_predictions - row % 2, replace=False)
        positions[row, :len(chosen)] = np.sort(chosen)
        weights[row, :len(chosen)] = 1
    masked_lm_ids = np.take_along_axis(input_ids, positions, axis=1) * weights
    masked_input_ids = input_ids.copy()
    for row in range(batch_size):
        masked_input_ids[row, positions[row][weights[row] > 0]] = 103  # [MASK]
    return {
        "input_ids": masked_input_ids,
        "input_mask": input_mask,
        "segment_ids": np.zeros((batch_size, seq_len), "int32"),
        "masked_lm_positions": positions,
        "masked_lm_ids": masked_lm_ids.astype("int32"),
        "masked_lm_weights": weights,
    }


def one_step_setup(objective="electra"):
    """A global batch of 4 and a function building a compiled PretrainingModel (call it
    inside the strategy's scope) whose one step is deterministic: dropout off and a
    near-zero temperature (Gumbel-max becomes argmax), so two runs can differ only in
    how the batch is split over replicas."""
    config = get_config(objective, "debug", {"vocab_size": 500, "dropout_rate": 0.0})
    batch = make_batch(config, batch_size=4, seq_len=16, num_predictions=3, seed=2)
    batch["masked_lm_weights"] = batch["masked_lm_weights"].astype("float32")
    extra = {} if objective == "bert" else {"temperature": 1e-6, "seed": 0}

    def build_task():
        keras.utils.set_random_seed(5)
        task = PretrainingModel(build_pretrainer(config, **extra))
        task.compile(optimizer=AdamWeightDecay(1e-3, weight_decay_rate=0.01,
                                              global_clipnorm=1.0))
        return task

    return batch, build_task
