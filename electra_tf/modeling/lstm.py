"""The BiLSTM classifier of Wang, Khabsa and Ma, "To Pretrain or Not to Pretrain" (2020).

``LSTM-n-k``: a token embedding (trained from scratch, or a pretrained table kept
frozen and fed straight into the first LSTM, the paper's ``+emb`` models), n stacked
bidirectional LSTM layers of k units per direction, max-pooling over time of the top
layer's states (padding excluded), dropout, and a linear layer to the label logits.
Sentence pairs arrive packed (``[CLS] a [SEP] b [SEP]``) by the featurizers of
:mod:`electra_tf.finetuning`, and the LSTM reads the packed sequence as it is.

The paper reports parameter counts without the embedding table;
:func:`lstm_parameter_count` gives them by formula, and :func:`embeddings_from_encoder`
takes the token table of an encoder this package exported, for the frozen-embedding
variant.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from electra_tf import files
from electra_tf.modeling.layers import Dropout
from electra_tf.modeling.models import Encoder

LSTM_INPUTS = ("input_ids", "input_mask")


@keras.saving.register_keras_serializable(package="electra_tf")
class MaskedMaxPooling(keras.layers.Layer):
    """Max over time of the real (unmasked) positions.

    Padded positions are replaced by the dtype's lowest finite value before the max, so
    whatever the states hold there never wins; a row without any real position pools to
    zeros.

    Call arguments:
      sequence: (batch, seq_len, features).
      mask: (batch, seq_len), 1/True for real tokens.
    Returns (batch, features).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the mask is an explicit argument; none goes on

    def call(self, sequence, mask):
        mask = ops.cast(mask, "bool")
        lowest = ops.cast(tf.as_dtype(sequence.dtype).min, sequence.dtype)
        pooled = ops.max(ops.where(mask[:, :, None], sequence, lowest), axis=1)
        has_tokens = ops.any(mask, axis=1, keepdims=True)
        return ops.where(has_tokens, pooled, ops.zeros_like(pooled))

    def compute_output_shape(self, sequence_shape, mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])

    def compute_mask(self, sequence, mask=None):
        return None


