"""One worker of the two-worker test (``tests/test_multi_worker.py``): the cluster comes
from TF_CONFIG. It trains one step on its half of a fixed global batch, then pretrains a
few steps into the shared run folder, and writes what it saw to ``<out>/worker-<i>.*``.

Usage: python multi_worker_run.py OUT_DIR DATA_DIR VOCAB TFRECORDS
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from electra_tf import startup  # noqa: E402

startup.skip_keras_extras()  # a worker of a command starts as the command does

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batches import one_step_setup  # noqa: E402

from electra_tf.distribute import make_strategy  # noqa: E402
from electra_tf.pretraining.config import PretrainingConfig  # noqa: E402
from electra_tf.pretraining.trainer import pretrain  # noqa: E402


def main(out_dir, data_dir, vocab, tfrecords):
    strategy = make_strategy("multi_worker")
    index = strategy.cluster_resolver.task_id
    batch, build_task = one_step_setup()
    with strategy.scope():
        task = build_task()
    half = {k: v[2 * index:2 * index + 2] for k, v in batch.items()}  # this worker's rows
    dataset = strategy.distribute_datasets_from_function(
        lambda context: tf.data.Dataset.from_tensors(half).repeat())
    history = task.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    np.savez(os.path.join(out_dir, f"worker-{index}.npz"),
             *[v.numpy() for v in task.pretrainer.weights])

    config = PretrainingConfig(
        data_dir=data_dir, model_name="shared", objective="electra", model_size="debug",
        train_batch_size=8, max_seq_length=64, num_train_steps=6, num_warmup_steps=2,
        save_checkpoints_steps=2, log_every_steps=2, steps_per_execution=2,
        vocab_file=vocab, pretrain_tfrecords=tfrecords, seed=3)
    summary = pretrain(config, strategy, progress=False)
    with open(os.path.join(out_dir, f"worker-{index}.json"), "w") as f:
        json.dump({"one_step_loss": history.history["loss"][0], "summary": summary,
                   "replicas": strategy.num_replicas_in_sync}, f)


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    main(*sys.argv[1:])
