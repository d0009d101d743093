"""Building blocks: the shared embedding module, the transformer stack, the heads.

Small Keras layers in the keras-hub style (config-serializable, documented arguments),
built from keras-hub pieces. Sub-layer names follow the original's variable scopes
(``word_embeddings``, ``LayerNorm``, ``embeddings_project``, ``layer_<i>``) so checkpoint
converters can map them one to one.
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf
from keras import ops
from keras_hub.src.layers.modeling.transformer_layer_utils import (
    merge_padding_and_attention_mask,
)

from electra_tf.modeling import fused


@keras.saving.register_keras_serializable(package="electra_tf")
def gelu(x):
    """The exact GELU of the original, x * Phi(x), computed in float32 with its gradient
    written out, as one XLA-compiled kernel forward and one backward
    (:func:`electra_tf.modeling.fused.gelu`).

    Same values as ``tf.nn.gelu(x)``; under bfloat16 on CPU about 4x faster forward and
    backward than its op-by-op form, which is itself 1.8x faster than ``tf.nn.gelu``'s
    autodiff (bfloat16 ``Erfc`` is slow on CPU, and the derivative x * phi(x) + Phi(x)
    needs 4 element-wise passes instead of the chain rule's 10).
    """
    return fused.gelu(x)


@keras.saving.register_keras_serializable(package="electra_tf")
def gelu_approximate(x):
    """The tanh GELU of later BERT code: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name: str):
    """Activation by the config's `hidden_act` name ("gelu" is the exact erf form)."""
    if name == "gelu":
        return gelu
    if name == "gelu_approximate":
        return gelu_approximate
    if name == "relu":
        return keras.activations.get(name)
    raise ValueError(f"unknown hidden_act {name!r}; allowed: gelu, gelu_approximate, relu")


def truncated_normal(stddev: float) -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=stddev)


def replica_seed(seed_generator: keras.random.SeedGenerator):
    """The generator's next int32 seed with the replica id folded in under a
    ``tf.distribute`` strategy: the generator's state is mirrored, so without this every
    replica would draw the same random numbers. Folded in by
    ``tf.random.experimental.stateless_fold_in``: added to the seed's second word, the
    generator's call counter, replica r's seed at call k would be replica 0's at call
    k + r."""
    seed = tf.cast(seed_generator.next(), "int32")
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        replica = tf.cast(context.replica_id_in_sync_group, "int32")
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
    return seed


