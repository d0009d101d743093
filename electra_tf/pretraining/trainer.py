"""The pretraining run: Keras ``fit`` over the distributed input pipeline, with callbacks
for checkpoints (and resume), TensorBoard scalars, a progress bar, and FLOP accounting.

Layout under ``<data_dir>/models/<model_name>/`` (the original's):
``model.ckpt-<step>`` checkpoints (model and optimizer state; the newest
``keep_checkpoint_max`` are kept), ``train/`` TensorBoard events,
``pretraining_config.json`` (the run's settings), and when training ends the exported
``encoder.keras`` (ELECTRA/ALE's discriminator, BERT's encoder) with ``vocab.txt`` and
``electra_tf_config.json``, plus ``train_summary.json`` (final step, FLOPs, metrics);
with ``encoder_snapshots``, the same export at fractions of the run under ``snapshots/``.
Re-running the same command after an interruption resumes from the newest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time

import keras
import tensorflow as tf
from tqdm.auto import tqdm

from electra_tf import files
from electra_tf.distribute import (
    check_batch_size,
    check_same_on_workers,
    chief_decides,
    is_chief,
)
from electra_tf.files import atomic_write
from electra_tf.modeling import build_pretrainer, encoder_of
from electra_tf.optimization import DEFAULT_EXCLUDE, OPTIMIZERS, WarmupPolynomialDecay
from electra_tf.pretraining.config import RESUME_KEYS, PretrainingConfig
from electra_tf.pretraining.inputs import MaskingConfig, make_dataset, max_predictions_per_seq
from electra_tf.pretraining.objectives import PretrainingTask
from electra_tf.tokenization import load_vocab, special_ids
from electra_tf.training.checkpointing import run_checkpoints, worker_dir
from electra_tf.training.fitting import StepCallback, current_step, fit_steps

CHECKPOINT_NAME = "model.ckpt"


class Checkpointer(StepCallback):
    """Saves model + optimizer every `every` steps (at the first execution boundary past
    each multiple, with ``steps_per_execution`` > 1) and at the end."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.last_saved = None

    def save(self, step: int) -> None:
        if step != self.last_saved:
            self.manager.save(checkpoint_number=step)
            self.last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        previous = self.last_saved if self.last_saved is not None else 0
        if self.step_after(batch) // self.every > previous // self.every:
            # Numbered by the optimizer's own count: under fp16 a step whose gradients
            # overflowed applies no update, and the batch index runs ahead of it.
            step = current_step(self.model.optimizer)
            if step // self.every > previous // self.every:
                self.save(step)


class EncoderSnapshots(StepCallback):
    """Exports the encoder (as :func:`export_encoder` does at the end) when training
    passes each of `steps`, to ``<model_dir>/snapshots/step-<N>/`` with the step and
    FLOPs spent in ``snapshot.json``: the points of a score-against-FLOPs curve. A
    snapshot already on disk is kept (a resumed run does not redo it)."""

    def __init__(self, pretrainer, config: PretrainingConfig, steps: list[int],
                 flops_per_step: float):
        super().__init__()
        self.pretrainer = pretrainer
        self.config = config
        self.pending = sorted(steps)
        self.flops_per_step = flops_per_step

    def on_train_batch_end(self, batch, logs=None):
        if not self.pending or self.step_after(batch) < self.pending[0]:
            return
        step = current_step(self.model.optimizer)  # the applied steps (see Checkpointer)
        while self.pending and self.pending[0] <= step:
            target = self.pending.pop(0)
            directory = self.config.snapshot_dir(target)
            marker = files.join(directory, "snapshot.json")
            if files.exists(marker):
                continue
            # With steps_per_execution > 1 the first boundary past the target is saved.
            files.makedirs(directory)
            export_encoder(self.pretrainer, self.config.vocab_path, directory)
            atomic_write(marker, json.dumps({"step": step, "flops": step * self.flops_per_step},
                                            indent=2, sort_keys=True) + "\n")


