"""The TLM model: a BERT-style encoder with the tied masked-LM head and a classification
head on [CLS], trained from scratch with the joint loss.

The classification head is the reference implementation's: dense (hidden) -> GELU ->
dense (labels), on the [CLS] vector, no pooler. Per batch the loss is

* external batch: the MLM loss;
* task batch: (ρ2 · MLM + task loss) / (ρ2 + 1), ρ2 = ``mlm_weight`` (ρ2 = 0: the task
  loss alone, which is stage 2).

Both losses are this replica's share of the global-batch mean (as in pretraining), so N
replicas train like one; ``fit`` runs under every strategy, with several steps per call
(:class:`~electra_tf.distribute.DistributedTrainer`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from electra_tf.distribute import DistributedTrainer, cross_replica_sum, global_batch_mean
from electra_tf.modeling import BertPretrainer
from electra_tf.modeling.layers import get_activation
from electra_tf.modeling.losses import mlm_loss

ENCODER_KEYS = ("input_ids", "input_mask", "segment_ids")


def joint_loss(mlm, task, is_task_batch, mlm_weight: float):
    """(ρ2·mlm + task)/(ρ2 + 1) on a task batch, mlm alone on an external one."""
    is_task_batch = tf.cast(is_task_batch, tf.float32)
    joint = (mlm_weight * mlm + task) / (mlm_weight + 1.0)
    return is_task_batch * joint + (1.0 - is_task_batch) * mlm


@keras.saving.register_keras_serializable(package="electra_tf")
class ClassificationHead(keras.layers.Layer):
    """Dense(hidden, activation) -> Dense(num_labels) on a (batch, hidden) vector; float32
    logits.

    Initialized as the reference's head, which PyTorch creates after BERT's own
    initialization: kernels and biases uniform in ±1/sqrt(fan_in). (BERT's 0.02 normal
    in both layers shrinks the logits and the encoder's gradient so much that stage 2
    stalls at chance on the movie-review task, while this initialization learns it.)

    Args:
      hidden_size: width of the first dense layer (and of the input).
      num_labels: classes.
      hidden_act: activation of the first layer (the reference: GELU).
    """

    def __init__(self, hidden_size: int, num_labels: int, hidden_act: str = "gelu",
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.num_labels, self.hidden_act = hidden_size, num_labels, hidden_act
        bound = hidden_size ** -0.5
        init = dict(kernel_initializer=keras.initializers.VarianceScaling(
                        1 / 3, "fan_in", "uniform"),
                    bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                    dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(hidden_size, activation=get_activation(hidden_act),
                                        name="dense", **init)
        self.out = keras.layers.Dense(num_labels, name="out", **init)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.out.build((None, self.hidden_size))
        self.built = True

    def call(self, x):
        return tf.cast(self.out(self.dense(x)), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_labels=self.num_labels,
                      hidden_act=self.hidden_act)
        return config


class TlmModel(DistributedTrainer, keras.Model):
    """Encoder + tied MLM head + classification head, with TLM's joint ``train_step``.

    Args:
      config: the encoder's ModelConfig (BERT-style).
      num_labels: classes of the task.
      mlm_weight: ρ2; 0 with ``use_mlm`` off is stage 2.
      use_mlm: run the MLM head (stage 1); off, batches need no masked-LM fields.
    """

    def __init__(self, config, num_labels: int, mlm_weight: float = 20.0,
                 use_mlm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.pretrainer = BertPretrainer(config)
        self.encoder = self.pretrainer.encoder
        self.classifier = ClassificationHead(config.hidden_size, num_labels, config.hidden_act,
                                             name="cls_head")
        self.mlm_weight = float(mlm_weight)
        self.use_mlm = use_mlm
        names = ["loss", "task_loss", "task_accuracy"]
        if use_mlm:
            names += ["masked_lm_loss", "masked_lm_accuracy"]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, inputs, training=None):
        sequence = self.encoder({k: inputs[k] for k in ENCODER_KEYS},
                                training=training)["sequence_output"]
        outputs = {"logits": self.classifier(sequence[:, 0])}
        if self.use_mlm:
            outputs["mlm_logits"] = self.pretrainer.mlm_head(sequence,
                                                             inputs["masked_lm_positions"])
        return outputs

    def joint_losses(self, inputs, labels, outputs):
        weights = tf.cast(inputs["is_task"], tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(labels, tf.int32), outputs["logits"])
        task = global_batch_mean(per_example, weights)
        # Every example of a batch comes from one stream.
        is_task_batch = tf.reduce_max(weights)
        updates = []
        if self.use_mlm:
            ids = inputs["masked_lm_ids"]
            mlm_weights = tf.cast(inputs["masked_lm_weights"], tf.float32)
            mlm = mlm_loss(outputs["mlm_logits"], ids, mlm_weights)
            loss = joint_loss(mlm, task, is_task_batch, self.mlm_weight)
            predicted = tf.argmax(outputs["mlm_logits"], -1, output_type=tf.int32)
            mlm_on = tf.cast(tf.reduce_sum(mlm_weights) > 0, tf.float32)
            updates += [("masked_lm_loss", cross_replica_sum(mlm), mlm_on),
                        ("masked_lm_accuracy", tf.cast(predicted == tf.cast(ids, tf.int32),
                                                       tf.float32), mlm_weights)]
        else:
            loss = task
        correct = tf.cast(tf.argmax(outputs["logits"], -1, output_type=tf.int32)
                          == tf.cast(labels, tf.int32), tf.float32)
        updates += [("loss", cross_replica_sum(loss), None),
                    ("task_loss", cross_replica_sum(task), is_task_batch),
                    ("task_accuracy", correct, weights)]
        return loss, updates

    def train_step(self, data):
        inputs, labels = data
        with tf.GradientTape() as tape:
            outputs = self(inputs, training=True)
            loss, updates = self.joint_losses(inputs, labels, outputs)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        for name, values, weight in updates:
            self._trackers[name].update_state(values, sample_weight=weight)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def predict_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        return self(inputs, training=False)["logits"]