@keras.saving.register_keras_serializable(package="electra_tf")
class Dropout(keras.layers.Dropout):
    """Inverted dropout from 8 random bits per element, different on every replica.

    ``keras.layers.Dropout`` draws one 32-bit Philox output per element (in bfloat16 a
    uniform with only 8 significant bits). Here each 32-bit output decides four
    elements at once: their 16 keep/drop patterns, each with its probability under
    independent drops at `rate`, split the 2^32 values into intervals, and the output's
    interval is the pattern (``fused.dropout_keep``). Every pattern's probability is
    exact to 2^-32, so the elements are dropped independently at `rate`, and the
    survivors are scaled by 1 / (1 - rate). A quarter of Keras' random numbers make the
    masks ~1.5x as fast on CPU as two 16-bit draws per output (docs/benchmarks.md).
    Under a ``tf.distribute`` strategy each replica folds its id into the seed (Keras'
    own layer draws the same mask on every replica).
    """

    def call(self, inputs, training=False):
        if training and self.rate and self.noise_shape is not None:
            return super().call(inputs, training=training)  # few draws: Keras' way is fine
        mask = self.keep_mask(inputs, training)
        if mask is None:
            return inputs
        keep, scale = mask
        return tf.where(keep, inputs * tf.cast(scale, inputs.dtype), tf.zeros((), inputs.dtype))

    def keep_mask(self, inputs, training=False):
        """(keep, scale): which elements of `inputs` survive and their factor; None when
        the layer passes `inputs` through (not training, or rate 0). Not for
        ``noise_shape`` masks."""
        if not training or self.rate == 0:
            return None
        if self.rate >= 1:
            return tf.zeros(tf.shape(inputs), tf.bool), 0.0
        size = tf.size(inputs)
        words = tf.random.stateless_uniform([(size + 3) // 4], seed=replica_seed(
            self.seed_generator), minval=None, maxval=None, dtype=tf.uint32)
        keep = tf.reshape(fused.dropout_keep(words, self.rate)[:size], tf.shape(inputs))
        return keep, 1.0 / (1.0 - self.rate)


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerEncoderLayer(keras_hub.layers.TransformerEncoder):
    """keras-hub's ``TransformerEncoder`` with this module's :class:`Dropout` in its
    three dropout places (attention probabilities, attention output, feed-forward
    output); the weights and their names are keras-hub's."""

    def build(self, inputs_shape):
        super().build(inputs_shape)
        policy = self.dtype_policy
        _replace_sublayer(self, "_self_attention_dropout", Dropout(
            self.dropout, dtype=policy, name="self_attention_dropout"))
        _replace_sublayer(self, "_feedforward_dropout", Dropout(
            self.dropout, dtype=policy, name="feedforward_dropout"))
        attention = self._self_attention_layer
        _replace_sublayer(attention, "_dropout_layer", Dropout(
            attention.dropout, dtype=attention.dtype_policy, seed=attention.seed))

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None,
             return_attention_scores=False):
        if (self.normalize_first or return_attention_scores or not fused.enabled()
                or not _plain_self_attention(self._self_attention_layer)):
            return super().call(inputs, padding_mask, attention_mask, training,
                                return_attention_scores)
        # keras-hub's post-LN block. Each residual step (the output dense's bias,
        # dropout, residual add, LayerNorm) is one compiled kernel.
        mask = merge_padding_and_attention_mask(inputs, padding_mask, attention_mask)
        y, bias = _self_attention(self._self_attention_layer, inputs, mask, training)
        x = fused.dropout_add_layer_norm(
            self._self_attention_layer_norm, y, inputs,
            self._self_attention_dropout.keep_mask(y, training), bias)
        output = self._feedforward_output_dense
        y = _matmul(_dense(self._feedforward_intermediate_dense, x), output.kernel)
        return fused.dropout_add_layer_norm(
            self._feedforward_layer_norm, y, x,
            self._feedforward_dropout.keep_mask(y, training), output.bias)


def _plain_self_attention(attention) -> bool:
    """Whether `attention` (keras' MultiHeadAttention) is the plain kind
    :func:`_self_attention` computes: biased projections, attention over the positions,
    no gate, no sliding window, values as wide as keys, the input's width out."""
    return (attention._use_bias and tuple(attention._attention_axes) == (1,)
            and not getattr(attention, "_use_gate", False)
            and getattr(attention, "_sliding_window", None) is None
            and attention._value_dim == attention._key_dim
            and attention._output_shape is None)


def _matmul(x, kernel):
    """x (..., d) @ kernel (..., k) with its leading axes flattened to d rows, in x's
    dtype, as one 2-D matmul: (..., k)."""
    kernel = tf.reshape(tf.cast(kernel, x.dtype), [-1, kernel.shape[-1]])
    y = tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), kernel)
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [kernel.shape[-1]]], 0))


