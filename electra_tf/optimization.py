"""Optimizers and learning-rate schedules: LAMB (the paper's update), the original's
AdamWeightDecay, transformers' AdamW (the TLM reference's), warmup x polynomial decay,
linear warmup then linear decay, and layer-wise learning-rate decay.

All are Keras 3 optimizers (they work under any ``tf.distribute`` strategy and with
``LossScaleOptimizer`` for fp16); ``global_clipnorm`` clips as the original does (at
1.0, with ``tf.clip_by_global_norm``), applied to the gradient summed over replicas.
Exclusion lists are regular expressions matched against variable paths
(``electra/encoder/layer_0/.../LayerNorm/gamma``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import keras
import tensorflow as tf
from keras import ops

from electra_tf.modeling import fused

DEFAULT_EXCLUDE = ("LayerNorm", "layer_norm", "bias")  # the original's list


class _StepScalars(NamedTuple):
    """What every variable's update in one step shares, as tensors of its dtype."""

    learning_rate: tf.Tensor
    bias_1: tf.Tensor  # 1 - beta_1^t
    bias_2: tf.Tensor  # 1 - beta_2^t
    beta_1: tf.Tensor
    rest_1: tf.Tensor  # 1 - beta_1
    beta_2: tf.Tensor
    rest_2: tf.Tensor  # 1 - beta_2
    epsilon: tf.Tensor
    weight_decay_rate: tf.Tensor
    zero: tf.Tensor
    one: tf.Tensor


class _Shared:
    scalars: dict | None = None  # {dtype: _StepScalars} during one step's updates


def _matches(patterns: Sequence[str] | None, path: str) -> bool:
    return bool(patterns) and any(re.search(p, path) for p in patterns)


