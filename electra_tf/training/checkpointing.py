"""Checkpoints that a run resumes from: the newest *complete* one, on every worker.

TensorFlow writes a checkpoint's data shards first and its ``.index`` last, then names it
in the ``checkpoint`` state file. A process killed between those two writes leaves a
complete checkpoint that the state file does not name yet; ``tf.train.CheckpointManager``
would resume from the older one it names (or from scratch). Here the folder itself is
the record: the newest ``<name>-<N>.index`` whose index reads and whose data shards are
all present wins, and the state file is brought up to date before the manager reads it.

Under ``MultiWorkerMirroredStrategy`` every worker takes part in a save, but only the
chief's copy is kept: the others write to ``.worker-<id>/`` inside the run folder and
delete it when training ends (TensorFlow's multi-worker checkpointing pattern).
"""

from __future__ import annotations

import re

import tensorflow as tf

from electra_tf import files
from electra_tf.distribute import is_chief
from electra_tf.training.fitting import StepCallback, current_step

CHECKPOINT_NAME = "model.ckpt"  # the original's checkpoint prefix


def _shards_present(prefix: str) -> bool:
    data = files.glob(f"{prefix}.data-*-of-*")
    if not data:
        return False
    total = int(re.search(r"-of-(\d+)$", data[0]).group(1))
    return len(data) == total


def complete_checkpoints(directory: str, name: str) -> list[str]:
    """Prefixes of the complete checkpoints ``<directory>/<name>-<N>``, oldest first."""
    pattern = re.compile(re.escape(name) + r"-(\d+)\.index$")
    found = []
    for path in files.glob(files.join(directory, f"{name}-*.index")):
        match = pattern.search(path)
        if match:
            found.append((int(match.group(1)), path[:-len(".index")]))
    complete = []
    for _, prefix in sorted(found):
        if not _shards_present(prefix):
            continue
        try:  # a truncated index fails to read (load_checkpoint misreads ram:// prefixes)
            tf.compat.v1.train.NewCheckpointReader(prefix)
        except (tf.errors.OpError, ValueError):
            continue
        complete.append(prefix)
    return complete


def checkpoint_manager(checkpoint: tf.train.Checkpoint, directory: str, name: str,
                       max_to_keep: int) -> tf.train.CheckpointManager:
    """A manager for `directory` whose ``latest_checkpoint`` is the newest complete
    checkpoint on disk (the state file rewritten when it lags behind the folder)."""
    complete = complete_checkpoints(directory, name)
    state = tf.train.get_checkpoint_state(directory)
    named = state.model_checkpoint_path if state else None
    if complete and (named is None or files.join(directory, _basename(named)) != complete[-1]):
        # With their times, so the manager keeps counting them toward max_to_keep.
        times = [float(files.size_and_mtime(f"{p}.index")[1]) for p in complete]
        tf.compat.v1.train.update_checkpoint_state(
            directory, complete[-1], all_model_checkpoint_paths=complete,
            all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1)
    elif named and not complete:  # names checkpoints that are gone: start afresh
        files.remove(files.join(directory, "checkpoint"))
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                      checkpoint_name=name)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def worker_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """Where this process writes its checkpoints: `run_dir` for the chief, a folder of
    its own inside it for the other workers."""
    if is_chief(strategy):
        return run_dir
    return files.join(run_dir, f".worker-{strategy.cluster_resolver.task_id}")


def run_checkpoints(checkpoint: tf.train.Checkpoint, directory: str,
                    strategy: tf.distribute.Strategy, max_to_keep: int,
                    name: str = CHECKPOINT_NAME) -> tuple[tf.train.CheckpointManager, str | None]:
    """(manager, checkpoint to resume from) as pretraining has them: the chief keeps
    `directory`'s checkpoints and resumes from the newest complete one; another worker
    resumes from the same one and saves its own copies under ``.worker-<id>/`` (delete
    that folder when training ends)."""
    if is_chief(strategy):
        manager = checkpoint_manager(checkpoint, directory, name, max_to_keep)
        return manager, manager.latest_checkpoint
    latest = (complete_checkpoints(directory, name) or [None])[-1]
    manager = tf.train.CheckpointManager(checkpoint, worker_dir(strategy, directory),
                                         max_to_keep=1, checkpoint_name=name)
    return manager, latest


def restore_or_init(checkpoint: tf.train.Checkpoint, directory: str,
                    strategy: tf.distribute.Strategy, max_to_keep: int,
                    name: str = CHECKPOINT_NAME
                    ) -> tuple[tf.train.CheckpointManager, str | None]:
    """Restore `checkpoint` from the newest complete checkpoint in `directory` (every
    saved object must match), or leave it as initialized when there is none; returns
    (manager, the checkpoint restored or None). See :func:`run_checkpoints`."""
    manager, latest = run_checkpoints(checkpoint, directory, strategy, max_to_keep, name)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    return manager, latest


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
