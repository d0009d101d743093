"""electra-tf: ELECTRA, BERT and ALE pretraining and finetuning in TensorFlow 2 / Keras 3."""

from electra_tf import startup as _startup

if _startup.is_command_process():
    _startup.skip_keras_extras()