class TrainingLog(StepCallback):
    """TensorBoard scalars every `every` steps — the metrics averaged over the interval
    (they are reset after each write), learning rate, FLOPs consumed, tokens/s and
    examples/s — and a progress bar with ETA over the whole run."""

    def __init__(self, writer, every: int, total_steps: int, initial_step: int,
                 flops_per_step: float, batch_size: int, seq_len: int, schedule,
                 progress: bool = True, desc: str = "pretraining",
                 shown: tuple[str, ...] = ("loss", "masked_lm_accuracy", "disc_accuracy")):
        super().__init__()
        self.writer = writer
        self.every = every
        self.total_steps = total_steps
        self.flops_per_step = flops_per_step
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.schedule = schedule
        self.step = initial_step
        self.logged_step = initial_step
        self.last_logs: dict[str, float] = {}
        self._timer = None  # (step, time) after the first execution: excludes tracing
        self.shown = shown
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step",
                        desc=desc, disable=not progress, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        step = self.step_after(batch)
        self.bar.update(step - self.step)
        self.step = step
        if self._timer is None:
            self._timer = (step, time.perf_counter())
        if step // self.every > self.logged_step // self.every or step == self.total_steps:
            self.write(step, logs or {})

    def write(self, step: int, logs) -> None:
        values = {name: float(value) for name, value in logs.items()}
        values["learning_rate"] = float(self.schedule(step - 1))  # what the last step used
        values["flops"] = step * self.flops_per_step
        now = time.perf_counter()
        timed_steps = step - self._timer[0]
        if timed_steps > 0:
            examples = timed_steps * self.batch_size / (now - self._timer[1])
            values["examples_per_second"] = examples
            values["tokens_per_second"] = examples * self.seq_len
        self._timer = (step, now)
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        self.writer.flush()
        self.last_logs = values
        self.logged_step = step
        self.model.reset_metrics()
        shown = {k: f"{values[k]:.4g}" for k in self.shown if k in values}
        self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _optimizer(config: PretrainingConfig, schedule) -> keras.optimizers.Optimizer:
    kwargs = dict(learning_rate=schedule, epsilon=config.adam_epsilon,
                  weight_decay_rate=config.weight_decay_rate,
                  exclude_from_weight_decay=list(DEFAULT_EXCLUDE))
    if config.clip_norm:
        kwargs["global_clipnorm"] = config.clip_norm
    return OPTIMIZERS[config.optimizer](**kwargs)


def _check_resume(config: PretrainingConfig, path: str) -> None:
    """A model dir written with other essential settings is an error, not a silent mix."""
    previous = files.read_json(path)
    current = config.to_dict()
    changed = [f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in RESUME_KEYS
               if previous.get(k) != current[k]]
    if changed:
        raise ValueError(f"{files.parent(path)} holds a run with other settings "
                         f"({'; '.join(changed)}); use another --model_name or delete it")


