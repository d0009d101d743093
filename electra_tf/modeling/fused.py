"""Element-wise kernels compiled by XLA inside TensorFlow graphs, while the matmuls around
them stay on TensorFlow's oneDNN kernels (XLA's CPU matmuls and batched attention matmuls
are slower): the exact GELU (with the bias add before it), the post-LN residual step
(the output dense's bias, dropout, residual add, LayerNorm), the attention's
query/key/value biases and head split, its masked softmax and dropout, and the MLM
softmax cross entropy; each is one kernel forward and one backward. Besides them, the
pieces of a pretraining step that are not matmuls and cost most on CPU: the MLM head's
float32 logits with their gradient in the compute dtype (:func:`output_logits`), the
generator's sampling in two levels (:func:`categorical_sample`) and dropout masks four
elements per 32-bit random number (:func:`dropout_keep`).

Op by op, TensorFlow runs the exact GELU's forward and backward as ~12 element-wise passes
over a (tokens, 4 x hidden) tensor, Keras' LayerNormalization as ~20 and the sparse softmax
cross entropy over (predictions, vocab) logits as a slow generic kernel; in bfloat16 each
pass also converts element by element. Compiled, each is one pass in float32 registers
(measured in docs/benchmarks.md). The maths is the original's in float32, the result is
cast back to the input's dtype; tests/test_fused.py checks values and gradients against
the plain ops.

``ELECTRA_TF_FUSED=0`` in the environment (or :func:`disabled`) traces the plain
TensorFlow ops instead, e.g. for a runtime without XLA; SavedModel exports are always
traced so.
"""

from __future__ import annotations

import contextlib
import fractions
import functools
import os

import tensorflow as tf

_enabled = os.environ.get("ELECTRA_TF_FUSED", "1") != "0"


def enabled() -> bool:
    """Whether models traced now use the compiled kernels."""
    return _enabled


