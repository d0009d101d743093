"""Finetuning on GLUE, RACE and Penn Treebank POS: readers, scorers, heads and trainer."""
