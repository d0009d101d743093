"""A linear-chain CRF: log-likelihood by the forward algorithm, Viterbi decoding, a layer.

Shapes: emissions [batch, time, num_tags], tags [batch, time] (ints; values at padded
steps are ignored, so -1 there is fine), mask [batch, time] (bool or 0/1) holding a
left-aligned prefix of real steps. ``transitions[i, j]`` scores tag i followed by tag j,
``start_transitions`` / ``end_transitions`` the first and the last tag. A path's score is
start + emissions + transitions + end over the real steps; a sequence of length 0 has the
empty path only (score 0, log-partition 0, log-likelihood 0).

Everything runs in float32 log space (``reduce_logsumexp``), in eager mode and inside
``tf.function``; padded steps carry the forward scores through unchanged, so one scan
serves a batch of mixed lengths. Gradients reach emissions and all three transition
weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _prepare(emissions, mask, *weights):
    """float32 emissions with at least two steps, a bool mask, float32 weights, lengths."""
    emissions = tf.cast(tf.convert_to_tensor(emissions), tf.float32)
    shape = tf.shape(emissions)
    if mask is None:
        mask = tf.ones(shape[:2], tf.bool)
    mask = tf.cast(mask, tf.bool)
    # Short time axes get padded steps, so the scans have a first element and at least one
    # more (tf.scan cannot stack zero outputs of a dynamic batch size).
    pad = tf.maximum(2 - shape[1], 0)
    emissions = tf.pad(emissions, [[0, 0], [0, pad], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, pad]], constant_values=False)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    weights = [tf.cast(w, tf.float32) for w in weights]
    return emissions, mask, lengths, weights


def _time_major(x):
    """[batch, time, ...] -> [time, batch, ...]."""
    rank = len(x.shape)
    return tf.transpose(x, [1, 0, *range(2, rank)])


def crf_log_norm(emissions, mask, transitions, start_transitions, end_transitions):
    """log Z, the log-sum-exp of all paths' scores: [batch]."""
    emissions, mask, lengths, (transitions, start, end) = _prepare(
        emissions, mask, transitions, start_transitions, end_transitions)
    alpha = start[None, :] + emissions[:, 0]

    def step(alpha, inputs):
        emission, real = inputs
        forward = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        return tf.where(real[:, None], forward, alpha)

    alpha = tf.foldl(step, (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:])),
                     initializer=alpha)
    log_norm = tf.reduce_logsumexp(alpha + end[None, :], axis=1)
    return tf.where(lengths > 0, log_norm, tf.zeros_like(log_norm))


def crf_sequence_score(emissions, tags, mask, transitions, start_transitions,
                       end_transitions):
    """The score of the given tag paths: [batch]."""
    emissions, mask, lengths, (transitions, start, end) = _prepare(
        emissions, mask, transitions, start_transitions, end_transitions)
    tags = tf.cast(tf.convert_to_tensor(tags), tf.int32)
    tags = tf.pad(tags, [[0, 0], [0, tf.shape(mask)[1] - tf.shape(tags)[1]]])
    tags = tf.where(mask, tags, tf.zeros_like(tags))  # padded tags may be -1
    real = tf.cast(mask, tf.float32)
    has_steps = tf.cast(lengths > 0, tf.float32)
    emitted = tf.reduce_sum(tf.gather(emissions, tags, batch_dims=2) * real, axis=1)
    pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)
    transitioned = tf.reduce_sum(tf.gather_nd(transitions, pairs) * real[:, 1:], axis=1)
    last = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)
    boundary = (tf.gather(start, tags[:, 0]) + tf.gather(end, last)) * has_steps
    return emitted + transitioned + boundary


def crf_log_likelihood(emissions, tags, mask, transitions, start_transitions,
                       end_transitions):
    """log p(tags | emissions) per sequence: [batch] (0 for length-0 sequences)."""
    weights = (transitions, start_transitions, end_transitions)
    return (crf_sequence_score(emissions, tags, mask, *weights)
            - crf_log_norm(emissions, mask, *weights))


