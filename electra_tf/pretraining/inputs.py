"""Pretraining input pipeline: TFRecord shards -> batches with dynamic masking, in graph.

Reads the original's features (``input_ids``, ``input_mask``, ``segment_ids``), shards
files per input pipeline through ``tf.distribute.InputContext``, interleaves, shuffles,
repeats, batches with static shapes (``drop_remainder``, for TPUs) and masks each batch
afresh every time it is read:

* candidates: real tokens other than [CLS], [SEP], [MASK] and [PAD];
* how many: round(mask_prob x real tokens), at least 1, at most
  ``max_predictions_per_seq`` = int((mask_prob + 0.005) x seq_len) (the original's) and
  at most the number of candidates;
* which: uniformly without replacement (random keys, top-k), so no position is chosen
  twice;
* what: ELECTRA replaces 85% of the chosen tokens with [MASK] and keeps 15%; BERT uses
  80% [MASK] / 10% random token / 10% kept.

Outputs ``input_ids`` (masked), ``input_mask``, ``segment_ids``, ``masked_lm_positions``,
``masked_lm_ids`` (the original tokens) and ``masked_lm_weights`` (1.0 real, 0.0
padding), padded to max_predictions_per_seq. Randomness is stateless, keyed by the seed
and the batch's index, so a seeded pipeline is reproducible.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from electra_tf.files import is_local
from electra_tf.tokenization import SpecialIds

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")
MASKING = {"electra": (0.85, 0.0), "bert": (0.8, 0.1)}  # ([MASK] rate, random-token rate)


def max_predictions_per_seq(mask_prob: float, seq_len: int) -> int:
    """The original's cap on masked positions: int((mask_prob + 0.005) * seq_len)."""
    return int((mask_prob + 0.005) * seq_len)


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """How to mask. ``style`` "electra" (85/15/0) or "bert" (80/10/10)."""

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


def _check_first_record(path: str, max_seq_length: int) -> None:
    """A clear error for shards that do not hold the expected features."""
    try:
        records = list(tf.data.TFRecordDataset(path).take(1))
    except tf.errors.DataLossError:
        raise ValueError(f"{path}: not a TFRecord file (corrupted record 0)") from None
    for record in records:
        example = tf.train.Example.FromString(record.numpy())
        for name in FEATURE_NAMES:
            if name not in example.features.feature:
                raise ValueError(f"{path}: record 0 has no feature {name!r} (has "
                                 f"{sorted(example.features.feature)}); not a pretraining "
                                 f"TFRecord")
            length = len(example.features.feature[name].int64_list.value)
            if length != max_seq_length:
                raise ValueError(f"{path}: record 0: {name} has {length} values, expected "
                                 f"max_seq_length={max_seq_length}")
        return
    raise ValueError(f"{path}: empty TFRecord file")


def make_dataset(file_pattern: str | list[str], batch_size: int, max_seq_length: int,
                 masking: MaskingConfig, is_training: bool = True,
                 input_context: tf.distribute.InputContext | None = None,
                 seed: int | None = None, shuffle_buffer: int = 10000) -> tf.data.Dataset:
    """Batches of masked pretraining examples from TFRecord shards.

    `batch_size` is global; with an `input_context` each pipeline gets its share of the
    files (or, with fewer files than pipelines, of the records) and the per-replica batch.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no TFRecord files match {', '.join(patterns)}")
    # Each shard's first record: a stray file matched by the pattern fails here, by name.
    # Remote shards (gs://) cost a request each, so only the first few are read.
    remote = not is_local(files[0])
    for path in files[:8] if remote else files:
        _check_first_record(path, max_seq_length)
    per_replica_batch = batch_size
    dataset = tf.data.Dataset.from_tensor_slices(files)
    pipelines = input_context.num_input_pipelines if input_context else 1
    if input_context is not None:
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
    if len(files) >= pipelines:
        # Each pipeline reads its own files.
        if input_context is not None:
            dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
        if is_training:
            dataset = dataset.shuffle(len(files), seed=seed).repeat()
        dataset = dataset.interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=seed is not None or not is_training)
    else:
        # Fewer files than pipelines: every pipeline reads all records in the same
        # fixed order and keeps its own share, so shares never overlap.
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=len(files))
        dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
        if is_training:
            dataset = dataset.repeat()
    if is_training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURE_NAMES}
    # Batch the serialized records first: one vectorized parse per batch.
    dataset = dataset.batch(per_replica_batch, drop_remainder=True)
    dataset = dataset.map(lambda records: tf.io.parse_example(records, spec),
                          num_parallel_calls=tf.data.AUTOTUNE)
    base = tf.constant([seed if seed is not None else 0,
                        input_context.input_pipeline_id if input_context else 0], tf.int64)
    random_base = seed is None

    def masked(index, features):
        key = base + tf.stack([tf.constant(0, tf.int64), index * 1000003])
        if random_base:
            key = tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
        return mask_batch(features, masking, key)

    dataset = dataset.enumerate().map(masked, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
