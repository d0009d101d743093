"""What a pretraining run leaves to finetune and publish: ``encoder.keras`` (the encoder
finetuning starts from) with its vocab and config, and ``pretrainer.keras`` (the whole
pretrainer: ELECTRA's generator and discriminator, BERT's encoder and MLM head)."""

from __future__ import annotations

import keras

from electra_tf import files
from electra_tf.checkpoints import save_keras
from electra_tf.modeling import encoder_of

ENCODER_FILE = "encoder.keras"
PRETRAINER_FILE = "pretrainer.keras"


def export_encoder(model: keras.Model, vocab_file: str, model_dir: str) -> str:
    """``encoder.keras`` + ``vocab.txt`` + ``electra_tf_config.json`` in `model_dir`, from
    `model`, a pretrainer (ELECTRA's discriminator, BERT's encoder).
    Returns the ``encoder.keras`` path."""
    encoder = encoder_of(model)
    path = files.join(model_dir, ENCODER_FILE)
    save_keras(encoder, path)
    files.atomic_write(files.join(model_dir, "vocab.txt"), files.read_bytes(vocab_file))
    files.atomic_write(files.join(model_dir, "electra_tf_config.json"),
                       encoder.model_config.to_json())
    return path


def export_pretrainer(pretrainer: keras.Model, model_dir: str) -> str:
    """``pretrainer.keras`` in `model_dir`: the whole pretrainer, which ``electra-convert``
    turns into Hugging Face ``discriminator/`` and ``generator/`` folders (or a TF1
    checkpoint). Returns its path."""
    path = files.join(model_dir, PRETRAINER_FILE)
    save_keras(pretrainer, path)
    return path