def _self_attention(attention, x, mask=None, training=None):
    """`attention` (keras' MultiHeadAttention, :func:`_plain_self_attention`) over `x`
    (batch, positions, width) as (the output before its bias, the bias).

    The same products as the layer's own call, in fewer and larger kernels: Keras
    projects the query, key and value with three einsums, adds each bias, scales the
    query, and runs the scores and weighted values as einsums, each a oneDNN batched
    matmul wrapped in transposes. Here one matmul makes all three projections, one
    compiled kernel adds the biases, scales the query and moves the heads in front of
    the positions, and the products are plain batched matmuls (at ELECTRA's shapes the
    einsum pair took ~1.8x as long on CPU, docs/benchmarks.md). The output projection's
    bias is left to the residual step's kernel.
    """
    dense = (attention._query_dense, attention._key_dense, attention._value_dense)
    width = attention._query_dense.kernel.shape[0]
    kernel = tf.concat([tf.reshape(layer.kernel, [width, -1]) for layer in dense], 1)
    query, key, value = fused.split_heads(
        _matmul(x, kernel), tf.stack([tf.convert_to_tensor(layer.bias) for layer in dense]),
        attention._inverse_sqrt_key_dim)
    scores = tf.linalg.matmul(query, key, transpose_b=True)  # (B, N, T, S)
    if mask is not None:
        mask = ops.expand_dims(mask, axis=-3)  # over the heads
    dropout = (attention._dropout_layer.keep_mask(scores, training)
               if attention._dropout > 0 else None)
    probabilities = fused.attention_probabilities(scores, mask, dropout)
    context = tf.transpose(tf.linalg.matmul(probabilities, value), (0, 2, 1, 3))
    output = attention._output_dense
    heads = tf.reshape(context, tf.concat([tf.shape(x)[:2], [-1]], 0))
    return _matmul(heads, output.kernel), output.bias


def _dense(layer, x):
    """A Dense layer on `x`; with the exact GELU, its bias and activation fused."""
    return fused.dense_gelu(layer, x) if layer.activation is gelu else layer(x)


def _replace_sublayer(layer, attribute, new):
    # A built Keras layer refuses new state; the replacement holds only a seed, and the
    # weights stay as built.
    if not isinstance(getattr(layer, attribute, None), keras.layers.Dropout):
        raise TypeError(f"{type(layer).__name__}.{attribute} is not a Dropout layer: the "
                        f"installed keras-hub/Keras changed the layer this package patches")
    locked = layer._tracker.locked
    layer._tracker.unlock()
    setattr(layer, attribute, new)
    if locked:
        layer._tracker.lock()


