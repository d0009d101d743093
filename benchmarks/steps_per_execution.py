"""Benchmark: several training steps per call against one, under MirroredStrategy.

On GPUs and TPUs each call into a compiled training function costs host time (Python,
dispatch, one device synchronization); ``--steps_per_execution`` runs several steps per
call to spread it. Keras 3's own multi-step loop fails under MirroredStrategy, so the
package runs its own there (``electra_tf.distribute.DistributedTrainer``). This measures
both settings in one run, alternating, on the replicas this machine has: two logical CPU
devices by default (no GPU here), the same program MirroredStrategy runs on two GPUs.

Timed is the pretraining step of ELECTRA at --model_size on a repeated synthetic batch
(seq 128, all positions real, 19 masked), --steps steps per timed window after a warm-up
window; the ratio is steps/s with --steps_per_execution over steps/s with 1.

  python benchmarks/steps_per_execution.py [--model_size=debug,small]
      [--steps_per_execution=20] [--batch_size=16] [--rounds=3]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_list("model_size", ["debug", "small"], "ELECTRA sizes to time.")
flags.DEFINE_integer("steps_per_execution", 20, "Steps per call against 1.", lower_bound=2)
flags.DEFINE_integer("batch_size", 16, "Global batch (split over the replicas).",
                     lower_bound=2)
flags.DEFINE_integer("replicas", 2, "Logical CPU devices MirroredStrategy runs on.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Timed windows per setting (alternating).", lower_bound=1)
FLAGS = flags.FLAGS
SEQ, PREDICTIONS = 128, 19


def _batch(batch_size, vocab_size, rng):
    ids = rng.integers(1000, vocab_size, (batch_size, SEQ)).astype("int32")
    ids[:, 0], ids[:, -1] = 101, 102
    positions = np.sort(np.stack([rng.choice(np.arange(1, SEQ - 1), PREDICTIONS, False)
                                  for _ in range(batch_size)]), -1).astype("int32")
    masked_ids = np.take_along_axis(ids, positions, 1)
    np.put_along_axis(ids, positions, 103, 1)
    return {"input_ids": ids, "input_mask": np.ones_like(ids),
            "segment_ids": np.zeros_like(ids), "masked_lm_positions": positions,
            "masked_lm_ids": masked_ids,
            "masked_lm_weights": np.ones((batch_size, PREDICTIONS), "float32")}


def main(argv):
    del argv
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.replicas)
    from electra_tf.configs import get_config
    from electra_tf.modeling import build_pretrainer
    from electra_tf.optimization import Lamb
    from electra_tf.pretraining.objectives import PretrainingModel

    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:FLAGS.replicas])
    rng = np.random.default_rng(0)
    print(f"MirroredStrategy over {strategy.num_replicas_in_sync} logical CPU devices, "
          f"global batch {FLAGS.batch_size}, seq {SEQ}; steps/s (mean of {FLAGS.rounds} "
          f"windows of {FLAGS.steps_per_execution * 2} steps)")
    print(f"{'size':8} {'1 step/call':>12} {f'{FLAGS.steps_per_execution} steps/call':>15} "
          f"{'ratio':>7}")
    for size in FLAGS.model_size:
        config = get_config("electra", size)
        batch = _batch(FLAGS.batch_size, config.vocab_size, rng)
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch).repeat())
        tasks = {}
        for per_call in (1, FLAGS.steps_per_execution):
            with strategy.scope():
                task = PretrainingModel(build_pretrainer(config, seed=0))
                task.compile(optimizer=Lamb(1e-4), steps_per_execution=per_call)
            tasks[per_call] = task
        window = FLAGS.steps_per_execution * 2
        rates = {k: [] for k in tasks}
        for round_index in range(FLAGS.rounds + 1):
            for per_call, task in tasks.items():
                start = time.perf_counter()
                task.fit(dataset, epochs=1, steps_per_epoch=window, verbose=0)
                elapsed = time.perf_counter() - start
                if round_index:  # the first window traces and warms up
                    rates[per_call].append(window / elapsed)
        one, several = (np.mean(rates[k]) for k in tasks)
        print(f"{size:8} {one:12.2f} {several:15.2f} {several / one:6.2f}x", flush=True)


if __name__ == "__main__":
    app.run(main)
