"""The finetuning model: one shared encoder, one head per task, the tasks' losses.

Heads as in the original ``finetune/``: dropout then a dense layer on the [CLS] vector
(classification: one logit per label; regression: one value; multiple choice: one score
per option's [CLS]); for tagging a dense layer over every token, softmax over tags at the
first WordPiece of each word, or with ``use_crf`` a linear-chain CRF over the words
(first-WordPiece vectors gathered into a word sequence). Extractive QA as the original's
``qa_tasks.py``: start logits from a dense layer over every token, masked to the context
and [CLS]; with ``joint_prediction`` the end logits come from a 512-unit GELU layer over
[start token's vector; each token's vector] (the gold start in training, each of the
``beam_size`` best starts in prediction, which then returns the top starts and for each
the top ends), else from a second dense layer; with ``answerable_classifier`` an
answerability logit from [CLS] (and the start-probability-weighted token vector); the
loss is the mean of the start and end losses plus ``answerable_weight`` times the
answerability loss. The dense layers start as the original's ``tf.layers.dense``
default: a Glorot-uniform kernel and a zero bias.

Batches hold one task each (``task_id``); every head runs on the shared encoder output
and only the batch's task contributes to the loss, so several tasks train together as the
original's multi-task finetuning does. The loss is the original's: per-example losses
summed over the batch (a tagged sentence's loss is the sum over its words, a CRF's its
negative log-likelihood). Each replica sums its share and gradients are summed across
replicas, so the total is the global batch's sum and N replicas train like one; with
``mean_loss`` the sums are divided by the global batch's number of examples (of words,
for a softmax tagging head). ``fit`` runs under every strategy, with several steps per call
(:class:`~electra_tf.distribute.DistributedTrainer`).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from electra_tf.distribute import DistributedTrainer, cross_replica_sum, global_batch_mean
from electra_tf.modeling.crf import CRF
from electra_tf.modeling.layers import Dropout, gelu_approximate
from electra_tf.tasks.specs import NUM_CHOICES, Task

ENCODER_KEYS = ("input_ids", "input_mask", "segment_ids")
MULTIPLE_CHOICE_LABELS = ("A", "B", "C", "D")  # RACE's answer letters
# The original's QA head settings (configure_finetuning.py).
QA_HEAD_DEFAULTS = {"joint_prediction": True, "beam_size": 20, "answerable_classifier": True,
                    "answerable_uses_start_logits": True, "answerable_weight": 0.5}
QA_HIDDEN = 512  # the original's qa_hidden and answerability layer width


@dataclasses.dataclass(frozen=True)
class Head:
    """What one task head puts out: the task's name and kind, its number of outputs,
    their names (class labels, tags or answer letters; None for regression) and, for
    regression, the label range the head's 0-1 output maps onto."""

    name: str
    kind: str
    num_outputs: int
    labels: tuple[str, ...] | None = None
    label_range: tuple[float, float] | None = None

    @classmethod
    def of(cls, task: Task | Head) -> Head:
        if isinstance(task, Head):
            return task
        if task.kind == "multiple_choice":
            labels = MULTIPLE_CHOICE_LABELS
        elif task.kind == "tagging":
            labels = task.tags
        else:
            labels = getattr(getattr(task, "spec", None), "labels", None)
        label_range = getattr(task, "label_range", None) if task.kind == "regression" else None
        return cls(task.name, task.kind, task.num_outputs,
                   tuple(labels) if labels is not None else None,
                   tuple(label_range) if label_range is not None else None)


