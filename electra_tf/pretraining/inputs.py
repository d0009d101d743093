"""Pretraining input pipeline: TFRecord shards -> batches with dynamic masking, in graph.

Reads the original's features (``input_ids``, ``input_mask``, ``segment_ids``), shards
files per input pipeline through ``tf.distribute.InputContext``, interleaves, shuffles,
repeats, batches with static shapes (``drop_remainder``, for TPUs) and masks each batch
afresh every time it is read (:func:`electra_tf.masking.mask_batch`). Randomness is
stateless, keyed by the seed and the batch's index, so a seeded pipeline is reproducible.
"""

from __future__ import annotations

import tensorflow as tf

from electra_tf.files import glob, is_local
from electra_tf.masking import MaskingConfig, mask_batch

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")


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
    files = sorted(f for p in patterns for f in glob(p))
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