def export_encoder(pretrainer: keras.Model, vocab_file: str, model_dir: str) -> str:
    """``encoder.keras`` + ``vocab.txt`` + ``electra_tf_config.json`` in `model_dir`."""
    encoder = encoder_of(pretrainer)
    path = files.join(model_dir, "encoder.keras")
    with files.staged_output(path) as local:  # Keras writes local files only
        encoder.save(local)
    atomic_write(files.join(model_dir, "vocab.txt"), files.read_bytes(vocab_file))
    atomic_write(files.join(model_dir, "electra_tf_config.json"),
                 encoder.model_config.to_json())
    return path


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to `name` inside the block (layers take it when built)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def pretrain(config: PretrainingConfig, strategy: tf.distribute.Strategy | None = None,
             progress: bool = True) -> dict:
    """Run (or resume) pretraining as `config` says; returns the train summary.

    The run trains ``num_train_steps`` steps, or as many as fit in ``flop_budget``
    (counted with :func:`electra_tf.flops.train_flops_per_step`), and stops there.
    Under several workers every worker trains; only the chief writes the run folder.
    """
    strategy = strategy or tf.distribute.get_strategy()
    check_batch_size(strategy, config.train_batch_size)
    vocab = load_vocab(config.vocab_path)
    model_config = config.model_config(len(vocab))
    total_steps = config.train_steps(model_config)
    flops_per_step = config.flops_per_step(model_config)
    model_dir = config.model_dir
    chief = is_chief(strategy)
    config_path = files.join(model_dir, "pretraining_config.json")
    if files.exists(config_path):
        _check_resume(config, config_path)
        if chief and files.read_text(config_path) != config.to_json():
            atomic_write(config_path, config.to_json())  # e.g. another log interval
    elif chief:
        atomic_write(config_path, config.to_json())
    keras.utils.set_random_seed(config.seed)

    with dtype_policy(config.policy), strategy.scope():
        extra = ({} if config.objective == "bert" else
                 dict(temperature=config.temperature, seed=config.seed,
                      disallow_correct=config.disallow_correct))
        pretrainer = build_pretrainer(model_config, **extra)
        schedule = WarmupPolynomialDecay(config.learning_rate, total_steps,
                                         config.num_warmup_steps, power=config.lr_decay_power)
        task = PretrainingTask(pretrainer, config.gen_weight, config.disc_weight)
        task.compile(optimizer=_optimizer(config, schedule), jit_compile=config.jit_compile,
                     steps_per_execution=config.steps_per_execution)
        task.optimizer.build(pretrainer.trainable_variables)

    checkpoint = tf.train.Checkpoint(model=pretrainer, optimizer=task.optimizer)
    manager, latest = run_checkpoints(checkpoint, model_dir, strategy,
                                      config.keep_checkpoint_max, CHECKPOINT_NAME)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    initial_step = current_step(task.optimizer)
    check_same_on_workers(strategy, initial_step, "step to resume from")
    summary_path = files.join(model_dir, "train_summary.json")
    if chief_decides(strategy, initial_step >= total_steps and files.exists(summary_path)):
        return files.read_json(summary_path)  # finished before: nothing to do
    checkpointer_start = initial_step if latest else None

    masking = MaskingConfig(special_ids(vocab), len(vocab),
                            max_predictions_per_seq(config.mask_prob, config.max_seq_length),
                            config.mask_prob, "bert" if config.objective == "bert" else "electra")
    writer = (tf.summary.create_file_writer(files.join(model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    checkpointer = Checkpointer(manager, config.save_checkpoints_steps)
    checkpointer.last_saved = checkpointer_start
    log = TrainingLog(writer, config.log_every_steps, total_steps, initial_step,
                      flops_per_step, config.train_batch_size, config.max_seq_length,
                      schedule, progress and chief)
    callbacks = [checkpointer, log]
    snapshot_steps = [k for k in config.snapshot_steps(total_steps)
                      if k > initial_step and chief]
    if snapshot_steps:  # before the checkpointer: a checkpoint never skips past a snapshot
        callbacks.insert(0, EncoderSnapshots(pretrainer, config, snapshot_steps,
                                             flops_per_step))
    started = time.perf_counter()
    def dataset_fn(step):
        def per_worker(context):  # a resumed run reads fresh batches, not the first ones
            return make_dataset(config.tfrecords_pattern, config.train_batch_size,
                                config.max_seq_length, masking, True, context,
                                config.seed + step)
        return strategy.distribute_datasets_from_function(per_worker)

    try:
        step = fit_steps(task, dataset_fn, total_steps, config.steps_per_execution,
                         callbacks)
        checkpointer.save(step)
    finally:
        log.close()
        writer.close()

    summary = {
        "model_name": config.model_name,
        "objective": config.objective,
        "step": step,
        "train_steps": total_steps,
        "flops_per_step": flops_per_step,
        "flops": step * flops_per_step,
        "flop_budget": config.flop_budget,
        "resumed_from_step": initial_step,
        "seconds_this_run": round(time.perf_counter() - started, 3),
        "last_logged": log.last_logs,
    }
    if chief:
        export_encoder(pretrainer, config.vocab_path, model_dir)
        atomic_write(summary_path, json.dumps(summary, indent=2, sort_keys=True))
    else:
        files.rmtree(worker_dir(strategy, model_dir))
    return summary