@contextlib.contextmanager
def disabled():
    """Models traced inside the block use plain TensorFlow ops (for comparisons)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def _compiled(fn):
    # One trace for all shapes (XLA still compiles once per concrete shape at run time).
    return tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)


_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def _sum_last(x):
    # The kernels' sums over rows and columns are matrix-vector products with ones:
    # XLA's CPU backend rewrites a reduce into partial sums over windows of its operand,
    # written out first, 1.5-3x slower here than the dot it emits for the same sum.
    rows = tf.reshape(x, [-1, tf.shape(x)[-1]])
    sums = tf.linalg.matvec(rows, tf.ones(tf.shape(x)[-1:], x.dtype))
    return tf.reshape(sums, tf.concat([tf.shape(x)[:-1], [1]], 0))


def _mean_last(x):
    return _sum_last(x) / tf.cast(tf.shape(x)[-1], x.dtype)


def _sum_rows(x):
    """Sums over every axis but the last (a bias's gradient), as a dot with ones."""
    rows = tf.reshape(x, [-1, tf.shape(x)[-1]])
    return tf.matmul(tf.ones([1, tf.shape(rows)[0]], x.dtype), rows)[0]


def _phi(x32):
    # Op by op: TensorFlow's float32 Erfc kernel is ~6x faster than its Erf.
    return 0.5 * tf.math.erfc(x32 * -_SQRT_HALF)


def _phi_compiled(x32):
    # Inside the XLA kernels, the original's 0.5 (1 + erf(x / sqrt 2)): XLA's CPU erf is
    # a short rational polynomial, ~1.7x faster than its erfc over a (16384, 1024)
    # activation, and erfc is no more exact once the results are rounded to float32.
    return 0.5 * (1.0 + tf.math.erf(x32 * _SQRT_HALF))


@_compiled
def _gelu_forward(x):
    x32 = tf.cast(x, tf.float32)
    return tf.cast(x32 * _phi_compiled(x32), x.dtype)


@_compiled
def _gelu_backward(x, dy):
    x32 = tf.cast(x, tf.float32)
    density = tf.exp(-0.5 * tf.square(x32)) * _INV_SQRT_2PI
    return tf.cast(tf.cast(dy, tf.float32) * (_phi_compiled(x32) + x32 * density),
                   dy.dtype)


@tf.custom_gradient
def _fused_gelu(x):
    return _gelu_forward(x), lambda dy: _gelu_backward(x, dy)


@tf.custom_gradient
def _plain_gelu(x):
    # The same maths op by op, with the derivative x * phi(x) + Phi(x) written out (4
    # passes instead of autodiff's 10; bfloat16 Erfc is slow on CPU, so float32).
    x32 = tf.cast(x, tf.float32)
    cdf = _phi(x32)

    def grad(dy):
        density = tf.exp(-0.5 * tf.square(x32)) * _INV_SQRT_2PI
        return dy * tf.cast(cdf + x32 * density, dy.dtype)

    return tf.cast(x32 * cdf, x.dtype), grad


def gelu(x):
    """The exact GELU, x * Phi(x), computed in float32; the input's dtype out."""
    return _fused_gelu(x) if _enabled else _plain_gelu(x)


@_compiled
def _bias_gelu_forward(y, bias):
    z = tf.cast(y, tf.float32) + tf.cast(bias, tf.float32)
    return tf.cast(z * _phi_compiled(z), y.dtype)


@_compiled
def _bias_gelu_backward(y, bias, dout):
    z = tf.cast(y, tf.float32) + tf.cast(bias, tf.float32)
    density = tf.exp(-0.5 * tf.square(z)) * _INV_SQRT_2PI
    dz = tf.cast(dout, tf.float32) * (_phi_compiled(z) + z * density)
    # A plain reduce here: over the feed-forward's 1,024 columns it is as fast as the dot.
    dbias = tf.reduce_sum(tf.reshape(dz, [-1, tf.shape(y)[-1]]), 0)
    return tf.cast(dz, y.dtype), tf.cast(dbias, bias.dtype)


@tf.custom_gradient
def _bias_gelu(y, bias):
    return _bias_gelu_forward(y, bias), lambda dout: _bias_gelu_backward(y, bias, dout)


def dense_gelu(layer, x):
    """`layer` (a built ``keras.layers.Dense`` with a bias whose activation is the exact
    GELU) applied to `x`: the matmul by TensorFlow, the bias add and the GELU (and their
    gradients) as one compiled kernel when enabled."""
    if not _enabled:
        return layer(x)
    kernel = tf.cast(layer.kernel, layer.compute_dtype)
    shape = tf.shape(x)
    y = tf.matmul(tf.reshape(tf.cast(x, layer.compute_dtype), [-1, shape[-1]]), kernel)
    y = _bias_gelu(y, tf.cast(layer.bias, layer.compute_dtype))
    return tf.reshape(y, tf.concat([shape[:-1], [layer.units]], 0))


@_compiled
def _layer_norm_forward(x, gamma, beta, epsilon):
    x32 = tf.cast(x, tf.float32)
    mean = _mean_last(x32)
    variance = _mean_last(tf.square(x32 - mean))
    inv = tf.math.rsqrt(variance + epsilon)
    return tf.cast((x32 - mean) * inv * gamma + beta, x.dtype), mean, inv


@_compiled
def _layer_norm_backward(x, gamma, mean, inv, dy):
    x32, dy32 = tf.cast(x, tf.float32), tf.cast(dy, tf.float32)
    normed = (x32 - mean) * inv
    dnormed = dy32 * gamma
    dx = inv * (dnormed - _mean_last(dnormed) - normed * _mean_last(dnormed * normed))
    return tf.cast(dx, dy.dtype), _sum_rows(normed * dy32), _sum_rows(dy32)


@tf.custom_gradient
def _fused_layer_norm(x, gamma, beta, epsilon):
    y, mean, inv = _layer_norm_forward(x, gamma, beta, epsilon)

    def grad(dy):
        return (*_layer_norm_backward(x, gamma, mean, inv, dy), None)

    return y, grad


def _fusable(layer, x) -> bool:
    return (_enabled and layer.center and layer.scale and not layer.rms_scaling
            and layer.axis in (-1, [-1], [len(x.shape) - 1]))


def layer_norm(layer, x):
    """`layer` (a built ``keras.layers.LayerNormalization`` over the last axis, with
    gamma and beta) applied to `x`: the same result in the layer's compute dtype, as one
    compiled kernel when enabled."""
    if not _fusable(layer, x):
        return layer(x)
    y = _fused_layer_norm(x, tf.convert_to_tensor(layer.gamma),
                          tf.convert_to_tensor(layer.beta),
                          tf.constant(layer.epsilon, tf.float32))
    return tf.cast(y, layer.compute_dtype)


def _dropped_sum(y, bias, residual, keep, scale):
    y32 = tf.cast(y, tf.float32) + bias
    return tf.where(keep, y32 * scale, tf.zeros_like(y32)) + tf.cast(residual, tf.float32)


@_compiled
def _add_norm_forward(y, bias, residual, keep, scale, gamma, beta, epsilon):
    out, mean, inv = _layer_norm_forward.python_function(
        _dropped_sum(y, bias, residual, keep, scale), gamma, beta, epsilon)
    return tf.cast(out, y.dtype), mean, inv


@_compiled
def _add_norm_backward(y, bias, residual, keep, scale, gamma, mean, inv, dout):
    # The sum is recomputed (two reads) rather than stored by the forward pass (a write).
    dsum, dgamma, dbeta = _layer_norm_backward.python_function(
        _dropped_sum(y, bias, residual, keep, scale), gamma, mean, inv, dout)
    dsum32 = tf.cast(dsum, tf.float32)
    dy = tf.where(keep, dsum32 * scale, tf.zeros_like(dsum32))
    return tf.cast(dy, y.dtype), _sum_rows(dy), tf.cast(dsum, residual.dtype), dgamma, dbeta


@tf.custom_gradient
def _fused_add_norm(y, bias, residual, keep, scale, gamma, beta, epsilon):
    out, mean, inv = _add_norm_forward(y, bias, residual, keep, scale, gamma, beta, epsilon)

    def grad(dout):
        dy, dbias, dresidual, dgamma, dbeta = _add_norm_backward(
            y, bias, residual, keep, scale, gamma, mean, inv, dout)
        return dy, dbias, dresidual, None, None, dgamma, dbeta, None

    return out, grad


def dropout_add_layer_norm(layer, y, residual, mask=None, bias=None):
    """``layer_norm(layer, dropout(y + bias) + residual)``, the post-LN residual step
    (with the bias of the dense layer before it, if given), as one compiled kernel:
    `mask` is the dropout's (keep, scale) (None: no dropout)."""
    keep, scale = mask if mask is not None else (tf.constant(True), 1.0)
    if not _fusable(layer, y):
        if bias is not None:
            y = y + tf.cast(bias, y.dtype)
        return layer(tf.where(keep, y * tf.cast(scale, y.dtype), tf.zeros_like(y)) + residual)
    # Without a bias, a zero one: its gradient is one more sum in the same kernel.
    bias = (tf.zeros(y.shape[-1:], tf.float32) if bias is None
            else tf.cast(bias, tf.float32))
    out = _fused_add_norm(y, bias, residual, keep, tf.constant(scale, tf.float32),
                          tf.convert_to_tensor(layer.gamma), tf.convert_to_tensor(layer.beta),
                          tf.constant(layer.epsilon, tf.float32))
    return tf.cast(out, layer.compute_dtype)


@_compiled
def _split_heads_forward(y, bias, query_scale):
    # (B, T, 3 N H) -> (3, B, N, T, H): one pass adds the biases and moves the heads in
    # front of the positions; the query also takes its 1 / sqrt(H).
    z = tf.cast(y, tf.float32) + tf.reshape(bias, [-1])
    z = tf.transpose(tf.reshape(z, tf.concat([tf.shape(y)[:2], tf.shape(bias)], 0)),
                     (2, 0, 3, 1, 4))
    return (tf.cast(z[0] * query_scale, y.dtype), tf.cast(z[1], y.dtype),
            tf.cast(z[2], y.dtype))


@_compiled
def _split_heads_backward(y, query_scale, dq, dk, dv):
    # The heads move back behind the positions in the gradients' own dtype, each of the
    # three on its own: stacked first in float32, XLA wrote the stack and then its
    # transpose (1.5x the time). Only the query's scaling is float32 arithmetic; its bias
    # gradient sums the rounded products (exact when query_scale is a power of two).
    dq = tf.cast(tf.cast(dq, tf.float32) * query_scale, dk.dtype)
    dz = tf.reshape(tf.stack([tf.transpose(d, (0, 2, 1, 3)) for d in (dq, dk, dv)], 2),
                    tf.shape(y))  # (B, T, 3 N H) from (B, T, 3, N, H)
    dbias = tf.reshape(_sum_rows(tf.cast(dz, tf.float32)),
                       tf.concat([[3], tf.shape(dq)[1::2]], 0))  # (3, N, H)
    return tf.cast(dz, y.dtype), dbias


@tf.custom_gradient
def _fused_split_heads(y, bias, query_scale):
    def grad(*upstream):  # None for an unused output
        dq, dk, dv = (tf.zeros_like(x) if d is None else d
                      for x, d in zip(outputs, upstream, strict=True))
        return (*_split_heads_backward(y, query_scale, dq, dk, dv), None)

    outputs = _split_heads_forward(y, bias, query_scale)
    return outputs, grad


def split_heads(y, bias, query_scale):
    """The query, key and value of multi-head attention, (batch, heads, positions,
    head size) each, from `y` (batch, positions, 3 * heads * head size), the three
    projections side by side without their biases: adds `bias` (3, heads, head size) in
    float32, moves the heads in front of the positions and scales the query by
    `query_scale`; one compiled kernel forward and one backward."""
    return _fused_split_heads(y, tf.cast(bias, tf.float32),
                              tf.constant(query_scale, tf.float32))


@_compiled
def _softmax_forward(scores, mask, keep, scale):
    logits = tf.where(mask, tf.cast(scores, tf.float32), -1e9)
    peak = tf.reduce_max(logits, -1, keepdims=True)
    exp = tf.exp(logits - peak)
    total = _sum_last(exp)
    probabilities = tf.where(mask, exp / total, 0.0)  # fully masked rows: zeros, as Keras
    # The log-normalizer, one float per row, lets the backward pass recompute the
    # probabilities in one pass (no maximum, sum or division: 0.65x its time).
    return (tf.cast(tf.where(keep, probabilities * scale, 0.0), scores.dtype),
            peak + tf.math.log(total))


@_compiled
def _softmax_backward(scores, mask, keep, scale, log_normalizer, dout):
    logits = tf.where(mask, tf.cast(scores, tf.float32), -1e9)
    probabilities = tf.where(mask, tf.exp(logits - log_normalizer), 0.0)
    dp = tf.where(keep, tf.cast(dout, tf.float32) * scale, 0.0)
    # Where the mask is off the probabilities are 0, so dp there needs no zeroing.
    return tf.cast(probabilities * (dp - _sum_last(dp * probabilities)), dout.dtype)


@tf.custom_gradient
def _fused_softmax(scores, mask, keep, scale):
    out, log_normalizer = _softmax_forward(scores, mask, keep, scale)

    def grad(dout):
        return (_softmax_backward(scores, mask, keep, scale, log_normalizer, dout),
                None, None, None)

    return out, grad


def attention_probabilities(scores, mask=None, dropout=None):
    """Attention probabilities as Keras' ``MultiHeadAttention`` computes them from raw
    `scores` (..., keys): softmax over the keys where `mask` (broadcastable, bool) holds,
    then the `dropout` mask (keep, scale) (None: no dropout); one compiled kernel, the
    softmax in float32, the scores' dtype out."""
    mask = tf.constant(True) if mask is None else tf.cast(mask, tf.bool)
    keep, scale = dropout if dropout is not None else (tf.constant(True), 1.0)
    return _fused_softmax(scores, mask, keep, tf.constant(scale, tf.float32))


@_compiled
def _xent_forward(logits, labels):
    logsumexp = tf.reduce_logsumexp(logits, -1)
    return logsumexp - tf.gather(logits, labels, batch_dims=1), logsumexp


@_compiled
def _xent_backward(logits, labels, logsumexp, dloss):
    probabilities = tf.exp(logits - logsumexp[:, None])
    return dloss[:, None] * (probabilities - tf.one_hot(labels, tf.shape(logits)[-1]))


@tf.custom_gradient
def _fused_xent(logits, labels):
    losses, logsumexp = _xent_forward(logits, labels)
    return losses, lambda dloss: (_xent_backward(logits, labels, logsumexp, dloss), None)


def sparse_softmax_cross_entropy(labels, logits):
    """``tf.nn.sparse_softmax_cross_entropy_with_logits`` for 2-D float32 `logits`
    (rows, classes) and in-range int32 `labels` (rows,)."""
    if not _enabled:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _fused_xent(logits, labels)


# Columns per block of the two-level sampler: one compiled pass sums each block's share
# of the softmax's mass; a draw then picks a block by those sums and a column inside it.
_SAMPLE_BLOCK = 128


def _sampling_logits(logits, columns, correct, temperature):
    """The original's sample_from_softmax input: logits / temperature (a Python float),
    the `correct` ids' (None: none) lowered by 1000."""
    if temperature != 1.0:
        logits = logits / temperature
    if correct is None:
        return logits
    return tf.where(columns == correct[:, None], logits - 1000.0, logits)


@_compiled
def _block_masses(logits, correct, temperature):
    """Each row's largest sampling logit (rows,) and sum of exp(logit - largest) over
    each block of _SAMPLE_BLOCK columns (rows, blocks), the last block padded."""
    rows, vocab = tf.shape(logits)[0], tf.shape(logits)[1]
    blocks = (vocab + _SAMPLE_BLOCK - 1) // _SAMPLE_BLOCK
    logits = _sampling_logits(logits, tf.range(vocab), correct, temperature)
    largest = tf.reduce_max(logits, -1)  # over the padded row: ~1.3x the kernel's time
    padded = tf.pad(logits, [[0, 0], [0, blocks * _SAMPLE_BLOCK - vocab]],
                    constant_values=-float("inf"))
    exp = tf.exp(tf.reshape(padded, [rows, blocks, _SAMPLE_BLOCK]) - largest[:, None, None])
    return largest, tf.reduce_sum(exp, -1)


def _inverse_cdf(weights, uniform):
    """Per row, the index i with cumsum(weights)[i - 1] <= uniform * total < cumsum[i]:
    a draw in proportion to `weights` (rows, n). Never past the last positive weight,
    even when uniform * total rounds up to the total."""
    cumulative = tf.cumsum(weights, -1)
    total = cumulative[:, -1:]
    below = (cumulative <= uniform[:, None] * total) & (cumulative < total)
    return tf.reduce_sum(tf.cast(below, tf.int32), -1)


def categorical_sample(logits, seed, temperature=1.0, correct=None):
    """One draw per row of float32 `logits` (rows, vocab) from softmax(logits /
    `temperature`), int32 (rows,); `correct` (int ids (rows,) or None) lowers those ids'
    logits by 1000 first, as the original's ``disallow_correct``. `seed`: int32 (2,).

    Fused: a block of 128 columns drawn by its share of the mass (one compiled pass over
    the logits), then a column inside it, each by a float32 uniform against cumulative
    sums: P(block) * P(column | block) = the column's softmax probability, to about 1e-7
    (float32 sums and uniforms; TensorFlow's categorical kernel keeps a float64
    cumulative sum over the whole row: 2.2x the time at 608 x 30,522). Plain:
    ``tf.random.stateless_categorical``. Rows with non-finite logits get valid ids."""
    vocab = tf.shape(logits)[-1]
    if not _enabled:
        if temperature != 1.0:
            logits = logits / temperature
        if correct is not None:
            logits = logits - 1000.0 * tf.one_hot(correct, vocab)
        sampled = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)[:, 0]
        # Non-finite logits make the kernel answer vocab_size.
        return tf.minimum(sampled, vocab - 1)
    rows = tf.shape(logits)[0]
    correct = None if correct is None else tf.cast(correct, tf.int32)
    largest, masses = _block_masses(logits, correct, temperature)
    uniforms = tf.random.stateless_uniform([2, rows], seed=seed)
    block = tf.minimum(_inverse_cdf(masses, uniforms[0]), tf.shape(masses)[1] - 1)
    columns = block[:, None] * _SAMPLE_BLOCK + tf.range(_SAMPLE_BLOCK)
    inside = _sampling_logits(tf.gather(logits, tf.minimum(columns, vocab - 1), batch_dims=1),
                              columns, correct, temperature)
    weights = tf.where(columns < vocab, tf.exp(inside - largest[:, None]), 0.0)
    offset = tf.minimum(_inverse_cdf(weights, uniforms[1]), _SAMPLE_BLOCK - 1)
    return tf.minimum(block * _SAMPLE_BLOCK + offset, vocab - 1)


