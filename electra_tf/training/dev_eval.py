"""Training with a dev evaluation after each period (an epoch, by default): checkpoints to
resume from, TensorBoard scalars, and the best-dev weights kept aside. The loop of
finetuning, TLM's second stage and the BiLSTM baselines."""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from electra_tf import files
from electra_tf.distribute import is_chief
from electra_tf.tasks.scorers import dev_score
from electra_tf.training.checkpointing import (
    CHECKPOINT_NAME,
    model_checkpoint,
    restore,
    restore_or_init,
    worker_dir,
)
from electra_tf.training.fitting import StepCallback, current_step, fit_steps


class EpochEnd(StepCallback):
    """At the end of each evaluation period (an epoch, unless the caller says otherwise)
    and at the last step: a checkpoint (for resuming), the dev scores, TensorBoard
    scalars, the weights of the best-dev period kept aside, and a progress bar with ETA
    over the run.

    With ``steps_per_execution`` > 1 a period ends at the first execution boundary at or
    past its last step (as pretraining's checkpoints do); the executions are never longer
    than a period, so each period still ends once. The train metrics logged for a period
    are its means, also when ``fit`` was called several times within it (Keras resets
    them at each call). History entries number the periods under the key `period`."""

    def __init__(self, manager, best, writer, evaluate, total_steps: int,
                 steps_per_epoch: int, schedule, history: list[dict], history_path: str,
                 initial_step: int, progress: bool = True, chief: bool = True,
                 desc: str = "finetuning", score=dev_score, period: str = "epoch",
                 patience: int = 0, min_steps: int = 0):
        super().__init__()
        self.patience = patience
        self.min_steps = min_steps
        self.score = score
        self.period = period
        self.manager = manager
        self.best = best  # (tf.train.Checkpoint, folder) this process writes the best to
        self.writer = writer
        self.evaluate = evaluate
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.schedule = schedule
        self.history = history
        self.history_path = history_path
        self.chief = chief
        self.last_end = initial_step  # the step of the last epoch end (or of the start)
        self._carry: dict[str, tuple[float, int]] = {}  # earlier fits' (sum, steps) per metric
        self._since = initial_step  # the step the current fit's metric means start at
        self._step = initial_step
        self._logs: dict = {}
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", desc=desc,
                        disable=not (progress and chief), dynamic_ncols=True)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._since = self._step = self._fit_start
        self._logs = {}

    def on_train_batch_end(self, batch, logs=None):
        # Keras' batch index, not the optimizer's counter: no device read per execution.
        step = self.step_after(batch)
        self.bar.update(step - self._step)
        self._step, self._logs = step, logs or {}
        crossed = step // self.steps_per_epoch > self.last_end // self.steps_per_epoch
        if not crossed and step < self.total_steps:
            return
        # The true count: under fp16 a step whose gradients overflowed applies no update.
        applied = int(self.model.optimizer.iterations.numpy())
        final = applied >= self.total_steps
        if not (crossed or final):
            return  # the run goes on for the skipped steps
        epoch = (-(-self.total_steps // self.steps_per_epoch) if final
                 else step // self.steps_per_epoch)
        self.end_epoch(epoch, applied, self._epoch_logs(step))
        self.last_end = self._since = step
        self._carry = {}
        self.model.reset_metrics()

    def on_train_end(self, logs=None):
        # The next fit starts its metrics afresh: keep this one's share of the epoch.
        steps = self._step - self._since
        if steps > 0:
            for name, value in self._logs.items():
                total, count = self._carry.get(name, (0.0, 0))
                self._carry[name] = (total + float(value) * steps, count + steps)
        self._since = self._step

    def _epoch_logs(self, step: int) -> dict[str, float]:
        steps = step - self._since
        means = {}
        for name, value in self._logs.items():
            total, count = self._carry.get(name, (0.0, 0))
            means[name] = (total + float(value) * steps) / max(count + steps, 1)
        return means

    @property
    def stopped(self) -> bool:
        """Early stopping: dev has not improved for `patience` periods (never before
        `min_steps`). Read from the history, so a resumed run that had stopped stays so."""
        if not self.patience or not self.history:
            return False
        last = self.history[-1]
        best = next((h for h in self.history if h.get("best")), last)
        return (last["step"] >= self.min_steps
                and last[self.period] - best[self.period] >= self.patience)

    def end_epoch(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        scores = self.evaluate() if self.evaluate else {}
        entry = {self.period: epoch, "step": step, "dev": scores,
                 "loss": float(logs.get("loss", float("nan")))}
        self.history.append(entry)
        mark_best(self.history, self.score)
        # Killed anywhere in these three writes, a resumed run is consistent: it resumes
        # from the previous checkpoint, drops history entries past it and finds the best
        # weights under their own step.
        if entry.get("best"):
            self.best[0].write(best_prefix(self.best[1], step))
        if self.chief:  # the history rides beside the best weights so a resumed run keeps it
            files.write_json(self.history_path, self.history, indent=1)
        self.manager.save(checkpoint_number=step)
        if entry.get("best"):
            drop_other_best(self.best[1], step)
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("train/learning_rate", float(self.schedule(step - 1)))
            for task, splits in scores.items():
                for split, metrics in splits.items():
                    for metric, value in metrics.items():
                        tf.summary.scalar(f"{task}/{split}/{metric}", value)
        self.writer.flush()
        shown = "; ".join(f"{t} {s} " + ", ".join(f"{m} {v:.4f}" for m, v in ms.items())
                          for t, ss in scores.items() for s, ms in ss.items())
        if shown and self.chief:
            self.bar.write(f"{self.period} {epoch} (step {step}): {shown}")
        if "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
        if self.stopped:
            self.model.stop_training = True
            if self.chief and not self.bar.disable:
                self.bar.write(f"stopping early: no better dev score for {self.patience} "
                               f"{self.period}s")

    def close(self) -> None:
        self.bar.close()


def mark_best(history: list[dict], score=dev_score) -> None:
    """Flag the first entry with the highest dev `score` as ``best`` (entries without dev
    scores never are)."""
    scored = [h for h in history if h.get("dev")]
    top = max(scored, key=lambda h: score(h["dev"]), default=None)
    for h in scored:
        h["best"] = h is top


def best_prefix(folder: str, step: int) -> str:
    """The best-dev weights of the period ending at `step`."""
    return files.join(folder, f"{CHECKPOINT_NAME}-{step}")


def drop_other_best(folder: str, step: int) -> None:
    """Remove the best-dev weights in `folder` of periods other than `step`'s."""
    keep = best_prefix(folder, step) + "."
    for path in files.glob(files.join(folder, f"{CHECKPOINT_NAME}-*")):
        if not path.startswith(keep):
            files.remove(path)


# ----------------------------------------------------------------------------- fitting

def fit_with_dev_eval(model: keras.Model, optimizer, make_dataset, run_dir: str,
                      total_steps: int, steps_per_epoch: int, evaluate, schedule,
                      do_train: bool = True, progress: bool = True, desc: str = "finetuning",
                      score=dev_score, period: str = "epoch", patience: int = 0,
                      min_steps: int = 0) -> tuple[list[dict], dict | None, int]:
    """Train `model` (compiled with `optimizer`, and with the ``steps_per_execution`` to
    use) to `total_steps`, in epochs of `steps_per_epoch` steps, on
    ``make_dataset(start_step)``; after each epoch a checkpoint in `run_dir` (a re-run
    resumes from it), the dev scores of ``evaluate()`` and TensorBoard scalars, with the
    best-dev weights kept in ``run_dir/best/``. With ``steps_per_execution`` > 1 the
    executions are at most an epoch long and each epoch ends at the first execution
    boundary at or past it (see :class:`EpochEnd`). Returns the history (one entry per
    epoch), its best entry, whose weights the model then holds, and the number of steps
    trained (restoring the best weights also restores the optimizer's step counter).
    ``score(dev_scores)`` ranks the periods (default: the mean task score); `period`
    names them in the history and the progress lines. With `patience` > 0 training stops
    early once dev has not improved for that many periods, but not before `min_steps`.

    Under several workers every worker trains and scores (both are collective); only the
    chief writes `run_dir`; the others keep their checkpoints in ``.worker-<id>/`` until
    the end."""
    strategy = model.distribute_strategy
    chief = is_chief(strategy)
    per_execution = max(1, min(model.steps_per_execution, steps_per_epoch))
    # The optimizer fit steps: under fp16, the LossScaleOptimizer around `optimizer`.
    manager, latest = restore_or_init(model, model.optimizer or optimizer, run_dir, strategy,
                                      max_to_keep=1)
    own_dir = worker_dir(strategy, run_dir)
    best = (model_checkpoint(model), files.join(own_dir, "best"))
    history_path = files.join(run_dir, "best", "history.json")
    history: list[dict] = []
    if latest:
        if files.exists(history_path):
            restored = current_step(optimizer)
            # Periods after the restored checkpoint (killed before it was saved) run again.
            history = [h for h in files.read_json(history_path) if h["step"] <= restored]
            mark_best(history, score)
        logging.info("resumed %s", latest)
    elif not do_train:
        raise ValueError(f"--do_train=false but {run_dir} holds no trained checkpoint: "
                         f"train first (the same command with --do_train)")
    writer = (tf.summary.create_file_writer(run_dir) if chief
              else tf.summary.create_noop_writer())
    step = current_step(optimizer)
    epoch_end = EpochEnd(manager, best, writer, evaluate, total_steps, steps_per_epoch,
                         schedule, history, history_path, step, progress and do_train, chief,
                         desc, score, period, patience, min_steps)
    try:
        if do_train and step < total_steps and not epoch_end.stopped:
            fit_steps(model, make_dataset, total_steps, per_execution, [epoch_end],
                      stopped=lambda: epoch_end.stopped)
    finally:
        epoch_end.close()
        writer.close()
    steps = current_step(optimizer)
    best_entry = next((h for h in history if h.get("best")), None)
    if best_entry:
        # This process's own copy if it wrote one (the chief's may still be in writing),
        # else the chief's; unnumbered in runs saved before steps named them.
        chiefs = files.join(run_dir, "best")
        candidates = [best_prefix(best[1], best_entry["step"]),
                      best_prefix(chiefs, best_entry["step"]), files.join(chiefs, CHECKPOINT_NAME)]
        restore(model, next((p for p in candidates if files.exists(p + ".index")),
                            candidates[1]))
        if chief:  # a resumed run's leftovers: periods it dropped or trained again
            drop_other_best(chiefs, best_entry["step"])
    if not chief:
        files.rmtree(own_dir)
    return history, best_entry, steps
