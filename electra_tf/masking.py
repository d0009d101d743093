"""Dynamic masking for masked-LM training (pretraining and TLM), in graph. For each
sequence of a batch:

* candidates: real tokens other than [CLS], [SEP], [MASK] and [PAD];
* how many: round(mask_prob x real tokens), at least 1, at most
  ``max_predictions_per_seq`` = int((mask_prob + 0.005) x seq_len) (the original's) and
  at most the number of candidates;
* which: uniformly without replacement (random keys, top-k), so no position is chosen
  twice;
* what: style "electra" replaces 85% of the chosen tokens with [MASK] and keeps 15%, as
  the original ELECTRA code does for every objective, its BERT baseline included; style
  "bert" is the BERT paper's 80% [MASK] / 10% random token / 10% kept ("BERT:
  Pre-training of Deep Bidirectional Transformers for Language Understanding", Devlin,
  Chang, Lee and Toutanova).

Outputs ``input_ids`` (masked), ``input_mask``, ``segment_ids``, ``masked_lm_positions``,
``masked_lm_ids`` (the original tokens) and ``masked_lm_weights`` (1.0 real, 0.0
padding), padded to max_predictions_per_seq. Randomness is stateless, keyed by the seed
given, so a seeded pipeline is reproducible.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from electra_tf.tokenization import SpecialIds

# style: ([MASK] rate, random-token rate); the rest of the chosen tokens stay as they are
MASKING = {
    "electra": (0.85, 0.0),  # the ELECTRA code's pretrain_helpers.mask, for BERT too
    "bert": (0.8, 0.1),  # the BERT paper's 80/10/10
}


def max_predictions_per_seq(mask_prob: float, seq_len: int) -> int:
    """The original's cap on masked positions: int((mask_prob + 0.005) * seq_len)."""
    return int((mask_prob + 0.005) * seq_len)


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """How to mask. ``style`` "electra" (85% [MASK] / 15% kept) or "bert" (80% [MASK] /
    10% random / 10% kept); see :data:`MASKING`."""

    special: SpecialIds
    vocab_size: int
    max_predictions: int
    mask_prob: float = 0.15
    style: str = "electra"

    def __post_init__(self):
        if self.style not in MASKING:
            raise ValueError(f"masking style {self.style!r}; allowed: {', '.join(MASKING)}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob={self.mask_prob} must be in (0, 1)")


def mask_batch(features: dict, config: MaskingConfig, seed) -> dict:
    """Dynamic masking of a batch; `seed` is a shape-[2] int tensor (stateless RNG)."""
    input_ids = tf.cast(features["input_ids"], tf.int32)
    input_mask = tf.cast(features["input_mask"], tf.int32)
    special = config.special
    n = config.max_predictions
    seq_len = tf.shape(input_ids)[1]
    candidates = tf.cast(input_mask, tf.bool)
    for token in (special.cls, special.sep, special.mask, special.pad):
        candidates &= tf.not_equal(input_ids, token)
    num_tokens = tf.cast(tf.reduce_sum(input_mask, -1), tf.float32)
    num_to_predict = tf.maximum(1, tf.minimum(
        n, tf.cast(tf.round(num_tokens * config.mask_prob), tf.int32)))
    num_to_predict = tf.minimum(num_to_predict,
                                tf.reduce_sum(tf.cast(candidates, tf.int32), -1))
    weights = tf.sequence_mask(num_to_predict, n, dtype=tf.float32)

    seeds = tf.random.experimental.stateless_split(seed, 3)
    keys = tf.random.stateless_uniform(tf.shape(input_ids), seeds[0])
    keys = tf.where(candidates, keys, -1.0)
    k = tf.minimum(n, seq_len)
    _, positions = tf.math.top_k(keys, k=k)
    positions = tf.pad(positions, [[0, 0], [0, n - k]])
    positions = positions * tf.cast(weights, tf.int32)
    masked_lm_ids = tf.gather(input_ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)

    mask_rate, random_rate = MASKING[config.style]
    draw = tf.random.stateless_uniform(tf.shape(positions), seeds[1])
    random_tokens = tf.random.stateless_uniform(
        tf.shape(positions), seeds[2], minval=0, maxval=config.vocab_size, dtype=tf.int32)
    replacement = tf.where(draw < mask_rate, special.mask,
                           tf.where(draw < mask_rate + random_rate, random_tokens,
                                    masked_lm_ids))
    where = tf.one_hot(positions, seq_len, dtype=tf.int32) * tf.cast(weights[..., None],
                                                                       tf.int32)
    chosen = tf.reduce_max(where, axis=1) > 0
    new_values = tf.reduce_max(where * replacement[..., None], axis=1)
    return {
        "input_ids": tf.where(chosen, new_values, input_ids),
        "input_mask": input_mask,
        "segment_ids": tf.cast(features["segment_ids"], tf.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": weights,
    }
