"""Keras 3 models for BERT, ELECTRA and ALE, built from keras-hub layers, and the BiLSTM
baseline classifier."""

from electra_tf.modeling.layers import (
    Embeddings,
    GeneratorSampler,
    ReplacedTokenDetectionHead,
    TiedMaskedLMHead,
    TransformerStack,
    gelu_approximate,
)
from electra_tf.modeling.lstm import (
    BiLstmClassifier,
    MaskedMaxPooling,
    embeddings_from_encoder,
    lstm_parameter_count,
)
from electra_tf.modeling.models import (
    BertPretrainer,
    ElectraPretrainer,
    Encoder,
    build_pretrainer,
    encoder_of,
)

__all__ = [
    "BertPretrainer", "BiLstmClassifier", "MaskedMaxPooling", "embeddings_from_encoder",
    "lstm_parameter_count", "ElectraPretrainer", "Embeddings", "Encoder", "GeneratorSampler",
    "ReplacedTokenDetectionHead", "TransformerStack", "build_pretrainer", "encoder_of",
    "gelu_approximate", "TiedMaskedLMHead",
]
