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

import keras
import tensorflow as tf
from absl import logging

from electra_tf.optimization import ReplicaLossScaleOptimizer

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


EPSILON = 1e-6  # the original's guard in every weighted average


def cross_replica_sum(value):
    """Sum of `value` over the replicas of the current ``tf.distribute`` replica context
    (the value itself outside one, or with a single replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_batch_mean(losses, weights):
    """This replica's share of the weighted mean of `losses` over the *global* batch.

    Divided by the weights of the whole batch, the replicas' parts sum (as gradients are
    summed across replicas) to the mean over the whole batch, so N replicas train exactly
    like one replica on the same global batch."""
    return tf.reduce_sum(losses * weights) / (cross_replica_sum(tf.reduce_sum(weights))
                                              + EPSILON)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that keeps checkpoints, summaries and exports (the only
    process outside multi-worker training)."""
    return bool(strategy.extended.should_checkpoint)


def chief_decides(strategy: tf.distribute.Strategy, value: bool) -> bool:
    """The chief's `value` on every worker: a decision made from files the chief writes
    (is this stage done?) cannot then split the workers, one training while another skips
    ahead and waits on it. Under several workers it is a collective, so also a barrier:
    a worker passes it only when the chief has (and has written what it wrote before)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return value
    mine = 1.0 if value and is_chief(strategy) else 0.0
    total = strategy.reduce(tf.distribute.ReduceOp.SUM,
                            strategy.run(lambda: tf.constant(mine)), axis=None)
    return bool(float(total) > 0)


def check_same_on_workers(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
    """Under several workers, every worker must hold the same `value` (the step each
    restored, say): otherwise they would run different numbers of steps and wait on each
    other's collectives for ever. All of them raise when one differs."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    mine = tf.constant([value, value * value], tf.float64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: mine),
                            axis=None).numpy()
    replicas = strategy.num_replicas_in_sync
    if total[0] != replicas * value or total[1] != replicas * value * value:
        raise ValueError(f"the workers disagree on the {what} (this worker: {value}, the "
                         f"mean over the workers' replicas: {total[0] / replicas:g}); every "
                         f"worker must read the chief's run folder (a shared disk or gs://)")


def check_batch_size(strategy: tf.distribute.Strategy, batch_size: int,
                     what: str = "train_batch_size") -> int:
    """The per-replica batch; a global batch the replicas cannot split evenly is an error."""
    replicas = strategy.num_replicas_in_sync
    if batch_size < 1 or batch_size % replicas:
        raise ValueError(f"{what}={batch_size} must be a positive multiple of the "
                         f"{replicas} replicas of the {type(strategy).__name__}")
    return batch_size // replicas


def check_batch_sizes(config, strategy: tf.distribute.Strategy) -> None:
    """The global ``train_batch_size`` and ``eval_batch_size`` of `config` must split
    evenly over `strategy`'s replicas (8 on a TPU)."""
    check_batch_size(strategy, config.train_batch_size)
    check_batch_size(strategy, config.eval_batch_size, "eval_batch_size")


def merges_calls(strategy: tf.distribute.Strategy) -> bool:
    """True for the strategies whose replicas meet in merge calls (several GPUs, several
    machines), where Keras' own multi-step loop does not run."""
    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy))


class DistributedTrainer:
    """What a ``keras.Model`` subclass of this package adds to train under any strategy.

    * **Under MirroredStrategy and MultiWorkerMirroredStrategy, the train function is
      this package's own.** Keras 3 runs ``steps_per_execution`` steps in a
      ``tf.while_loop`` around a ``tf.cond`` that holds the replicas' step; the merge call
      inside that ``cond`` fails ("You must feed a value for placeholder tensor",
      keras-team/keras#19246). And under MultiWorkerMirroredStrategy Keras averages each
      scalar metric over axis 0, which a scalar has not. The package's training sets
      repeat forever, so no ``cond`` is needed: ``steps_per_execution`` steps of
      ``strategy.run`` in one ``tf.function`` (as in TensorFlow's custom-training-loop
      guide), then the metrics read across replicas (``self.metrics``: the model's
      ``train_step`` returns their results, as Keras' own models do). The steps run
      without XLA there (``jit_compile`` is for the default strategy and TPUs). Other
      strategies keep Keras' own function.
    * **One traced train function per number of steps per call.** A run's last call is
      shorter when the steps left are fewer; ``use_steps_per_execution`` switches to it
      and back without ``compile``, which would trace (on a TPU, XLA-compile) the
      function again each time.
    * **The optimizer built before the first step.** On one device Keras builds it in
      the first step's trace, which TensorFlow then traces twice.
    * **fp16's loss scale checked on every replica.** ``compile`` replaces Keras'
      ``LossScaleOptimizer`` with :class:`~electra_tf.optimization.ReplicaLossScaleOptimizer`,
      so a step is skipped when any replica's gradients overflowed.
    * **Several workers.** Before the first step Keras reduces a whole input batch
      across replicas only to learn its shapes; ``MultiWorkerMirroredStrategy`` cannot
      reduce a dict of tensors, and every worker would pay a collective for it. Here
      the shapes come from this worker's first replica instead.
    """

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        scaled = self.optimizer
        if (isinstance(scaled, keras.optimizers.LossScaleOptimizer)
                and not isinstance(scaled, ReplicaLossScaleOptimizer)):
            self.optimizer = ReplicaLossScaleOptimizer(
                scaled.inner_optimizer, initial_scale=scaled.initial_scale,
                dynamic_growth_steps=scaled.dynamic_growth_steps, name=scaled.name)
        # the functions traced so far use the metrics and optimizer this call replaced
        object.__setattr__(self, "_train_functions", {})

    def use_steps_per_execution(self, steps: int) -> None:
        """Run `steps` steps per call from now on, as ``compile(...,
        steps_per_execution=steps)`` would, but keep each count's traced (on a TPU,
        compiled) train function: a run's last, shorter call, and the next trial's first
        call after it, trace nothing again."""
        if steps == self.steps_per_execution:
            return
        functions = self.__dict__.setdefault("_train_functions", {})
        functions[self.steps_per_execution] = self.train_function
        self.steps_per_execution = steps
        self.train_function = functions.get(steps)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        self._build_optimizer()
        super().make_train_function(force)
        if merges_calls(self.distribute_strategy):
            if self.jit_compile:
                logging.warning("jit_compile is not applied under %s: its steps run "
                                "without XLA", type(self.distribute_strategy).__name__)
            self.train_function = _repeated_steps(self, self.steps_per_execution)
        return self.train_function

    def _build_optimizer(self) -> None:
        # Without a strategy Keras leaves the optimizer to the first step's trace, and a
        # tf.function that makes variables is traced twice: once making them (each under
        # an initialization cond), then again without. Made here, eagerly, once the
        # model's own variables exist, the step is traced once.
        if (self.optimizer is not None and not self.optimizer.built
                and all(layer.built for layer in self._flatten_layers(include_self=False))):
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and merges_calls(
                self.distribute_strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                    next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _repeated_steps(model, steps: int):
    strategy = model.distribute_strategy

    @tf.function
    def several_steps(iterator):
        for _ in tf.range(steps):
            strategy.run(model.train_step, args=(next(iterator),))
        # Read outside the replicas, Keras' metric variables (synchronized on read, summed)
        # give each metric over the whole global batch.
        results = {}
        for metric in model.metrics:
            value = metric.result()
            results.update(value if isinstance(value, dict) else {metric.name: value})
        return results

    return several_steps
