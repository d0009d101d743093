"""What every training stage shares.

* ``precision``: the Keras dtype policy while a model is built;
* ``fitting``: Keras ``fit`` to an exact step count, callbacks that know the step;
* ``checkpointing``: restore-or-init from the newest complete checkpoint, periodic saves,
  each worker's checkpoint folder;
* ``log``: TensorBoard scalars and a progress bar with ETA;
* ``loop``: training to a step count (pretraining, TLM's first stage);
* ``dev_eval``: training with a dev evaluation per period and the best-dev weights kept
  (finetuning, TLM's second stage, the BiLSTM baselines);
* ``export``: the finetunable ``encoder.keras`` with its vocab and config;
* ``run_dir``: a run's folder: saved settings, the re-run rule, results.
"""