@keras.saving.register_keras_serializable(package="electra_tf")
class Embeddings(keras.layers.Layer):
    """Token + position + segment embeddings, then LayerNorm and dropout.

    The original's ``embeddings`` scope. The token table is a keras-hub
    ``ReversibleEmbedding`` so MLM heads can tie their output layer to it.

    Args:
      vocab_size: number of token ids.
      embedding_size: width of all three tables.
      max_position_embeddings: longest sequence the position table covers.
      type_vocab_size: number of segment ids.
      dropout_rate: dropout after the LayerNorm.
      initializer_range: stddev of the truncated-normal table initializer.
      layer_norm_epsilon: LayerNorm epsilon.

    Call arguments:
      input_ids: int tensor (batch, seq_len).
      segment_ids: optional int tensor (batch, seq_len); zeros when omitted.
    Returns (batch, seq_len, embedding_size).
    """

    def __init__(self, vocab_size, embedding_size, max_position_embeddings=512,
                 type_vocab_size=2, dropout_rate=0.1, initializer_range=0.02,
                 layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.word_embeddings = keras_hub.layers.ReversibleEmbedding(
            vocab_size, embedding_size, tie_weights=True,
            embeddings_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy, name="word_embeddings")
        self.position_embeddings = keras_hub.layers.PositionEmbedding(
            max_position_embeddings, initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy, name="position_embeddings")
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, embedding_size,
            embeddings_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy, name="token_type_embeddings")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm")
        self.dropout = Dropout(dropout_rate, dtype=self.dtype_policy)

    def build(self, input_ids_shape=None, segment_ids_shape=None):
        shape = (None, None, self.embedding_size)
        self.word_embeddings.build(None)
        self.position_embeddings.build(shape)
        self.token_type_embeddings.build(None)
        self.layer_norm.build(shape)
        self.built = True

    def call(self, input_ids, segment_ids=None, training=None):
        x = self.word_embeddings(input_ids)
        x = x + self.position_embeddings(x)
        if segment_ids is None:
            segment_ids = ops.zeros_like(input_ids)
        x = x + self.token_type_embeddings(segment_ids)
        return self.dropout(fused.layer_norm(self.layer_norm, x), training=training)

    def compute_output_shape(self, input_ids_shape, segment_ids_shape=None):
        return tuple(input_ids_shape) + (self.embedding_size,)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_size=self.embedding_size,
                      max_position_embeddings=self.max_position_embeddings,
                      type_vocab_size=self.type_vocab_size, dropout_rate=self.dropout_rate,
                      initializer_range=self.initializer_range,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerStack(keras.layers.Layer):
    """Optional ``embeddings_project`` Dense, then post-LN transformer layers.

    With ``num_layer_groups=None`` every layer has its own weights (BERT, ELECTRA);
    with k groups, layer i runs group ``i * k // num_hidden_layers`` (ALBERT's
    assignment), so k=1 runs one set of weights num_hidden_layers times.

    Args:
      hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: sizes.
      embedding_size: width of the incoming embeddings; a Dense projects it to
        hidden_size when they differ.
      num_layer_groups: None (unshared) or a divisor of num_hidden_layers.
      hidden_act: "gelu" (exact), "gelu_approximate" (tanh) or "relu".
      dropout_rate, initializer_range, layer_norm_epsilon: as in the config.

    Call arguments:
      embeddings: (batch, seq_len, embedding_size).
      padding_mask: optional (batch, seq_len), 1/True for real tokens.
    Returns (batch, seq_len, hidden_size).
    """

    def __init__(self, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
                 embedding_size, num_layer_groups=None, hidden_act="gelu",
                 dropout_rate=0.1, initializer_range=0.02, layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.embedding_size = embedding_size
        self.num_layer_groups = num_layer_groups
        self.hidden_act = hidden_act
        self.dropout_rate = dropout_rate
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        groups = num_hidden_layers if num_layer_groups is None else num_layer_groups
        if groups < 1 or num_hidden_layers % groups:
            raise ValueError(f"num_layer_groups={num_layer_groups} must divide "
                             f"num_hidden_layers={num_hidden_layers}")
        self.embeddings_project = None
        if embedding_size != hidden_size:
            # The original builds it with tf.layers.dense defaults: glorot_uniform.
            self.embeddings_project = keras.layers.Dense(
                hidden_size, dtype=self.dtype_policy, name="embeddings_project")
        self.transformer_layers = [
            TransformerEncoderLayer(
                intermediate_dim=intermediate_size, num_heads=num_attention_heads,
                dropout=dropout_rate, activation=get_activation(hidden_act),
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=truncated_normal(initializer_range),
                dtype=self.dtype_policy, name=f"layer_{g}")
            for g in range(groups)
        ]

    def layer_for(self, index: int):
        """The weight-holding layer that runs at depth `index`."""
        return self.transformer_layers[index * len(self.transformer_layers)
                                       // self.num_hidden_layers]

    def build(self, embeddings_shape=None, padding_mask_shape=None):
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, self.embedding_size))
        for layer in self.transformer_layers:
            layer.build((None, None, self.hidden_size))
        self.built = True

    def call(self, embeddings, padding_mask=None, training=None):
        x = embeddings
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        if padding_mask is not None:
            padding_mask = ops.cast(padding_mask, "bool")
        for index in range(self.num_hidden_layers):
            x = self.layer_for(index)(x, padding_mask=padding_mask, training=training)
        return x

    def compute_output_shape(self, embeddings_shape, padding_mask_shape=None):
        return tuple(embeddings_shape[:-1]) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                      num_attention_heads=self.num_attention_heads,
                      intermediate_size=self.intermediate_size,
                      embedding_size=self.embedding_size,
                      num_layer_groups=self.num_layer_groups, hidden_act=self.hidden_act,
                      dropout_rate=self.dropout_rate, initializer_range=self.initializer_range,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class ReplacedTokenDetectionHead(keras.layers.Layer):
    """ELECTRA's discriminator head: Dense(hidden, GELU) -> Dense(1), one logit per token.

    Returns float32 logits (batch, seq_len).

    Args:
      hidden_size: width of the hidden Dense.
      hidden_act: its activation name.
      initializer_range: stddev of the truncated-normal kernel initializer.
    """

    def __init__(self, hidden_size, hidden_act="gelu", initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size, activation=get_activation(hidden_act),
            kernel_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy, name="dense")
        # glorot_uniform, as the original's tf.layers.dense(hidden, units=1).
        self.dense_1 = keras.layers.Dense(1, dtype=self.dtype_policy, name="dense_1")

    def build(self, inputs_shape):
        self.dense.build(inputs_shape)
        self.dense_1.build(tuple(inputs_shape[:-1]) + (self.hidden_size,))
        self.built = True

    def call(self, sequence_output):
        logits = ops.squeeze(self.dense_1(_dense(self.dense, sequence_output)), axis=-1)
        return ops.cast(logits, "float32")

    def compute_output_spec(self, sequence_output):
        return keras.KerasTensor(tuple(sequence_output.shape[:-1]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, hidden_act=self.hidden_act,
                      initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="electra_tf")
class TiedMaskedLMHead(keras.layers.Layer):
    """The original's MLM head, its output layer tied to the token embedding table.

    Gathers the masked positions, then Dense(embedding_size, GELU) -> LayerNorm ->
    matmul with the token table (transposed) + output bias. Logits are float32 whatever
    the compute dtype, so mixed bfloat16 (TPU) training takes its softmax in full
    precision: under a mixed policy the product sums the compute-dtype hidden states and
    table in float32 and the float32 bias is added as it is (see fused.output_logits).
    (keras-hub's MaskedLMHead does the same maths but adds a float32 bias to
    bfloat16 logits, which the TF backend rejects under a mixed policy.)

    Args:
      token_embedding: the ``ReversibleEmbedding`` whose table is the output matrix.
      hidden_act, initializer_range, layer_norm_epsilon: as in the config.

    Call arguments:
      sequence_output: (batch, seq_len, hidden).
      masked_lm_positions: int (batch, num_predictions).
    Returns float32 logits (batch, num_predictions, vocab_size).
    """

    def __init__(self, token_embedding, hidden_act="gelu", initializer_range=0.02,
                 layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dense = keras.layers.Dense(
            token_embedding.output_dim, activation=get_activation(hidden_act),
            kernel_initializer=truncated_normal(initializer_range),
            dtype=self.dtype_policy, name="dense")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm")

    def build(self, sequence_output_shape, masked_lm_positions_shape=None):
        self.dense.build((None, None, sequence_output_shape[-1]))
        self.layer_norm.build((None, None, self.token_embedding.output_dim))
        # Read in float32 under a mixed policy too: the logits add it in full precision.
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.input_dim,), initializer="zeros",
            autocast=False)
        self.built = True

    def call(self, sequence_output, masked_lm_positions):
        x = ops.take_along_axis(
            sequence_output, ops.expand_dims(masked_lm_positions, -1), axis=1)
        x = fused.layer_norm(self.layer_norm, _dense(self.dense, x))
        # One 2-D matmul: a (batch, P, E) x (E, V) product broadcasts the table over the
        # batch, and its gradient then builds a (batch, E, V) tensor before summing it.
        shape = ops.shape(x)
        logits = fused.output_logits(ops.reshape(x, (-1, shape[-1])),
                                     self.token_embedding.embeddings, self.output_bias)
        return ops.reshape(logits, (shape[0], shape[1], -1))

    def compute_output_spec(self, sequence_output, masked_lm_positions):
        shape = tuple(masked_lm_positions.shape) + (self.token_embedding.input_dim,)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        # Standalone, the head gets a copy of the table; inside a pretrainer the model
        # rebuilds it tied to the shared one.
        config = super().get_config()
        config.update(token_embedding=keras.layers.serialize(self.token_embedding),
                      hidden_act=self.hidden_act, initializer_range=self.initializer_range,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config, token_embedding=keras.layers.deserialize(config["token_embedding"]))
        return cls(**config)


