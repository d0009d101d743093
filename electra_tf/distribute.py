"""The ``tf.distribute`` strategy a run uses, chosen by flags.

* ``default``: TensorFlow's default strategy — the CPU, or the first GPU if there is one.
* ``mirrored``: ``MirroredStrategy`` over all local GPUs (or the given devices).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``.
* ``tpu``: ``TPUStrategy`` through the cluster resolver (``tpu="local"`` for a Colab or
  TPU-VM runtime, or the TPU's name/grpc address).

A process should create one strategy: several collective strategies in one process
collide in TensorFlow's collective instance keys.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", tpu: str | None = None,
                  devices: list[str] | None = None) -> tf.distribute.Strategy:
    """The strategy called `name`; giving `tpu` implies ``name="tpu"``.

    Args:
      name: one of ``STRATEGIES``.
      tpu: TPU name or address for the cluster resolver; "local" for a TPU attached to
        this machine (Colab, TPU VM).
      devices: devices for ``mirrored`` (default: all GPUs, or the CPU without one).
    """
    if tpu:
        if name not in ("default", "tpu"):
            raise ValueError(f"--tpu={tpu} conflicts with --strategy={name}")
        name = "tpu"
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise ValueError("--strategy=multi_worker needs the cluster in the TF_CONFIG "
                             "environment variable (see tf.distribute.cluster_resolver."
                             "TFConfigClusterResolver)")
        try:
            json.loads(config)
        except json.JSONDecodeError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON ({e})") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if not tpu:
        raise ValueError("--strategy=tpu needs --tpu=<name>, or --tpu=local on Colab / a "
                         "TPU VM")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="local" if tpu == "local" else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def check_batch_size(strategy: tf.distribute.Strategy, batch_size: int,
                     what: str = "train_batch_size") -> int:
    """The per-replica batch; a global batch the replicas cannot split evenly is an error."""
    replicas = strategy.num_replicas_in_sync
    if batch_size < 1 or batch_size % replicas:
        raise ValueError(f"{what}={batch_size} must be a positive multiple of the "
                         f"{replicas} replicas of the {type(strategy).__name__}")
    return batch_size // replicas


def check_steps_per_execution(strategy: tf.distribute.Strategy, steps: int) -> None:
    """Keras 3 cannot run several steps per call under the merge-call strategies
    (keras-team/keras#19246: "You must feed a value for placeholder tensor"); say so
    up front."""
    merge_call = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    if steps > 1 and isinstance(strategy, merge_call):
        raise ValueError(f"steps_per_execution={steps} does not work under "
                         f"{type(strategy).__name__} in Keras 3 (keras-team/keras#19246); "
                         f"use 1 (it works on TPUs and the default strategy)")
