"""Pretraining objectives: BERT's masked LM and ELECTRA's generator + discriminator loss,
with the original's metrics, as a Keras model whose ``fit`` trains a pretrainer.

Losses follow the original ``run_pretraining.py``: the MLM loss is the cross entropy
averaged over masked positions with their weights, the discriminator loss the sigmoid
cross entropy averaged over real tokens, and ELECTRA's total is
``gen_weight * mlm + disc_weight * disc`` (defaults 1 and 50). ALE is ELECTRA with an
ALBERT-style config; nothing here differs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from electra_tf.distribute import DistributedTrainer, cross_replica_sum
from electra_tf.modeling import ElectraPretrainer
from electra_tf.modeling.losses import discriminator_loss, mlm_loss


class PretrainingModel(DistributedTrainer, keras.Model):
    """Trains a BertPretrainer or ElectraPretrainer with ``compile``/``fit``.

    Batches are the input pipeline's dicts (masked ``input_ids``, ``input_mask``,
    ``segment_ids``, ``masked_lm_positions``, ``masked_lm_ids``, ``masked_lm_weights``).
    Metrics: masked_lm_loss, masked_lm_accuracy, and for ELECTRA
    sampled_masked_lm_accuracy, disc_loss, disc_accuracy, disc_precision, disc_recall,
    disc_auc; ``loss`` is the total.
    """

    def __init__(self, pretrainer: keras.Model, gen_weight: float = 1.0,
                 disc_weight: float = 50.0, **kwargs):
        super().__init__(**kwargs)
        self.pretrainer = pretrainer
        self.gen_weight = gen_weight
        self.disc_weight = disc_weight
        self.electra = isinstance(pretrainer, ElectraPretrainer)
        names = ["loss", "masked_lm_loss", "masked_lm_accuracy"]
        if self.electra:
            names += ["sampled_masked_lm_accuracy", "disc_loss", "disc_accuracy",
                      "disc_precision", "disc_recall"]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        if self.electra:
            self._trackers["disc_auc"] = keras.metrics.AUC(name="disc_auc")

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, inputs, training=None):
        return self.pretrainer(inputs, training=training)

    def _losses_and_updates(self, data, outputs):
        ids, weights = data["masked_lm_ids"], tf.cast(data["masked_lm_weights"], tf.float32)
        mlm = mlm_loss(outputs["mlm_logits"], ids, weights)
        total = mlm
        predictions = tf.argmax(outputs["mlm_logits"], -1, output_type=tf.int32)
        updates = [("masked_lm_loss", mlm, None),
                   ("masked_lm_accuracy", tf.cast(predictions == ids, tf.float32), weights)]
        if self.electra:
            mask = tf.cast(data["input_mask"], tf.float32)
            labels = tf.cast(outputs["is_replaced"], tf.float32)
            disc = discriminator_loss(outputs["rtd_logits"], labels, mask)
            total = self.gen_weight * mlm + self.disc_weight * disc
            preds = tf.cast(outputs["rtd_logits"] > 0, tf.float32)
            correct = tf.cast(preds == labels, tf.float32)
            sampled = tf.cast(outputs["sampled_ids"] == ids, tf.float32)
            updates += [("sampled_masked_lm_accuracy", sampled, weights),
                        ("disc_loss", disc, None),
                        ("disc_accuracy", correct, mask),
                        ("disc_precision", correct, preds * mask),
                        ("disc_recall", correct, labels * mask)]
        updates.append(("loss", total, None))
        return total, updates

    def _update_metrics(self, updates, outputs, data):
        for name, values, weights in updates:
            if weights is None:  # a replica's share of a global mean: report the whole
                values = cross_replica_sum(values)
            self._trackers[name].update_state(values, sample_weight=weights)
        if self.electra:
            self._trackers["disc_auc"].update_state(
                tf.cast(outputs["is_replaced"], tf.float32),
                tf.sigmoid(tf.cast(outputs["rtd_logits"], tf.float32)),
                sample_weight=tf.cast(data["input_mask"], tf.float32))
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            outputs = self.pretrainer(data, training=True)
            total, updates = self._losses_and_updates(data, outputs)
            scaled = self.optimizer.scale_loss(total)
        variables = self.pretrainer.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(updates, outputs, data)

    def test_step(self, data):
        outputs = self.pretrainer(data, training=False)
        _, updates = self._losses_and_updates(data, outputs)
        return self._update_metrics(updates, outputs, data)
