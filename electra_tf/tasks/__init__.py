"""The labelled tasks every stage trains on: GLUE, RACE and Penn Treebank POS readers
(``readers``), task specs and featurization (``specs``), their official scores
(``scorers``) and the featurized-split cache (``cache``)."""
