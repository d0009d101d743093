"""Featurized splits cached as TFRecords, keyed by everything that shapes them.

The original cached ``<task>_<split>.tfrecord`` by name only and silently reused a stale
file after the vocab, the sequence length or the data changed. Here the file name
carries a key over the task's options, the split, the vocab's tokens, the casing, the
sequence length and the examples themselves, so any change featurizes again:
``<cache_dir>/<task>.<split>.<key>.tfrecord`` plus a ``.json`` with the shapes, the example
ids and the task's extras. Both are written to temporary names and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid

import numpy as np
import tensorflow as tf

from electra_tf import files
from electra_tf.tasks.specs import Features, Task

# Part of every key: raise it when featurization changes, so old caches are not reused.
# 2: RACE no longer repeats the option after a filled blank; 3: words cut off per sentence;
# 4: QA extras hold the question text
FEATURES_VERSION = 4


def cache_key(task: Task, split: str, examples: list, vocab: list[str], do_lower_case: bool,
              max_seq_length: int) -> str:
    """16 hex digits of a sha256 over everything the features depend on."""
    digest = hashlib.sha256()
    options = {"version": FEATURES_VERSION, "task": task.name, "kind": task.kind, "split": split,
               "max_seq_length": max_seq_length, "do_lower_case": do_lower_case,
               "options": task.cache_options()}
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update("\n".join(vocab).encode())
    for example in examples:
        digest.update(json.dumps(dataclasses.asdict(example), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _write(path: str, features: Features) -> None:
    arrays = dict(features.inputs)
    if features.labels is not None:
        arrays["label"] = features.labels
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"  # writers sharing the folder do not collide
    with tf.io.TFRecordWriter(tmp) as writer:
        for i in range(len(features)):
            feature = {}
            for name, array in arrays.items():
                values = array[i].reshape(-1)
                if array.dtype.kind == "f":
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    files.rename(tmp, path)


def _read(path: str, meta: dict) -> Features:
    specs = {name: tf.io.FixedLenFeature(shape, tf.float32 if dtype == "float32" else tf.int64)
             for name, (shape, dtype) in meta["arrays"].items()}
    count = len(meta["guids"])
    arrays = {name: [] for name in specs}
    if count:
        data = tf.data.TFRecordDataset(path).batch(4096).map(
            lambda records: tf.io.parse_example(records, specs))
        for batch in data:
            for name, value in batch.items():
                arrays[name].append(value.numpy())
    out = {}
    for name, (shape, dtype) in meta["arrays"].items():
        parts = arrays[name]
        out[name] = (np.concatenate(parts) if parts else np.zeros((0, *shape))).astype(dtype)
    labels = out.pop("label", None)
    return Features(out, labels, list(meta["guids"]), dict(meta["extra"]))


def cached_features(task: Task, split: str, examples: list, tokenizer, max_seq_length: int,
                    cache_dir: str, write: bool = True) -> tuple[Features, bool]:
    """(features, whether they came from the cache) for `examples` of `task`/`split`;
    with `write` off (a worker other than the chief) a miss is not written."""
    key = cache_key(task, split, examples, tokenizer.vocab, tokenizer.do_lower_case,
                    max_seq_length)
    path = files.join(cache_dir, f"{task.name}.{split}.{key}.tfrecord")
    meta_path = f"{path}.json"
    if files.exists(meta_path) and files.exists(path):
        return _read(path, files.read_json(meta_path)), True
    features = task.featurize(examples, tokenizer, max_seq_length)
    if not write:
        return features, False
    files.makedirs(cache_dir)
    _write(path, features)
    arrays = dict(features.inputs)
    if features.labels is not None:
        arrays["label"] = features.labels
    meta = {"arrays": {name: (list(a.shape[1:]), "float32" if a.dtype.kind == "f" else "int32")
                       for name, a in arrays.items()},
            "guids": features.guids, "extra": features.extra}
    files.write_json(meta_path, meta, indent=None)  # one line: it lists every example id
    return features, False
