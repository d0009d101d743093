"""The pretraining losses, as the original ``run_pretraining.py`` computes them: each a
weighted mean over the *global* batch (see :func:`electra_tf.distribute.global_batch_mean`).
"""

from __future__ import annotations

import tensorflow as tf

from electra_tf.distribute import global_batch_mean
from electra_tf.modeling import fused


def mlm_loss(logits, masked_lm_ids, masked_lm_weights):
    """Weighted mean cross entropy over the masked positions (this replica's share of
    the global-batch mean under ``tf.distribute``)."""
    logits = tf.cast(logits, tf.float32)
    losses = fused.sparse_softmax_cross_entropy(
        tf.reshape(tf.cast(masked_lm_ids, tf.int32), [-1]),
        tf.reshape(logits, [-1, tf.shape(logits)[-1]]))
    return global_batch_mean(tf.reshape(losses, tf.shape(masked_lm_ids)),
                             tf.cast(masked_lm_weights, tf.float32))


def discriminator_loss(rtd_logits, is_replaced, input_mask):
    """Mean sigmoid cross entropy over the real (unpadded) tokens (this replica's share
    of the global-batch mean under ``tf.distribute``)."""
    losses = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(is_replaced, tf.float32), logits=tf.cast(rtd_logits, tf.float32))
    return global_batch_mean(losses, tf.cast(input_mask, tf.float32))
