"""Keras models: the encoder used for finetuning, and the BERT / ELECTRA / ALE pretrainers.

All are functional models built at construction (the keras-hub backbone pattern): their
``get_config`` is the :class:`~electra_tf.configs.ModelConfig`, and ``from_config``
rebuilds the same layer graph, so weight sharing (tied MLM output, the generator and
discriminator sharing one embedding module, ALE's shared layers) survives a ``.keras``
save/load in safe mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from electra_tf.configs import ModelConfig
from electra_tf.modeling.layers import (
    Embeddings,
    GeneratorSampler,
    ReplacedTokenDetectionHead,
    TiedMaskedLMHead,
    TransformerStack,
)

ENCODER_INPUTS = ("input_ids", "input_mask", "segment_ids")
PREDICTION_INPUTS = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def as_model_config(config: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    return config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)


def _int_inputs(names, seq_len=None):
    # masked_lm_weights are float, as the original's (1.0 real, 0.0 padding).
    return {name: keras.Input(shape=(seq_len,), name=name,
                              dtype="float32" if name == "masked_lm_weights" else "int32")
            for name in names}


class _ConfigModel(keras.Model):
    """A functional model whose whole config is one ModelConfig (plus name/trainable)."""

    def call(self, inputs, training=None, mask=None, **kwargs):
        # A batch usually carries more features than a model reads (e.g. masked_lm_ids
        # for BERT): pick this model's inputs by name instead of by position.
        if isinstance(inputs, Mapping):
            missing = [name for name in self._inputs_struct if name not in inputs]
            if missing:
                raise ValueError(f"{self.name}: input batch lacks {missing}; it has "
                                 f"{sorted(inputs)} and the model reads "
                                 f"{sorted(self._inputs_struct)}")
            inputs = {name: inputs[name] for name in self._inputs_struct}
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def get_config(self):
        return {"config": self.model_config.to_dict(), "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(as_model_config(config.pop("config")), **config)


@keras.saving.register_keras_serializable(package="electra_tf")
class Encoder(_ConfigModel):
    """Embeddings + transformer stack: what finetuning starts from.

    Inputs (dict of int32 (batch, seq_len)): ``input_ids``, ``input_mask`` (1 = real
    token), ``segment_ids``. Outputs: ``sequence_output`` (batch, seq_len, hidden) and
    ``pooled_output``, the plain [CLS] vector (batch, hidden): like the original, no
    tanh pooler.

    Args:
      config: a ModelConfig (or its dict).
      embeddings: an existing :class:`Embeddings` to share (the pretrainers pass one so
        the generator and discriminator read the same tables); built from the config
        when omitted.

    Attributes: ``embeddings`` and ``transformer`` (the :class:`TransformerStack`).

    Example::

        encoder = Encoder(get_config("electra", "small"))
        ids = np.array([[101, 7592, 2088, 102]])
        outputs = encoder({"input_ids": ids, "input_mask": np.ones_like(ids),
                           "segment_ids": np.zeros_like(ids)})
        outputs["sequence_output"].shape  # (1, 4, 256)
    """

    def __init__(self, config, embeddings=None, **kwargs):
        config = as_model_config(config)
        if embeddings is None:
            embeddings = Embeddings(
                config.vocab_size, config.embedding_size, config.max_position_embeddings,
                config.type_vocab_size, config.dropout_rate, config.initializer_range,
                config.layer_norm_epsilon, name="embeddings")
        stack = TransformerStack(
            config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size, embeddings.embedding_size, config.num_layer_groups,
            config.hidden_act, config.dropout_rate, config.initializer_range,
            config.layer_norm_epsilon, name="encoder")
        kwargs.setdefault("name", "electra" if config.model_type != "bert" else "bert")
        inputs = _int_inputs(ENCODER_INPUTS)
        # Building inside the model's scope gives the original's variable paths,
        # e.g. electra/embeddings/word_embeddings, generator/encoder/layer_3/...
        with keras.name_scope(kwargs["name"]):
            embedded = embeddings(inputs["input_ids"], inputs["segment_ids"])
            sequence_output = stack(embedded, padding_mask=inputs["input_mask"])
        outputs = {"sequence_output": sequence_output,
                   "pooled_output": sequence_output[:, 0, :]}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config
        self.embeddings = embeddings
        self.transformer = stack  # its layer keeps the original's name, "encoder"


@keras.saving.register_keras_serializable(package="electra_tf")
class BertPretrainer(_ConfigModel):
    """BERT: one encoder and the tied masked-LM head.

    Inputs: the encoder inputs plus ``masked_lm_positions`` (batch, num_predictions).
    Outputs: ``mlm_logits`` (batch, num_predictions, vocab_size).
    """

    def __init__(self, config, **kwargs):
        config = as_model_config(config)
        encoder = Encoder(config, name="bert")
        head = TiedMaskedLMHead(encoder.embeddings.word_embeddings, config.hidden_act,
                                config.initializer_range, config.layer_norm_epsilon,
                                name="cls_predictions")
        inputs = _int_inputs(ENCODER_INPUTS + ("masked_lm_positions",))
        sequence_output = encoder({k: inputs[k] for k in ENCODER_INPUTS})["sequence_output"]
        outputs = {"mlm_logits": head(sequence_output, inputs["masked_lm_positions"])}
        kwargs.setdefault("name", "bert_pretrainer")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config
        self.encoder = encoder
        self.mlm_head = head


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraPretrainer(_ConfigModel):
    """ELECTRA (or ALE): generator + discriminator sharing one embedding module.

    The generator is a smaller encoder (sized by the config's generator fractions) with
    the tied MLM head; its samples replace the masked tokens, and the discriminator,
    with its own ``embeddings_project``, labels every token original or replaced.

    Inputs: the encoder inputs (``input_ids`` already masked) plus
    ``masked_lm_positions``, ``masked_lm_ids`` (the original tokens there) and
    ``masked_lm_weights`` (0 for padding predictions). Outputs: ``mlm_logits``,
    ``sampled_ids``, ``fake_input_ids``, ``is_replaced`` (the discriminator's labels)
    and ``rtd_logits`` (batch, seq_len).

    Args:
      config: a ModelConfig with model_type "electra" or "ale".
      temperature, disallow_correct, seed: of the generator sampling
        (:class:`GeneratorSampler`).
    """

    def __init__(self, config, temperature=1.0, disallow_correct=False, seed=None, **kwargs):
        config = as_model_config(config)
        if not config.has_generator:
            raise ValueError(f"ElectraPretrainer needs model_type 'electra' or 'ale', got "
                             f"{config.model_type!r}; use BertPretrainer")
        discriminator = Encoder(config, name="electra")
        shared = None if config.untied_generator_embeddings else discriminator.embeddings
        generator = Encoder(config.generator_config(), embeddings=shared, name="generator")
        generator_head = TiedMaskedLMHead(
            generator.embeddings.word_embeddings, config.hidden_act,
            config.initializer_range, config.layer_norm_epsilon,
            name="generator_predictions")
        sampler = GeneratorSampler(temperature, disallow_correct, seed, name="sampler")
        discriminator_head = ReplacedTokenDetectionHead(
            config.hidden_size, config.hidden_act, config.initializer_range,
            name="discriminator_predictions")

        inputs = _int_inputs(ENCODER_INPUTS + PREDICTION_INPUTS)
        encoder_inputs = {k: inputs[k] for k in ENCODER_INPUTS}
        generator_output = generator(encoder_inputs)["sequence_output"]
        mlm_logits = generator_head(generator_output, inputs["masked_lm_positions"])
        fake = sampler(mlm_logits, inputs["input_ids"], inputs["masked_lm_positions"],
                       inputs["masked_lm_ids"], inputs["masked_lm_weights"])
        discriminator_output = discriminator(
            dict(encoder_inputs, input_ids=fake["fake_input_ids"]))["sequence_output"]
        outputs = dict(fake, mlm_logits=mlm_logits,
                       rtd_logits=discriminator_head(discriminator_output))
        kwargs.setdefault("name", "electra_pretrainer")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config
        self.temperature = temperature
        self.disallow_correct = disallow_correct
        self.seed = seed
        self.generator = generator
        self.generator_head = generator_head
        self.discriminator = discriminator
        self.discriminator_head = discriminator_head
        self.sampler = sampler

    def generator_logits(self, inputs, masked_lm_positions, training=None):
        """The generator's MLM logits at `masked_lm_positions`, without sampling."""
        encoder_inputs = {name: inputs[name] for name in ENCODER_INPUTS}
        hidden = self.generator(encoder_inputs, training=training)["sequence_output"]
        return self.generator_head(hidden, masked_lm_positions)

    def discriminator_logits(self, inputs, training=None):
        """Replaced-token-detection logits (batch, seq_len) for `inputs` as given."""
        encoder_inputs = {name: inputs[name] for name in ENCODER_INPUTS}
        hidden = self.discriminator(encoder_inputs, training=training)["sequence_output"]
        return self.discriminator_head(hidden)

    @property
    def embeddings(self) -> Embeddings:
        """The discriminator's embedding module (shared with the generator when tied)."""
        return self.discriminator.embeddings

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature,
                    disallow_correct=self.disallow_correct, seed=self.seed)


def build_pretrainer(config: ModelConfig | Mapping[str, Any], **kwargs) -> keras.Model:
    """BertPretrainer for model_type "bert", ElectraPretrainer for "electra" and "ale";
    `kwargs` go to the class (ELECTRA's ``temperature``, ``seed``, ``disallow_correct``).

    Example::

        pretrainer = build_pretrainer(get_config("ale", "small"), seed=0)
        encoder_of(pretrainer)  # the discriminator: what finetuning starts from
    """
    config = as_model_config(config)
    if config.has_generator:
        return ElectraPretrainer(config, **kwargs)
    return BertPretrainer(config, **kwargs)


def encoder_of(pretrainer: keras.Model) -> Encoder:
    """The encoder a pretrainer hands to finetuning (BERT's, or ELECTRA's discriminator)."""
    if isinstance(pretrainer, ElectraPretrainer):
        return pretrainer.discriminator
    if isinstance(pretrainer, BertPretrainer):
        return pretrainer.encoder
    raise TypeError(f"not a pretrainer: {type(pretrainer).__name__}")
