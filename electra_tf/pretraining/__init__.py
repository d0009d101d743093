"""Pretraining: the input pipeline with dynamic masking (objectives arrive with #5)."""
