"""Training to a step count with checkpoints, TensorBoard scalars and a progress bar: the
loop of pretraining and of TLM's first stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from electra_tf.training.checkpointing import Checkpointer
from electra_tf.training.fitting import current_step, fit_steps
from electra_tf.training.log import TrainingLog


def train_to_step(model: keras.Model, make_dataset: Callable[[int], tf.data.Dataset],
                  total_steps: int, manager: tf.train.CheckpointManager, resumed: bool,
                  log_dir: str | None, config, *, flops_per_step: float, schedule,
                  progress: bool = True, desc: str = "training",
                  shown: Sequence[str] = ("loss",), callbacks: Sequence = ()) -> dict:
    """Train the compiled `model` from its optimizer's step to `total_steps` on
    ``make_dataset(start_step)``, saving with `manager` every ``save_checkpoints_steps``
    and at the end, and writing TensorBoard scalars to `log_dir` (None: write none, as a
    worker that is not the chief) every ``log_every_steps``. `config` is the run's
    config: those two fields, ``steps_per_execution``, ``train_batch_size`` and
    ``max_seq_length``. `callbacks` run before the checkpointer. `resumed`: the model was
    restored from a checkpoint of its current step (which is then not saved again).

    Returns ``step``, ``flops_per_step``, ``flops``, ``resumed_from_step``,
    ``seconds_this_run`` and ``last_logged`` (the last scalars written).

    Example::

        manager, latest = restore_or_init(model, model.optimizer, run_dir, strategy,
                                          max_to_keep=5)
        summary = train_to_step(model, dataset_from_step, 1000, manager, bool(latest),
                                run_dir, config, flops_per_step=3e12, schedule=schedule)
    """
    initial_step = current_step(model.optimizer)
    writer = (tf.summary.create_file_writer(log_dir) if log_dir
              else tf.summary.create_noop_writer())
    checkpointer = Checkpointer(manager, config.save_checkpoints_steps)
    checkpointer.last_saved = initial_step if resumed else None
    log = TrainingLog(writer, config.log_every_steps, total_steps, initial_step,
                      flops_per_step, config.train_batch_size, config.max_seq_length,
                      schedule, progress and log_dir is not None, desc=desc,
                      shown=tuple(shown))
    started = time.perf_counter()
    try:
        step = fit_steps(model, make_dataset, total_steps, config.steps_per_execution,
                         [*callbacks, checkpointer, log])
        checkpointer.save(step)
    finally:
        log.close()
        writer.close()
    return {"step": step, "flops_per_step": flops_per_step, "flops": step * flops_per_step,
            "resumed_from_step": initial_step,
            "seconds_this_run": round(time.perf_counter() - started, 3),
            "last_logged": log.last_logs}