@keras.saving.register_keras_serializable(package="electra_tf")
class BiLstmClassifier(keras.Model):
    """``LSTM-n-k``: embedding -> n BiLSTM layers -> masked max-pool -> dropout -> logits.

    Inputs: a dict like the transformer models' (int32 (batch, seq_len)): ``input_ids``
    and ``input_mask`` (1 = real token); ``segment_ids`` and any other features of the
    batch are accepted and ignored. Output: float32 logits (batch, num_labels).

    The padding mask goes to every LSTM, so padded steps leave its state untouched (also
    in the backward direction, which meets right padding first): a sequence gives the
    same logits whatever padding follows it.

    Weights start from Keras' defaults (uniform +-0.05 embedding, glorot-uniform kernels,
    orthogonal recurrent kernels, forget-gate bias 1).

    Args:
      vocab_size: number of token ids.
      num_labels: number of output logits.
      num_layers: n, the number of stacked bidirectional LSTM layers.
      units: k, the LSTM units per direction (each layer outputs 2k features).
      embedding_size: width of the token table trained from scratch (the paper's 128).
      pretrained_embeddings: optional numpy array (vocab_size, width) to initialize the
        token table with; the table is then frozen (``trainable=False``) and, as in the
        paper, its `width`-wide rows are the first LSTM's input. The table is not part
        of the config: the saved weights carry it.
      pretrained_width: the width of a pretrained table whose values come later (from
        saved weights); what the config stores in place of the table. Taken from
        `pretrained_embeddings` when that is given.
      project_pretrained: put a trainable Dense ``embeddings_project`` from the pretrained
        width to `embedding_size` between the frozen table and the first LSTM (when the
        widths differ). Not the paper's model: a cheaper first layer on a wide table.
      dropout_rate: dropout on the pooled vector before the output layer. 0.1 (the
        finetuning heads' rate) by default.
      name: the model name; ``LSTM-<n>-<k>`` by default, the paper's naming.
    """

    def __init__(self, vocab_size: int, num_labels: int, num_layers: int, units: int,
                 embedding_size: int = 128, pretrained_embeddings: np.ndarray | None = None,
                 pretrained_width: int | None = None, project_pretrained: bool = False,
                 dropout_rate: float = 0.1, name: str | None = None, **kwargs):
        if num_layers < 1 or units < 1 or num_labels < 1 or embedding_size < 1:
            raise ValueError(f"num_layers={num_layers}, units={units}, num_labels="
                             f"{num_labels} and embedding_size={embedding_size} must all "
                             f"be at least 1")
        table = None
        if pretrained_embeddings is not None:
            table = np.asarray(pretrained_embeddings)
            if table.ndim != 2 or table.shape[0] != vocab_size:
                raise ValueError(f"pretrained_embeddings has shape {table.shape}; expected "
                                 f"(vocab_size={vocab_size}, width)")
            if pretrained_width is not None and pretrained_width != table.shape[1]:
                raise ValueError(f"pretrained_width={pretrained_width} but the "
                                 f"pretrained_embeddings are {table.shape[1]} wide")
            pretrained_width = int(table.shape[1])
        table_width = embedding_size if pretrained_width is None else pretrained_width
        name = name or f"LSTM-{num_layers}-{units}"

        word_embeddings = keras.layers.Embedding(
            vocab_size, table_width, trainable=pretrained_width is None,
            name="word_embeddings")
        embeddings_project = None
        if project_pretrained and table_width != embedding_size:
            embeddings_project = keras.layers.Dense(embedding_size, name="embeddings_project")
        lstm_layers = [
            keras.layers.Bidirectional(
                keras.layers.LSTM(units, return_sequences=True, name="lstm"),
                name=f"bilstm_{i}")
            for i in range(num_layers)
        ]
        pooling = MaskedMaxPooling(name="max_pooling")
        dropout = Dropout(dropout_rate, name="dropout")
        # float32 logits also under a mixed policy (the softmax wants full precision).
        classifier = keras.layers.Dense(num_labels, dtype="float32", name="classifier")

        inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key)
                  for key in LSTM_INPUTS}
        mask = ops.cast(inputs["input_mask"], "bool")
        x = word_embeddings(inputs["input_ids"])
        if embeddings_project is not None:
            x = embeddings_project(x)
        for layer in lstm_layers:
            x = layer(x, mask=mask)
        logits = classifier(dropout(pooling(x, mask)))
        super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)

        self.vocab_size = vocab_size
        self.num_labels = num_labels
        self.num_layers = num_layers
        self.units = units
        self.embedding_size = embedding_size
        self.pretrained_width = pretrained_width
        self.project_pretrained = project_pretrained
        self.dropout_rate = dropout_rate
        self.word_embeddings = word_embeddings
        self.embeddings_project = embeddings_project
        self.lstm_layers = lstm_layers
        if table is not None:
            word_embeddings.embeddings.assign(table.astype(word_embeddings.embeddings.dtype))

    def call(self, inputs, training=None, mask=None, **kwargs):
        # A finetuning batch carries segment_ids (and maybe more): pick this model's
        # inputs by name.
        if isinstance(inputs, Mapping):
            missing = [key for key in LSTM_INPUTS if key not in inputs]
            if missing:
                raise ValueError(f"{self.name}: input batch lacks {missing}; it has "
                                 f"{sorted(inputs)}")
            inputs = {key: inputs[key] for key in LSTM_INPUTS}
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def get_config(self):
        return {"vocab_size": self.vocab_size, "num_labels": self.num_labels,
                "num_layers": self.num_layers, "units": self.units,
                "embedding_size": self.embedding_size,
                "pretrained_width": self.pretrained_width,
                "project_pretrained": self.project_pretrained,
                "dropout_rate": self.dropout_rate, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # saved before project_pretrained existed, when a wider table was always projected
        width = config.get("pretrained_width")
        config.setdefault("project_pretrained", width is not None
                          and width != config.get("embedding_size", 128))
        return cls(**config)


def lstm_parameter_count(num_layers: int, units: int, embedding_size: int, num_labels: int,
                         vocab_size: int | None = None, pretrained_width: int | None = None,
                         project_pretrained: bool = False) -> dict:
    """Parameters of ``LSTM-<num_layers>-<units>``, by formula.

    A Keras LSTM layer of k units on inputs of width d has 4k(d + k) + 4k parameters
    (input kernel, recurrent kernel, one bias vector); Bidirectional doubles it. Layer 0
    reads the token table's width (`embedding_size`, or `pretrained_width` for a
    pretrained table), every later layer the 2k of the one below. The output layer has
    2k * num_labels + num_labels. With `project_pretrained` (and widths that differ) the
    projection adds pretrained_width * embedding_size + embedding_size and layer 0 reads
    `embedding_size`.

    Returns a dict of ints: "lstm", "projection", "output", "without_embeddings" (their
    sum, what the paper reports: for a frozen pretrained table, the trainable
    parameters), and "embeddings" (vocab_size * table width) and "total" (None when
    `vocab_size` is not given).
    """
    def bidirectional(inputs):
        return 2 * (4 * units * (inputs + units) + 4 * units)

    table_width = embedding_size if pretrained_width is None else pretrained_width
    projected = project_pretrained and table_width != embedding_size
    lstm_input = embedding_size if projected else table_width
    lstm = sum(bidirectional(lstm_input if i == 0 else 2 * units) for i in range(num_layers))
    projection = table_width * embedding_size + embedding_size if projected else 0
    output = 2 * units * num_labels + num_labels
    without = lstm + projection + output
    embeddings = total = None
    if vocab_size is not None:
        embeddings = vocab_size * table_width
        total = without + embeddings
    return {"lstm": lstm, "projection": projection, "output": output,
            "without_embeddings": without, "embeddings": embeddings, "total": total}


def _read_lines(path: str) -> list[str]:
    return files.read_text(path).splitlines()


def embeddings_from_encoder(path_or_dir: str, vocab_file: str) -> np.ndarray:
    """The token embedding table (vocab_size, embedding_size) of an exported encoder.

    `path_or_dir` is an ``encoder.keras`` written by
    :func:`electra_tf.pretraining.trainer.export_encoder`, or the model dir holding it;
    the export's ``vocab.txt`` (beside the ``.keras`` file) must equal `vocab_file`, the
    vocab the task is featurized with, or the rows would mean other tokens: a ValueError
    names both files and the first differing line (or the sizes). Only the token table
    is taken: the encoder's position and segment tables and LayerNorm are not used.
    """
    path = path_or_dir
    if files.isdir(path):
        path = files.join(path, "encoder.keras")
    if not files.exists(path):
        raise ValueError(f"{path}: no such encoder file (expected an encoder.keras or a "
                         f"model dir holding one)")
    export_vocab = files.join(files.parent(path), "vocab.txt")
    if not files.exists(export_vocab):
        raise ValueError(f"{export_vocab}: no vocab beside {path}; cannot check that its "
                         f"embeddings match {vocab_file}")
    if not files.exists(vocab_file):
        raise ValueError(f"{vocab_file}: no such vocab file")
    theirs, ours = _read_lines(export_vocab), _read_lines(vocab_file)
    for line_no, (a, b) in enumerate(zip(theirs, ours, strict=False), 1):
        if a != b:
            raise ValueError(f"the encoder's vocab {export_vocab} differs from the task's "
                             f"vocab {vocab_file} at line {line_no}: {a!r} vs {b!r}")
    if len(theirs) != len(ours):
        raise ValueError(f"the encoder's vocab {export_vocab} has {len(theirs)} lines, the "
                         f"task's vocab {vocab_file} {len(ours)}")
    with files.local_copy(path) as local:  # Keras reads local files only
        encoder = keras.saving.load_model(local, compile=False)
    if not isinstance(encoder, Encoder):
        raise ValueError(f"{path} holds a {type(encoder).__name__}, not an electra_tf "
                         f"Encoder")
    table = ops.convert_to_numpy(encoder.embeddings.word_embeddings.embeddings)
    if table.shape[0] != len(ours):
        raise ValueError(f"{path}: the token table has {table.shape[0]} rows but its vocab "
                         f"{export_vocab} has {len(ours)} lines")
    return table
