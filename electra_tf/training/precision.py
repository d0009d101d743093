"""Keras' global dtype policy, for the span of building a model."""

from __future__ import annotations

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to `name` inside the block (layers take it when built).

    Example::

        with dtype_policy("mixed_bfloat16"):
            encoder = Encoder(get_config("electra", "small"))
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
