"""What a training run shows while it runs: TensorBoard scalars and a progress bar."""

from __future__ import annotations

import time

import tensorflow as tf
from tqdm.auto import tqdm

from electra_tf.training.fitting import StepCallback


class TrainingLog(StepCallback):
    """TensorBoard scalars every `every` steps — the metrics averaged over the interval
    (they are reset after each write), learning rate, FLOPs consumed, tokens/s and
    examples/s — and a progress bar with ETA over the whole run."""

    def __init__(self, writer, every: int, total_steps: int, initial_step: int,
                 flops_per_step: float, batch_size: int, seq_len: int, schedule,
                 progress: bool = True, desc: str = "training",
                 shown: tuple[str, ...] = ("loss",)):
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
