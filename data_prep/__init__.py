"""Corpus readers, vocabulary and pretraining-TFRecord builders (see issue #4)."""