@_compiled
def _logits_backward(dlogits, dtype):
    """The logits' gradient in `dtype` and summed over the rows (the output bias's
    gradient), in one pass."""
    return tf.cast(dlogits, dtype), _sum_rows(dlogits)


@_compiled
def _logits_forward(x, table, bias):
    """x @ table^T + bias, the compute-dtype products summed in float32: XLA's dot with
    a float32 result, which TensorFlow's CPU kernels lack (its float32 product of the
    values cast up takes 1.6x as long at 608 x 128 x 30,522)."""
    return tf.linalg.matmul(x, tf.cast(table, x.dtype), transpose_b=True,
                            output_type=tf.float32) + bias


@tf.custom_gradient
def _mixed_logits(x, table, bias):
    # The gradient is grad's below: stopped, a tape never traces TensorFlow's own for the
    # float32-result product (which has none for float16 inputs).
    logits = _logits_forward(*(tf.stop_gradient(t) for t in (x, table, bias)))

    def grad(dlogits):
        d, dbias = _logits_backward(dlogits, x.dtype)
        return (tf.matmul(d, tf.cast(table, x.dtype)),
                tf.cast(tf.matmul(d, x, transpose_a=True), table.dtype), dbias)

    return logits, grad


def output_logits(x, table, bias):
    """float32 logits x @ table^T + bias: the MLM head's output layer, for `x` (rows,
    width) and `table` (classes, width) in the compute dtype and a float32 `bias`
    (classes,).

    The product runs in float32 on the compute-dtype values (under mixed bfloat16 the
    TPU's default: bfloat16 inputs, float32 sums) and the bias is added in float32, so the
    softmax sees full-precision logits. Fused, under a mixed policy the forward product
    is XLA's dot with float32 sums of the compute-dtype values, the two backward
    products run in the compute dtype, as every other layer's do under that policy, and
    the bias gradient and the cast come out of one compiled pass (docs/benchmarks.md).
    In float32, or plain, TensorFlow's float32 product and gradients."""
    # Variables read here, before the custom gradient (Keras' under its autocast scope).
    table, bias = tf.convert_to_tensor(table), tf.cast(tf.convert_to_tensor(bias), tf.float32)
    if not _enabled or x.dtype == tf.float32:
        logits = tf.matmul(tf.cast(x, tf.float32), tf.cast(table, tf.float32),
                           transpose_b=True)
        return logits + bias
    return _mixed_logits(x, table, bias)