def _times(gradient, factor):
    """`gradient` (dense, sparse or None) multiplied by `factor`."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices,
                                gradient.dense_shape)
    return None if gradient is None else gradient * factor


@keras.saving.register_keras_serializable(package="electra_tf")
class FinetuningModel(DistributedTrainer, keras.Model):
    """Encoder + task heads; ``fit`` trains on single-task batches, ``predict`` gives each
    task's outputs (logits, regression values, option scores, or word tag ids).

    Saved as ``.keras`` it carries what serving it needs: each head's :class:`Head`
    (labels included) and, when given, the ``preprocessing`` its inputs were made with.

    Args:
      encoder: an :class:`~electra_tf.modeling.Encoder`.
      tasks: the tasks (or their :class:`Head`), in ``task_id`` order; a multiple-choice
        task cannot share a run with others (its inputs hold 4 sequences per example).
      dropout_rate: dropout before each head (the original: 0.1).
      use_crf: tagging heads end in a CRF instead of a per-word softmax.
      mean_loss: average each task's loss over the global batch instead of summing it.
      preprocessing: ``{"vocab": [...], "do_lower_case": bool, "max_seq_length": int}``,
        the tokenizer and length the model was finetuned with.
      qa_head: QA head settings over :data:`QA_HEAD_DEFAULTS` (``joint_prediction``,
        ``beam_size``, ``answerable_classifier``, ``answerable_uses_start_logits``,
        ``answerable_weight``).
    """

    def __init__(self, encoder: keras.Model, tasks: list[Task | Head],
                 dropout_rate: float = 0.1, use_crf: bool = False,
                 preprocessing: dict | None = None, mean_loss: bool = False,
                 qa_head: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if len(tasks) > 1 and any(t.kind == "multiple_choice" for t in tasks):
            raise ValueError("a multiple-choice task (RACE) must be finetuned alone, not with "
                             f"{', '.join(t.name for t in tasks if t.kind != 'multiple_choice')}")
        self.encoder = encoder
        self.tasks = list(tasks)
        self.use_crf = use_crf
        self.dropout_rate = dropout_rate
        self.preprocessing = preprocessing
        self.mean_loss = mean_loss
        self.dropout = Dropout(dropout_rate)
        unknown = set(qa_head or {}) - set(QA_HEAD_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown QA head settings {sorted(unknown)}; allowed: "
                             f"{', '.join(QA_HEAD_DEFAULTS)}")
        self.qa_head = {**QA_HEAD_DEFAULTS, **(qa_head or {})}
        self.heads = {}
        self.crfs = {}
        self.qa_layers = {}
        for task in tasks:
            if task.kind == "qa":
                self._add_qa_head(task.name)
                continue
            # Keras' Dense defaults are the original's tf.layers.dense ones: Glorot-uniform
            # kernel, zero bias (not the encoder's truncated normal).
            self.heads[task.name] = keras.layers.Dense(
                task.num_outputs, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                name=f"{task.name}_head")
            if task.kind == "tagging" and use_crf:
                self.crfs[task.name] = CRF(task.num_outputs, name=f"{task.name}_head_crf")
        self._loss_tracker = keras.metrics.Mean(name="loss")

    def _add_qa_head(self, name: str) -> None:
        def dense(units, suffix, activation=None):
            return keras.layers.Dense(units, activation=activation,
                                      kernel_initializer="glorot_uniform",
                                      bias_initializer="zeros", name=f"{name}_head{suffix}")

        self.heads[name] = dense(1, "")  # start logits
        if self.qa_head["joint_prediction"]:
            # Applied to [start vector; token vector] through its kernel's two halves.
            self.qa_layers[f"{name}/end_hidden"] = dense(QA_HIDDEN, "_end_hidden")
        self.qa_layers[f"{name}/end"] = dense(1, "_end")
        if self.qa_head["answerable_classifier"]:
            if self.qa_head["answerable_uses_start_logits"]:
                self.qa_layers[f"{name}/answerable_hidden"] = dense(
                    QA_HIDDEN, "_answerable_hidden", gelu_approximate)
            self.qa_layers[f"{name}/answerable"] = dense(1, "_answerable")

    @property
    def metrics(self):
        return [self._loss_tracker]

    def get_config(self):
        return {"encoder": keras.saving.serialize_keras_object(self.encoder),
                "tasks": [dataclasses.asdict(Head.of(t)) for t in self.tasks],
                "dropout_rate": self.dropout_rate, "use_crf": self.use_crf,
                "preprocessing": self.preprocessing, "mean_loss": self.mean_loss,
                "qa_head": self.qa_head, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        heads = [Head(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in h.items()}) for h in config.pop("tasks")]
        model = cls(encoder, heads, **config)
        model.build_heads()
        return model

    def without_optimizer(self) -> FinetuningModel:
        """An uncompiled copy with the same weights: what to save for serving (a
        compiled model's ``.keras`` also holds its optimizer state, twice the weights)."""
        copy = type(self).from_config(self.get_config())
        copy.set_weights(self.get_weights())
        return copy

    def build_heads(self, seq_length: int = 8) -> None:
        """Create the heads' variables (a call on a dummy batch)."""
        shape = ((1, NUM_CHOICES, seq_length) if self.tasks[0].kind == "multiple_choice"
                 else (1, seq_length))
        inputs = {k: np.zeros(shape, np.int32) for k in ENCODER_KEYS}
        if any(t.kind == "tagging" for t in self.tasks):
            inputs.update(word_positions=np.zeros((1, seq_length), np.int32),
                          word_mask=np.zeros((1, seq_length), np.int32))
        if any(t.kind == "qa" for t in self.tasks):
            inputs["start_positions"] = np.zeros((1,), np.int32)
        self(inputs)

    def call(self, inputs, training=None):
        encoder_inputs = {k: inputs[k] for k in ENCODER_KEYS}
        choices = self.tasks[0].kind == "multiple_choice"
        if choices:  # (batch, options, seq) -> (batch * options, seq)
            length = tf.shape(inputs["input_ids"])[-1]
            encoder_inputs = {k: tf.reshape(v, [-1, length]) for k, v in encoder_inputs.items()}
        outputs = self.encoder(encoder_inputs, training=training)
        pooled = self.dropout(outputs["pooled_output"], training=training)
        sequence = None
        results = {}
        for task in self.tasks:
            head = self.heads[task.name]
            if task.kind == "tagging":
                if "word_positions" not in inputs:  # a batch of sentences to classify
                    continue
                if sequence is None:
                    sequence = self.dropout(outputs["sequence_output"], training=training)
                # Emissions of each word's first WordPiece: (batch, words, tags).
                words = tf.gather(sequence, inputs["word_positions"], batch_dims=1)
                results[task.name] = tf.cast(head(words), tf.float32)
            elif task.kind == "qa":
                results[task.name] = self._qa_outputs(task.name, inputs,
                                                      outputs["sequence_output"], training)
            elif task.kind == "multiple_choice":
                results[task.name] = tf.reshape(tf.cast(head(pooled), tf.float32),
                                                [-1, NUM_CHOICES])
            elif task.kind == "regression":
                results[task.name] = tf.cast(head(pooled), tf.float32)[:, 0]
            else:
                results[task.name] = tf.cast(head(pooled), tf.float32)
        return results

    def _qa_outputs(self, name, inputs, hidden, training):
        """The QA head's logits: in training start/end logits over the tokens and the
        answerability logit; in prediction also the beam's top starts and their top ends
        (joint prediction)."""
        options, layers = self.qa_head, self.qa_layers
        length = hidden.shape[1] or tf.shape(hidden)[1]
        # Only [CLS] and the context may hold an answer (padding and question excluded).
        answer_mask = tf.cast(inputs["input_mask"], tf.float32) * tf.cast(
            inputs["segment_ids"], tf.float32)
        answer_mask += tf.one_hot(tf.zeros_like(inputs["input_mask"][:, 0]), length)
        penalty = 1000.0 * (answer_mask - 1.0)
        start_logits = tf.cast(tf.squeeze(self.heads[name](hidden), -1), tf.float32) + penalty
        result = {"start_logits": start_logits}
        if options["joint_prediction"]:
            layer = layers[f"{name}/end_hidden"]
            size = hidden.shape[-1]
            if not layer.built:
                layer.build((None, 2 * size))
            kernel = tf.cast(layer.kernel, hidden.dtype)
            bias = tf.cast(layer.bias, hidden.dtype)
            # dense([start; token]) = start @ K[:H] + token @ K[H:] + b, without tiling
            # [start; token] over every (start, token) pair.
            token_part = tf.matmul(hidden, kernel[size:]) + bias
            if training:
                start = tf.gather(hidden, tf.cast(inputs["start_positions"], tf.int32),
                                  batch_dims=1)
                end_hidden = gelu_approximate(token_part
                                              + tf.matmul(start, kernel[:size])[:, None])
                end_logits = tf.cast(tf.squeeze(layers[f"{name}/end"](end_hidden), -1),
                                     tf.float32) + penalty
                result["end_logits"] = end_logits
            else:
                beam = min(options["beam_size"], hidden.shape[1] or options["beam_size"])
                start_top, start_index = tf.math.top_k(tf.nn.log_softmax(start_logits), beam)
                starts = tf.gather(hidden, start_index, batch_dims=1)  # (batch, beam, H)
                end_hidden = gelu_approximate(token_part[:, None]
                                              + tf.matmul(starts, kernel[:size])[:, :, None])
                end_logits = tf.cast(tf.squeeze(layers[f"{name}/end"](end_hidden), -1),
                                     tf.float32) + penalty[:, None]
                end_top, end_index = tf.math.top_k(tf.nn.log_softmax(end_logits), beam)
                # As the original: no per-token end logits in joint prediction (a null
                # score without the answerability logit is then the [CLS] start logit).
                result.update(start_top_log_probs=start_top, start_top_index=start_index,
                              end_top_log_probs=end_top, end_top_index=end_index,
                              end_logits=tf.zeros_like(start_logits))
        else:
            result["end_logits"] = tf.cast(tf.squeeze(layers[f"{name}/end"](hidden), -1),
                                           tf.float32) + penalty
        if options["answerable_classifier"]:
            features = hidden[:, 0]
            if options["answerable_uses_start_logits"]:
                start_p = tf.cast(tf.nn.softmax(start_logits), hidden.dtype)
                weighted = tf.reduce_sum(start_p[:, :, None] * hidden, axis=1)
                features = layers[f"{name}/answerable_hidden"](
                    tf.concat([features, weighted], -1))
            result["answerable_logit"] = tf.cast(
                tf.squeeze(layers[f"{name}/answerable"](features), -1), tf.float32)
        else:
            result["answerable_logit"] = tf.zeros_like(start_logits[:, 0])
        return result

    def _reduce(self, losses, weights):
        if self.mean_loss:
            return global_batch_mean(losses, weights)
        return tf.reduce_sum(losses * weights)

    def task_losses(self, inputs, labels, outputs):
        """{task: this replica's share of the task's loss}: the sum over its examples of
        each one's loss (a tagged sentence's: the sum over its words), or with
        ``mean_loss`` its share of the global-batch mean; batches of other tasks weigh 0."""
        losses = {}
        task_id = inputs.get("task_id")
        for index, task in enumerate(self.tasks):
            y, out = labels[task.name], outputs[task.name]
            weights = (tf.ones(tf.shape(y)[:1], tf.float32) if task_id is None
                       else tf.cast(tf.equal(task_id, index), tf.float32))
            if task.kind == "regression":
                per_example = tf.square(out - tf.cast(y, tf.float32))
            elif task.kind == "qa":
                y = tf.cast(y, tf.int32)
                per_example = 0.5 * (
                    tf.nn.sparse_softmax_cross_entropy_with_logits(y[:, 0], out["start_logits"])
                    + tf.nn.sparse_softmax_cross_entropy_with_logits(y[:, 1], out["end_logits"]))
                if self.qa_head["answerable_classifier"]:
                    per_example += self.qa_head["answerable_weight"] * \
                        tf.nn.sigmoid_cross_entropy_with_logits(
                            labels=tf.cast(y[:, 2], tf.float32), logits=out["answerable_logit"])
            elif task.kind == "tagging":
                word_mask = tf.cast(inputs["word_mask"], tf.float32)
                word_tags = tf.gather(y, inputs["word_positions"], batch_dims=1)
                word_tags = tf.where(word_mask > 0, word_tags, 0)
                if task.name in self.crfs:
                    per_example = -self.crfs[task.name].log_likelihood(
                        out, word_tags, inputs["word_mask"])
                else:
                    token = tf.nn.sparse_softmax_cross_entropy_with_logits(word_tags, out)
                    losses[task.name] = self._reduce(token, weights[:, None] * word_mask)
                    continue
            else:
                per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    tf.cast(y, tf.int32), out)
            losses[task.name] = self._reduce(per_example, weights)
        return losses

    def train_step(self, data):
        inputs, labels = data
        with tf.GradientTape() as tape:
            outputs = self(inputs, training=True)
            loss = tf.add_n(list(self.task_losses(inputs, labels, outputs).values()))
            # A summed loss is differentiated per example and its gradients multiplied
            # back: the same gradients, but fp16 loss scaling then sees a mean-sized loss
            # and does not overflow on a batch-sized one.
            examples = None if self.mean_loss else cross_replica_sum(
                tf.cast(tf.shape(inputs["input_ids"])[0], tf.float32))
            scaled = self.optimizer.scale_loss(loss if examples is None else loss / examples)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        if examples is not None:
            gradients = [_times(g, examples) for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._loss_tracker.update_state(cross_replica_sum(loss))
        return {"loss": self._loss_tracker.result()}

    def predict_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        outputs = self(inputs, training=False)
        for task in self.tasks:
            if task.kind != "tagging" or task.name not in outputs:
                continue
            if task.name in self.crfs:
                tags = self.crfs[task.name](outputs[task.name], inputs["word_mask"])
            else:
                tags = tf.argmax(outputs[task.name], -1, output_type=tf.int32)
            outputs[task.name] = tf.where(inputs["word_mask"] > 0, tags, -1)
        return outputs
