"""Corpus readers, vocabulary and pretraining-TFRecord builders."""
