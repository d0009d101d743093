"""The equal-FLOP BERT / ELECTRA / ALE study and the demo: config, stages, report."""
