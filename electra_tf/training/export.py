"""The finetunable export of a trained encoder: ``encoder.keras`` with its vocab and config."""

from __future__ import annotations

import keras

from electra_tf import files
from electra_tf.modeling import encoder_of


def export_encoder(model: keras.Model, vocab_file: str, model_dir: str) -> str:
    """``encoder.keras`` + ``vocab.txt`` + ``electra_tf_config.json`` in `model_dir`, from
    `model`, a pretrainer (ELECTRA's discriminator, BERT's encoder).
    Returns the ``encoder.keras`` path."""
    encoder = encoder_of(model)
    path = files.join(model_dir, "encoder.keras")
    with files.staged_output(path) as local:  # Keras writes local files only
        encoder.save(local)
    files.atomic_write(files.join(model_dir, "vocab.txt"), files.read_bytes(vocab_file))
    files.atomic_write(files.join(model_dir, "electra_tf_config.json"),
                       encoder.model_config.to_json())
    return path