@functools.cache
def dropout_thresholds(rate: float) -> tuple:
    """The 15 boundaries (uint32 values) between the 16 keep patterns of four elements
    dropped independently with probability `rate`: pattern k (bit e set: element e kept)
    has probability prod over e of (1 - rate or rate), and a uniform 32-bit number
    falls in pattern k's interval with that probability, each off by less than 2^-32."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate {rate!r}: expected 0 <= rate < 1")
    drop, cumulative, bounds = fractions.Fraction(rate), fractions.Fraction(0), []
    for pattern in range(15):
        kept = bin(pattern).count("1")
        cumulative += (1 - drop) ** kept * drop ** (4 - kept)
        bounds.append(min(round(cumulative * 2**32), 2**32 - 1))
    return tuple(bounds)


def _pattern_bits(pattern):
    bits = tf.bitwise.right_shift(pattern[:, None], tf.range(4))
    return tf.reshape(tf.bitwise.bitwise_and(bits, 1) > 0, [-1])


@_compiled
def _keep_patterns(words, bounds):
    # As one reduction over a (words, 15) comparison: 2.5-3x faster than 15 additions.
    return _pattern_bits(tf.reduce_sum(tf.cast(words[:, None] >= bounds, tf.int32), -1))


def _plain_keep_patterns(words, bounds):
    # Op by op, one binary search beats 15 passes over the words.
    pattern = tf.searchsorted(bounds[None], words[None], side="right", out_type=tf.int32)
    return _pattern_bits(pattern[0])


def dropout_keep(words, rate: float):
    """Which of 4 x len(`words`) elements survive dropout at `rate`, bool: the four
    elements of each uint32 word take the keep pattern its value falls in
    (:func:`dropout_thresholds`). One compiled pass; plain, the same bits op by op."""
    bounds = tf.constant(dropout_thresholds(float(rate)), tf.uint32)
    return (_keep_patterns if _enabled else _plain_keep_patterns)(words, bounds)