class _DecoupledDecayOptimizer(keras.optimizers.Optimizer):
    """Shared parts: Adam moments, decoupled weight decay with exclusions, and optional
    per-variable learning-rate multipliers (layer-wise decay)."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, weight_decay_rate,
                 exclude_from_weight_decay, lr_multipliers, name, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay_rate = weight_decay_rate
        self.exclude_from_weight_decay = (list(exclude_from_weight_decay)
                                          if exclude_from_weight_decay is not None else None)
        self.lr_multipliers = dict(lr_multipliers) if lr_multipliers else None
        # A plain attribute holder: TensorFlow's tracking would wrap a dict set here.
        self._step = _Shared()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
        # update_step may see the backend variable, which has no Keras path.
        self._paths = [variable.path for variable in var_list]

    def _path(self, variable) -> str:
        return self._paths[self._get_variable_index(variable)]

    @contextlib.contextmanager
    def _one_step(self):
        """While the variables of one step are updated, they share one set of
        :meth:`_scalars`."""
        self._step.scalars = {}
        try:
            yield
        finally:
            self._step.scalars = None

    def _scalars(self, dtype, learning_rate) -> _StepScalars:
        """The learning rate, the bias corrections and the hyperparameters as tensors,
        made once per step and dtype (per variable outside :meth:`_one_step`). Made for
        each variable they were ~40% of a traced step's update ops, all to trace and, in
        the fused update, to compile (ELECTRA-Debug's LAMB update with Keras' clipping:
        4,777 ops, 2,980 with the scalars made once); the values are the same."""
        shared = self._step.scalars
        if shared is not None and dtype in shared:
            return shared[dtype]
        step = ops.cast(self.iterations + 1, dtype)

        def constant(value):
            return tf.constant(value, dtype)

        scalars = _StepScalars(
            ops.cast(learning_rate, dtype),
            1.0 - ops.power(ops.cast(self.beta_1, dtype), step),
            1.0 - ops.power(ops.cast(self.beta_2, dtype), step),
            constant(self.beta_1), constant(1.0 - self.beta_1), constant(self.beta_2),
            constant(1.0 - self.beta_2), constant(self.epsilon),
            constant(self.weight_decay_rate), constant(0.0), constant(1.0))
        if shared is not None:
            shared[dtype] = scalars
        return scalars

    def _rate_of(self, scalars, variable):
        """The step's learning rate times the variable's layer-wise factor."""
        multiplier = self._lr_multiplier(variable)
        return scalars.learning_rate if multiplier == 1.0 else (
            scalars.learning_rate * multiplier)

    def _decays(self, variable) -> bool:
        return self.weight_decay_rate > 0 and not _matches(self.exclude_from_weight_decay,
                                                           self._path(variable))

    def _lr_multiplier(self, variable) -> float:
        if not self.lr_multipliers:
            return 1.0
        for pattern, multiplier in self.lr_multipliers.items():
            if re.search(pattern, self._path(variable)):
                return multiplier
        raise ValueError(f"no learning-rate multiplier matches variable "
                         f"{self._path(variable)}; "
                         f"patterns: {list(self.lr_multipliers)}")

    def _fuses_update(self) -> bool:
        # Without a tf.distribute strategy the updates of all variables run as one XLA
        # computation, with global-norm clipping's scaling: LAMB is ~35 small
        # element-wise ops and two norms per variable (13,472 traced ops for
        # ELECTRA-Small's 402 variables), which op by op cost more than their
        # arithmetic. Under a strategy each (mirrored) variable is updated through it.
        return fused.enabled() and not tf.distribute.has_strategy()

    def _clip_gradients(self, grads):
        # Keras clips each replica's gradients before summing them across replicas; sum
        # first (once: the sum below replaces Keras' own), so the global norm is the
        # global batch's and N replicas update exactly like one replica.
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            present = [g for g in grads if g is not None]
            summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
            grads = [None if g is None else next(summed) for g in grads]
        if self.global_clipnorm:  # Keras allows no other clipping beside it
            if self._fuses_update():
                return grads  # scaled inside the fused update (_update_all)
            # The original's own clipping: one L2Loss per gradient (Keras squares each
            # into a copy, then sums it), the same norm up to the order of the sums.
            return tf.clip_by_global_norm(grads, self.global_clipnorm)[0]
        return super()._clip_gradients(grads)

    def _global_norm(self, grads):
        """The norm ``tf.clip_by_global_norm`` clips `grads` by, when this optimizer
        clips so (else None): one TensorFlow ``L2Loss`` per gradient, an embedding's
        IndexedSlices gradient by its rows (duplicates apart, as in the original). The
        fused update scales by it; inside XLA each ``L2Loss`` would write its squares
        out before summing them."""
        if self.global_clipnorm:
            return tf.linalg.global_norm(grads)
        return None

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars  # already summed in _clip_gradients

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        if not self._fuses_update():
            with self._one_step():
                return super()._distributed_tf_update_step(distribution, grads_and_vars,
                                                           learning_rate)
        if getattr(self, "_fused_update", None) is None:
            self._fused_update = tf.function(self._update_all, jit_compile=True,
                                             autograph=False)
        # An embedding's IndexedSlices gradient is updated densely anyway (_moments).
        grads = [g for g, _ in grads_and_vars]
        norm = self._global_norm(grads)
        # The clip value as a tensor too: read at trace time it would stay fixed.
        clipping = None if norm is None else (
            norm, tf.constant(self.global_clipnorm, norm.dtype))
        self._fused_update([tf.convert_to_tensor(g) for g in grads],
                           [v for _, v in grads_and_vars],
                           tf.convert_to_tensor(learning_rate), clipping)

    def _update_all(self, grads, variables, learning_rate, clipping=None):
        if clipping is not None:  # tf.clip_by_global_norm's scaling, fused with the update
            norm, clip_norm = clipping
            grads = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)[0]
        with self._one_step():
            for gradient, variable in zip(grads, variables, strict=True):
                self.update_step(gradient, variable, learning_rate)

    def _moments(self, gradient, variable, scalars):
        if isinstance(gradient, tf.IndexedSlices):
            # An embedding lookup's gradient: updated densely, as the original's TF1
            # optimizers do (the moments decay in every row, looked up or not).
            gradient = tf.convert_to_tensor(gradient)
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        self.assign(m, scalars.beta_1 * m + scalars.rest_1 * gradient)
        self.assign(v, scalars.beta_2 * v + scalars.rest_2 * ops.square(gradient))
        return m, v

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      weight_decay_rate=self.weight_decay_rate,
                      exclude_from_weight_decay=self.exclude_from_weight_decay,
                      lr_multipliers=self.lr_multipliers)
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class Lamb(_DecoupledDecayOptimizer):
    """LAMB (You et al., 2019) as tf-addons and TF Model Garden implement it.

    m, v: Adam moments with bias correction; u = m_hat / (sqrt(v_hat) + epsilon), plus
    weight_decay_rate * w unless the variable is excluded from weight decay; trust
    ratio r = ||w|| / ||u|| (1 if either norm is 0, or if the variable is excluded from
    layer adaptation); w <- w - lr * r * u. Keras' own ``Lamb`` differs: it decays
    weights outside the trust ratio.

    Args:
      learning_rate: float or schedule.
      beta_1, beta_2, epsilon: Adam's.
      weight_decay_rate: decoupled decay inside the update.
      exclude_from_weight_decay: regexes of variable paths not decayed.
      exclude_from_layer_adaptation: regexes of paths with trust ratio 1; defaults to
        ``exclude_from_weight_decay``.
      lr_multipliers: optional {regex: factor}, first match wins (layer-wise decay).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay_rate=0.0, exclude_from_weight_decay=None,
                 exclude_from_layer_adaptation=None, lr_multipliers=None, name="lamb",
                 **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay_rate,
                         exclude_from_weight_decay, lr_multipliers, name, **kwargs)
        self.exclude_from_layer_adaptation = (
            list(exclude_from_layer_adaptation) if exclude_from_layer_adaptation is not None
            else self.exclude_from_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        scalars = self._scalars(variable.dtype, learning_rate)
        lr = self._rate_of(scalars, variable)
        m, v = self._moments(ops.cast(gradient, variable.dtype), variable, scalars)
        m_hat = m / scalars.bias_1
        v_hat = v / scalars.bias_2
        update = m_hat / (ops.sqrt(v_hat) + scalars.epsilon)
        if self._decays(variable):
            update = update + scalars.weight_decay_rate * variable
        ratio = scalars.one
        if not _matches(self.exclude_from_layer_adaptation, self._path(variable)):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where((w_norm > scalars.zero) & (u_norm > scalars.zero),
                              w_norm / u_norm, scalars.one)
        self.assign_sub(variable, lr * ratio * update)

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = self.exclude_from_layer_adaptation
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class AdamWeightDecay(_DecoupledDecayOptimizer):
    """The original ELECTRA/BERT AdamWeightDecayOptimizer: Adam without bias correction,
    u = m / (sqrt(v) + epsilon) + weight_decay_rate * w (LayerNorm and biases excluded
    by default), w <- w - lr * u."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay_rate=0.0, exclude_from_weight_decay=DEFAULT_EXCLUDE,
                 lr_multipliers=None, name="adam_weight_decay", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay_rate,
                         exclude_from_weight_decay, lr_multipliers, name, **kwargs)

    def _rate_and_moments(self, gradient, variable, learning_rate):
        """The step's scalars, this variable's learning rate (layer-wise factor included)
        and its updated Adam moments."""
        scalars = self._scalars(variable.dtype, learning_rate)
        return (scalars, self._rate_of(scalars, variable),
                *self._moments(ops.cast(gradient, variable.dtype), variable, scalars))

    def update_step(self, gradient, variable, learning_rate):
        scalars, lr, m, v = self._rate_and_moments(gradient, variable, learning_rate)
        update = m / (ops.sqrt(v) + scalars.epsilon)
        if self._decays(variable):
            update = update + scalars.weight_decay_rate * variable
        self.assign_sub(variable, lr * update)


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformersAdamW(AdamWeightDecay):
    """AdamW as HuggingFace transformers' ``AdamW`` (``correct_bias=True``) computes it,
    the optimizer of the TLM reference code: Adam with bias correction folded into the
    step size, epsilon added to sqrt(v) (not to the bias-corrected one), then decoupled
    decay of the updated weights:

        w <- w - lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
        w <- w - lr * weight_decay_rate * w      (unless excluded: LayerNorm, biases)

    ``torch.optim.AdamW`` differs in decaying before the Adam step, in adding epsilon to
    the bias-corrected sqrt(v) (so early steps differ by more than epsilon) and in its
    default epsilon (1e-8; transformers' is 1e-6). Arguments as
    :class:`AdamWeightDecay`'s."""

    def __init__(self, *args, name="transformers_adamw", **kwargs):
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        scalars, lr, m, v = self._rate_and_moments(gradient, variable, learning_rate)
        step_size = lr * ops.sqrt(scalars.bias_2) / scalars.bias_1
        updated = variable - step_size * m / (ops.sqrt(v) + scalars.epsilon)
        if self._decays(variable):
            updated = updated - lr * scalars.weight_decay_rate * updated
        self.assign(variable, updated)


@keras.saving.register_keras_serializable(package="electra_tf")
class ReplicaLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' ``LossScaleOptimizer`` (fp16's dynamic loss scale) whose finiteness check
    holds for every replica.

    Under a strategy with merge calls Keras takes the first replica's answer, assuming
    the gradients it checks are already summed over the replicas; the package's
    optimizers sum them later, inside their own update. A step in which only another
    replica overflowed would then be applied with non-finite values. Here each replica's
    answer is summed over the replicas, so a step is applied only when all are finite.
    Arguments as Keras' own.
    """

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                        tf.cast(tf.logical_not(finite), tf.float32))
        return tf.equal(overflowed, 0.0)


@keras.saving.register_keras_serializable(package="electra_tf")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The original's schedule: polynomial decay from `learning_rate` to `end_learning_rate`
    over `decay_steps`, times min(1, step / warmup_steps).

    As in the original, the step is the optimizer's iteration count before the update,
    so the first update has learning rate 0 when there is a warmup.
    """

    def __init__(self, learning_rate: float, decay_steps: int, warmup_steps: int = 0,
                 end_learning_rate: float = 0.0, power: float = 1.0):
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.learning_rate = learning_rate
        self.decay_steps = decay_steps
        self.warmup_steps = warmup_steps
        self.end_learning_rate = end_learning_rate
        self.power = power

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.minimum(step, float(self.decay_steps)) / float(self.decay_steps)
        decayed = ((self.learning_rate - self.end_learning_rate)
                   * ops.power(1.0 - progress, self.power) + self.end_learning_rate)
        if self.warmup_steps > 0:
            decayed = decayed * ops.minimum(1.0, step / float(self.warmup_steps))
        return decayed

    def get_config(self):
        return dict(learning_rate=self.learning_rate, decay_steps=self.decay_steps,
                    warmup_steps=self.warmup_steps,
                    end_learning_rate=self.end_learning_rate, power=self.power)


@keras.saving.register_keras_serializable(package="electra_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """transformers' ``get_linear_schedule_with_warmup`` (the TLM reference's schedule):
    step / warmup_steps times `learning_rate` during the warmup, then a straight line
    from `learning_rate` at ``warmup_steps`` to 0 at ``total_steps``.

    Unlike :class:`WarmupPolynomialDecay` the decay starts at the end of the warmup, so the
    peak is reached. The step is the optimizer's iteration count before the update (the
    first update has learning rate 0 when there is a warmup), as the reference steps its
    scheduler after each update.
    """

    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 0):
        if total_steps < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.learning_rate = learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(1, self.warmup_steps))
        decay = float(max(1, self.total_steps - self.warmup_steps))
        rising = step / warmup
        falling = ops.maximum(0.0, (float(self.total_steps) - step) / decay)
        return self.learning_rate * ops.where(step < float(self.warmup_steps), rising,
                                              falling)

    def get_config(self):
        return dict(learning_rate=self.learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps)


def layerwise_lr_multipliers(num_layers: int, decay: float,
                             head_pattern: str = r"task_specific|classifier|_head/",
                             original_off_by_one: bool = True) -> Mapping[str, float]:
    """Layer-wise learning-rate decay as {regex: factor}, by default the original's
    ``_get_layer_lrs``: the task head at the full rate, layer i of n at
    decay ** (n + 1 - i), the embeddings at decay ** (n + 2). It gave the head depth n + 2
    but the top layer depth n, so the top layer gets decay ** 2, one factor less than
    meant; its published GLUE numbers were tuned so. ``original_off_by_one=False`` is the
    fix: layer i at decay ** (n - i), the embeddings at decay ** (n + 1).
    """
    shift = 1 if original_off_by_one else 0
    multipliers = {head_pattern: 1.0}
    for layer in range(num_layers):
        multipliers[rf"/encoder/layer_{layer}/"] = decay ** (num_layers - layer + shift)
    multipliers[r"/embeddings/|/embeddings_project/"] = decay ** (num_layers + 1 + shift)
    return multipliers


OPTIMIZERS: dict[str, Callable[..., keras.optimizers.Optimizer]] = {
    "lamb": Lamb,
    "adamw": AdamWeightDecay,
    "adamw_hf": TransformersAdamW,
}


def make_optimizer(name: str, learning_rate, *, weight_decay_rate: float, clip_norm: float,
                   epsilon: float = 1e-6, lr_multipliers: Mapping[str, float] | None = None
                   ) -> keras.optimizers.Optimizer:
    """The optimizer called `name` (a key of ``OPTIMIZERS``) as the original builds it:
    decoupled weight decay except on LayerNorm and biases, global-norm clipping at
    `clip_norm` (0: none), and `lr_multipliers` for layer-wise decay.

    Example::

        schedule = WarmupPolynomialDecay(5e-4, decay_steps=10000, warmup_steps=1000)
        optimizer = make_optimizer("lamb", schedule, weight_decay_rate=0.01, clip_norm=1.0)
    """
    return OPTIMIZERS[name](learning_rate, epsilon=epsilon,
                            weight_decay_rate=weight_decay_rate,
                            exclude_from_weight_decay=list(DEFAULT_EXCLUDE),
                            lr_multipliers=lr_multipliers,
                            global_clipnorm=clip_norm if clip_norm else None)
