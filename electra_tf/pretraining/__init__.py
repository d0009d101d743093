"""Pretraining: the input pipeline with dynamic masking, and the objectives."""
