"""TLM's input pipelines: task batches interleaved with batches of retrieved text.

Stage 1 follows the reference implementation's schedule: with ``external_ratio`` ρ1, step
``s`` (counted from 0) takes a task batch when ``(s + 1) % (ρ1 + 1) == 0`` and an external
batch otherwise, so every group of ρ1 + 1 steps holds ρ1 external batches followed by one
task batch; ρ1 = 0 is task batches only. Each stream shuffles and cycles on its own. Both
streams are masked for the MLM loss (task inputs too, as the reference's ``--mask_task``)
unless ``mask_task`` is off. Batches carry ``is_task`` (1 for task examples) and ``label``
(0 on external batches), so one structure serves both.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from electra_tf.masking import MaskingConfig, mask_batch
from electra_tf.tokenization import WordPieceTokenizer


def is_task_step(step, external_ratio: int):
    """Whether step `step` (from 0; an int or an int64 tensor) takes a task batch."""
    return (step + 1) % (external_ratio + 1) == 0


def encode_texts(texts: list[str], tokenizer: WordPieceTokenizer, max_seq_length: int,
                 chunk: int = 4096) -> dict[str, np.ndarray]:
    """``[CLS] text [SEP]`` per text, truncated to `max_seq_length` (the reference cuts each
    retrieved document at ``max_external_length`` as well), as int32 arrays."""
    n = len(texts)
    ids = np.zeros((n, max_seq_length), np.int32)
    mask = np.zeros((n, max_seq_length), np.int32)
    special = tokenizer.special
    for start in range(0, n, chunk):
        flat, splits = tokenizer.tokenize_batch(list(texts[start:start + chunk]))
        for row in range(len(splits) - 1):
            pieces = flat[splits[row]:splits[row + 1]][:max_seq_length - 2]
            length = len(pieces) + 2
            ids[start + row, :length] = [special.cls, *pieces.tolist(), special.sep]
            mask[start + row, :length] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}


def _stream(inputs: dict, labels: np.ndarray, is_task: int, batch_size: int, seed: int,
            input_context) -> tf.data.Dataset:
    data = dict(inputs, label=labels.astype(np.int32),
                is_task=np.full((len(labels),), is_task, np.int32))
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines,
                                input_context.input_pipeline_id)
    return dataset.shuffle(len(labels), seed=seed).repeat().batch(batch_size,
                                                                 drop_remainder=True)


def _masked(dataset: tf.data.Dataset, masking: MaskingConfig, seed: int,
            apply: bool = True) -> tf.data.Dataset:
    """Batches with the masked-LM fields; with `apply` off, nothing is masked and every
    prediction slot has weight 0 (the same structure, no MLM loss)."""
    def mask(index, batch):
        if not apply:
            empty = tf.zeros([tf.shape(batch["input_ids"])[0], masking.max_predictions],
                             tf.int32)
            return dict(batch, masked_lm_positions=empty, masked_lm_ids=empty,
                        masked_lm_weights=tf.zeros_like(empty, tf.float32))
        key = tf.stack([tf.constant(seed, tf.int64), index * 1000003])
        return dict(batch, **mask_batch(batch, masking, key))

    return dataset.enumerate().map(mask, num_parallel_calls=tf.data.AUTOTUNE)


def _split_labels(batch):
    labels = batch.pop("label")
    return batch, labels


def joint_dataset(task: dict[str, np.ndarray], task_labels: np.ndarray,
                  external: dict[str, np.ndarray] | None, batch_size: int,
                  external_ratio: int, masking: MaskingConfig, mask_task: bool = True,
                  seed: int = 0, start_step: int = 0,
                  input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Stage 1's batches from step `start_step` on: (inputs, labels) with the masked-LM
    fields, ``is_task`` and the task labels. `external` None (or ρ1 = 0): task batches only.
    `batch_size` is global."""
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    seed_base = seed + 7919 * start_step  # a resumed run draws fresh batches
    # Each worker masks its own share differently.
    mask_seed = seed_base + 104729 * (input_context.input_pipeline_id if input_context else 0)
    task_stream = _masked(_stream(task, task_labels, 1, batch_size, seed_base, input_context),
                          masking, mask_seed, apply=mask_task)
    if external is None or external_ratio == 0:
        return task_stream.map(_split_labels).prefetch(tf.data.AUTOTUNE)
    n = len(external["input_ids"])
    external_stream = _masked(
        _stream(external, np.zeros((n,), np.int32), 0, batch_size, seed_base + 1,
                input_context), masking, mask_seed + 1)
    choice = tf.data.Dataset.counter(start_step).map(
        lambda step: tf.cast(is_task_step(step, external_ratio), tf.int64))
    if input_context is not None:
        # A worker's replicas take consecutive batches of its one dataset: every replica
        # of a step must draw from the same stream.
        local = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        if local > 1:
            choice = choice.flat_map(lambda c: tf.data.Dataset.from_tensors(c).repeat(local))
    dataset = tf.data.Dataset.choose_from_datasets([external_stream, task_stream], choice)
    return dataset.map(_split_labels).prefetch(tf.data.AUTOTUNE)


def task_dataset(task: dict[str, np.ndarray], task_labels: np.ndarray, batch_size: int,
                 seed: int = 0, input_context=None) -> tf.data.Dataset:
    """Stage 2's batches: the task alone, unmasked, shuffled and repeated."""
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    stream = _stream(task, task_labels, 1, batch_size, seed, input_context)
    return stream.map(_split_labels).prefetch(tf.data.AUTOTUNE)