def crf_decode(emissions, mask, transitions, start_transitions, end_transitions):
    """Viterbi: the best tag paths [batch, time] int32 (0 at padding) and their scores
    [batch] (0 for length-0 sequences)."""
    time = tf.shape(emissions)[1]
    emissions, mask, lengths, (transitions, start, end) = _prepare(
        emissions, mask, transitions, start_transitions, end_transitions)
    num_tags = tf.shape(emissions)[2]
    delta = start[None, :] + emissions[:, 0]
    keep = tf.range(num_tags)[None, :]  # backpointers of padded steps: stay on the tag

    def step(carry, inputs):
        delta, _ = carry
        emission, real = inputs
        scores = delta[:, :, None] + transitions[None]  # [batch, previous, next]
        best_previous = tf.argmax(scores, axis=1, output_type=tf.int32)
        forward = tf.reduce_max(scores, axis=1) + emission
        return (tf.where(real[:, None], forward, delta),
                tf.where(real[:, None], best_previous, tf.broadcast_to(keep,
                                                                        tf.shape(best_previous))))

    deltas, backpointers = tf.scan(
        step, (_time_major(emissions[:, 1:]), _time_major(mask[:, 1:])),
        initializer=(delta, tf.zeros_like(delta, tf.int32)))
    final = tf.concat([delta[None], deltas], axis=0)[-1] + end[None, :]
    best_last = tf.argmax(final, axis=1, output_type=tf.int32)
    best_score = tf.reduce_max(final, axis=1)

    # backpointers[i] leads from the tag at step i + 1 to the tag at step i.
    previous = tf.scan(lambda tag, pointers: tf.gather(pointers, tag, batch_dims=1),
                       backpointers, initializer=best_last, reverse=True)
    tags = tf.transpose(tf.concat([previous, best_last[None]], axis=0))
    tags = tf.where(mask, tags, tf.zeros_like(tags))[:, :time]
    best_score = tf.where(lengths > 0, best_score, tf.zeros_like(best_score))
    return tags, best_score


@keras.saving.register_keras_serializable(package="electra_tf")
class CRF(keras.layers.Layer):
    """A linear-chain CRF over per-step tag scores; ``call`` returns the Viterbi tags.

    Args:
        num_tags: number of tags K.
        initializer: initializer of the transition weights ([K, K] ``transitions``, [K]
            ``start_transitions`` and ``end_transitions``). Zeros by default: an untrained
            CRF then decodes the per-step argmax of the emissions.

    Train with ``-mean(layer.log_likelihood(emissions, tags, mask))``. The weights are
    float32 and the layer computes in float32 whatever the dtype policy (mixed precision
    included): it is not autocast, and emissions are cast up.
    """

    def __init__(self, num_tags: int, initializer="zeros", **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"num_tags={num_tags} must be at least 1")
        self.num_tags = int(num_tags)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True
        weight = dict(initializer=self.initializer, dtype="float32", trainable=True)
        self.transitions = self.add_weight(shape=(self.num_tags, self.num_tags),
                                           name="transitions", **weight)
        self.start_transitions = self.add_weight(shape=(self.num_tags,),
                                                 name="start_transitions", **weight)
        self.end_transitions = self.add_weight(shape=(self.num_tags,),
                                               name="end_transitions", **weight)
        self.built = True  # the weights do not depend on the input shape

    def _weights(self):
        return (tf.convert_to_tensor(self.transitions),
                tf.convert_to_tensor(self.start_transitions),
                tf.convert_to_tensor(self.end_transitions))

    def call(self, emissions, mask=None):
        return crf_decode(emissions, mask, *self._weights())[0]

    def decode(self, emissions, mask=None):
        """Best paths and their scores."""
        return crf_decode(emissions, mask, *self._weights())

    def log_likelihood(self, emissions, tags, mask=None):
        """log p(tags | emissions) per sequence: [batch]."""
        return crf_log_likelihood(emissions, tags, mask, *self._weights())

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(num_tags=self.num_tags,
                      initializer=keras.initializers.serialize(self.initializer))
        return config