@keras.saving.register_keras_serializable(package="electra_tf")
class GeneratorSampler(keras.layers.Layer):
    """Builds ELECTRA's corrupted input from the generator's MLM logits.

    Samples a token at every masked position from softmax(logits / `temperature`) (the
    distribution of the original's Gumbel-max sampling; with `disallow_correct` the
    original token cannot be drawn), writes
    the samples into the sequence (positions whose weight is 0 are padding and are left
    alone), and labels a position replaced when its token now differs from the
    original. No gradient flows through the sample, as in the original.

    The layer computes in float32 whatever the global policy (logits rounded to
    bfloat16 would distort the distribution). Under a ``tf.distribute`` strategy each replica
    folds its replica id into the seed, so replicas draw different samples.

    Call arguments:
      mlm_logits: (batch, num_predictions, vocab_size).
      input_ids: (batch, seq_len) the generator's (masked) input.
      masked_lm_positions, masked_lm_ids, masked_lm_weights: (batch, num_predictions).
    Returns a dict: sampled_ids (batch, num_predictions), fake_input_ids and
    is_replaced (batch, seq_len).
    """

    def __init__(self, temperature=1.0, disallow_correct=False, seed=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.temperature = temperature
        self.disallow_correct = disallow_correct
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mlm_logits, input_ids, masked_lm_positions, masked_lm_ids,
             masked_lm_weights):
        logits = ops.cast(mlm_logits, "float32")
        vocab_size = ops.shape(logits)[-1]
        # A draw from softmax(logits / temperature), the distribution of the original's
        # Gumbel-max argmax(logits + Gumbel noise), which needs a uniform and two logs per
        # logit (~3x the time on CPU over 30,522-wide rows); see fused.categorical_sample.
        sampled = fused.categorical_sample(
            ops.reshape(ops.stop_gradient(logits), (-1, vocab_size)),
            replica_seed(self.seed_generator), self.temperature,
            ops.reshape(masked_lm_ids, (-1,)) if self.disallow_correct else None)
        sampled = ops.cast(ops.reshape(sampled, ops.shape(logits)[:-1]), input_ids.dtype)
        # One-hot scatter: (batch, predictions, seq_len), zero rows for padding. A max,
        # not a sum, so a position listed twice still gets one sampled id.
        where = ops.one_hot(masked_lm_positions, ops.shape(input_ids)[1], dtype="int32")
        where = where * ops.cast(ops.expand_dims(masked_lm_weights > 0, -1), "int32")
        is_masked = ops.max(where, axis=1) > 0
        ids_dtype = input_ids.dtype
        sampled_seq = ops.max(where * ops.expand_dims(ops.cast(sampled, "int32"), -1), axis=1)
        original_seq = ops.max(
            where * ops.expand_dims(ops.cast(masked_lm_ids, "int32"), -1), axis=1)
        fake_input_ids = ops.where(is_masked, ops.cast(sampled_seq, ids_dtype), input_ids)
        original_ids = ops.where(is_masked, ops.cast(original_seq, ids_dtype), input_ids)
        is_replaced = ops.logical_and(is_masked, ops.not_equal(fake_input_ids, original_ids))
        return {"sampled_ids": sampled, "fake_input_ids": fake_input_ids,
                "is_replaced": ops.cast(is_replaced, "int32")}

    def compute_output_spec(self, mlm_logits, input_ids, *args):
        return {
            "sampled_ids": keras.KerasTensor(mlm_logits.shape[:-1], dtype=input_ids.dtype),
            "fake_input_ids": keras.KerasTensor(input_ids.shape, dtype=input_ids.dtype),
            "is_replaced": keras.KerasTensor(input_ids.shape, dtype="int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature, disallow_correct=self.disallow_correct,
                      seed=self.seed)
        return config
