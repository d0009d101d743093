"""Training with Keras ``fit`` to an exact step, and callbacks that know the step."""

from __future__ import annotations

import keras


def current_step(optimizer) -> int:
    """The optimizer's iteration count (a MirroredVariable under a strategy)."""
    return int(optimizer.iterations.numpy())


class StepCallback(keras.callbacks.Callback):
    """Knows the global step after each execution without reading the optimizer's
    counter every step (a read waits for the device): the counter once per ``fit``, then
    Keras' batch index, which is the execution's last step in the epoch."""

    def on_train_begin(self, logs=None):
        self._fit_start = current_step(self.model.optimizer)

    def step_after(self, batch: int) -> int:
        return self._fit_start + batch + 1


def fit_steps(model: keras.Model, make_dataset, total_steps: int, steps_per_execution: int,
              callbacks: list, verbose: int = 0, stopped=None) -> int:
    """Train `model` with Keras ``fit`` from its optimizer's step to exactly `total_steps`:
    calls of `steps_per_execution` steps, then one shorter call for the steps left, as
    pretraining does (the package's models keep the traced train function of each
    length). ``make_dataset(step)`` gives repeating batches from `step` on. A step whose
    float16 gradients overflowed applies no update and is trained again: those left
    after the last full call one per call, so the retries compile once however many
    there are. ``stopped()``, when given, ends training early once true (a
    callback that decides so also sets ``model.stop_training``, which ends the current
    call). Returns the step reached."""
    step = current_step(model.optimizer)
    stalled = 0
    retrying = False  # the last call applied fewer steps than it ran (fp16 overflows)
    while step < total_steps and not (stopped and stopped()):
        remaining = total_steps - step
        per_execution = min(steps_per_execution, remaining)
        if retrying and per_execution < steps_per_execution:
            per_execution = 1
        if model.steps_per_execution != per_execution:
            if hasattr(model, "use_steps_per_execution"):  # keeps the traced functions
                model.use_steps_per_execution(per_execution)
            else:
                with model.distribute_strategy.scope():
                    model.compile(optimizer=model.optimizer, jit_compile=model.jit_compile,
                                  steps_per_execution=per_execution)
        ran = remaining - remaining % per_execution
        model.fit(make_dataset(step), epochs=1, steps_per_epoch=ran, verbose=verbose,
                  shuffle=False, callbacks=callbacks)  # the dataset shuffles
        reached = current_step(model.optimizer)
        retrying = reached < step + ran and not model.stop_training
        stalled = 0 if reached > step else stalled + 1
        if stalled >= 20:
            raise ValueError(f"training applies no update at step {step}: the gradients "
                             f"are not finite (lower the learning rate, or use float32 or "
                             f"bf16 instead of fp16)")
        step = reached
    return step
