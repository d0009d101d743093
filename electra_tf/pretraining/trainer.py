"""The pretraining run: Keras ``fit`` over the distributed input pipeline, with callbacks
for checkpoints (and resume), TensorBoard scalars, a progress bar, and FLOP accounting.

Layout under ``<data_dir>/models/<model_name>/`` (the original's):
``model.ckpt-<step>`` checkpoints (model and optimizer state; the newest
``keep_checkpoint_max`` are kept), ``train/`` TensorBoard events,
``pretraining_config.json`` (the run's settings), and when training ends the exported
``encoder.keras`` (ELECTRA/ALE's discriminator, BERT's encoder) with ``vocab.txt`` and
``electra_tf_config.json``, the whole ``pretrainer.keras`` (what ``electra-convert`` turns
into Hugging Face or TF1 files), plus ``train_summary.json`` (final step, FLOPs, metrics);
with ``encoder_snapshots``, the same export at fractions of the run under ``snapshots/``;
with ``do_eval``, ``eval_results.json`` and ``eval/`` TensorBoard events; with
``init_checkpoint``, ``warm_start.json`` (the source, the variables copied, any left at
their initialization).
Re-running the same command after an interruption resumes from the newest checkpoint.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.configs import ModelConfig
from electra_tf.distribute import (
    check_batch_size,
    check_same_on_workers,
    is_chief,
)
from electra_tf.masking import MaskingConfig, max_predictions_per_seq
from electra_tf.modeling import build_pretrainer
from electra_tf.optimization import WarmupPolynomialDecay, make_optimizer
from electra_tf.pretraining.config import MODEL_CONFIG_FILE, SETTINGS_FILE, PretrainingConfig
from electra_tf.pretraining.inputs import make_dataset
from electra_tf.pretraining.objectives import PretrainingModel
from electra_tf.pretraining.warm_start import (
    load_source,
    run_model_config,
    source_vocab_file,
    vocab_difference,
    warm_start,
)
from electra_tf.tokenization import load_vocab, special_ids
from electra_tf.training.checkpointing import (
    CHECKPOINT_NAME,
    complete_checkpoints,
    restore_or_init,
    worker_dir,
)
from electra_tf.training.export import export_encoder, export_pretrainer
from electra_tf.training.fitting import StepCallback, current_step
from electra_tf.training.loop import train_to_step
from electra_tf.training.precision import dtype_policy
from electra_tf.training.run_dir import RunDir

WARM_START_FILE = "warm_start.json"  # what --init_checkpoint copied, and what it left


class EncoderSnapshots(StepCallback):
    """Exports the encoder (as :func:`export_encoder` does at the end) when training
    passes each of `steps`, to ``<model_dir>/snapshots/step-<N>/`` with the step and
    FLOPs spent in ``snapshot.json``: the points of a score-against-FLOPs curve. A
    snapshot already on disk is kept (a resumed run does not redo it)."""

    def __init__(self, pretrainer, config: PretrainingConfig, steps: list[int],
                 flops_per_step: float):
        super().__init__()
        self.pretrainer = pretrainer
        self.config = config
        self.pending = sorted(steps)
        self.flops_per_step = flops_per_step

    def on_train_batch_end(self, batch, logs=None):
        if not self.pending or self.step_after(batch) < self.pending[0]:
            return
        step = current_step(self.model.optimizer)  # the applied steps (see Checkpointer)
        while self.pending and self.pending[0] <= step:
            target = self.pending.pop(0)
            directory = self.config.snapshot_dir(target)
            marker = files.join(directory, "snapshot.json")
            if files.exists(marker):
                continue
            # With steps_per_execution > 1 the first boundary past the target is saved.
            files.makedirs(directory)
            export_encoder(self.pretrainer, self.config.vocab_path, directory)
            files.write_json(marker, {"step": step, "flops": step * self.flops_per_step})


def pretrain(config: PretrainingConfig, strategy: tf.distribute.Strategy | None = None,
             progress: bool = True) -> dict:
    """Run (or resume) pretraining as `config` says; returns the train summary.

    The run trains ``num_train_steps`` steps, or as many as fit in ``flop_budget``
    (counted with :func:`electra_tf.flops.train_flops_per_step`), and stops there.
    Under several workers every worker trains; only the chief writes the run folder.

    Example::

        config = PretrainingConfig(data_dir="data", model_name="electra_debug",
                                   model_size="debug", num_train_steps=20,
                                   train_batch_size=8, max_seq_length=64)
        summary = pretrain(config)  # data/models/electra_debug/encoder.keras
        print(summary["step"], summary["flops"])
    """
    strategy = strategy or tf.distribute.get_strategy()
    check_batch_size(strategy, config.train_batch_size)
    vocab = load_vocab(config.vocab_path)
    chief = is_chief(strategy)
    run = RunDir(config.model_dir, SETTINGS_FILE, chief=chief)
    run.start(config)
    source, vocab_change = None, None
    recorded = run.result(MODEL_CONFIG_FILE, strategy)
    if config.init_checkpoint and recorded is not None and complete_checkpoints(
            config.model_dir, CHECKPOINT_NAME):
        # Resuming a warm-started run: its own checkpoints hold the weights, and its
        # architecture is recorded; the source is not read again.
        model_config = ModelConfig.from_dict(recorded)
    elif config.init_checkpoint:
        source = load_source(config.init_checkpoint)
        model_config = run_model_config(config, source, len(vocab))
        vocab_change = vocab_difference(source_vocab_file(config.init_checkpoint), vocab)
    else:
        model_config = config.model_config(len(vocab))
    total_steps = config.train_steps(model_config)
    flops_per_step = config.flops_per_step(model_config)
    if recorded != model_config.to_dict():  # a finished run: untouched
        run.write_json(MODEL_CONFIG_FILE, model_config.to_dict())
    keras.utils.set_random_seed(config.seed)

    with dtype_policy(config.policy), strategy.scope():
        extra = ({} if config.objective == "bert" else
                 dict(temperature=config.temperature, seed=config.seed,
                      disallow_correct=config.disallow_correct))
        pretrainer = build_pretrainer(model_config, **extra)
        schedule = WarmupPolynomialDecay(config.learning_rate, total_steps,
                                         config.num_warmup_steps, power=config.lr_decay_power)
        model = PretrainingModel(pretrainer, config.gen_weight, config.disc_weight)
        model.compile(optimizer=make_optimizer(config.optimizer, schedule,
                                               weight_decay_rate=config.weight_decay_rate,
                                               clip_norm=config.clip_norm,
                                               epsilon=config.adam_epsilon),
                      jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model.optimizer.build(pretrainer.trainable_variables)

    manager, latest = restore_or_init(pretrainer, model.optimizer, config.model_dir, strategy,
                                      config.keep_checkpoint_max)
    if source is not None and not latest:
        start = warm_start(pretrainer, source, config.init_checkpoint,
                           config.init_skip_mismatched, vocab_change)
        for name in start.skipped:
            logging.warning("not from --init_checkpoint, left at its initialization: %s", name)
        run.write_json(WARM_START_FILE, start.to_dict())
    del source
    initial_step = current_step(model.optimizer)
    check_same_on_workers(strategy, initial_step, "step to resume from")
    masking = MaskingConfig(special_ids(vocab), len(vocab),
                            max_predictions_per_seq(config.mask_prob, config.max_seq_length),
                            config.mask_prob, config.masking_style)
    # Finished before: nothing to train.
    done = (run.result("train_summary.json", strategy) if initial_step >= total_steps
            else None)
    if done is not None or not config.do_train:
        if not latest:
            raise ValueError(f"{config.model_dir}: no checkpoint to evaluate; train first "
                             f"(the same command with --do_train)")
        summary = done or {"model_name": config.model_name, "objective": config.objective,
                           "step": initial_step, "train_steps": total_steps,
                           "flops_per_step": flops_per_step,
                           "flops": initial_step * flops_per_step,
                           "flop_budget": config.flop_budget,
                           "resumed_from_step": initial_step}
    else:
        summary = _train(config, strategy, run, pretrainer, model, manager, bool(latest),
                         masking, total_steps, flops_per_step, schedule, progress)
    if config.do_eval:
        summary = {**summary, "eval": evaluate(model, config, masking, strategy, run)}
    return summary


def _train(config: PretrainingConfig, strategy, run: RunDir, pretrainer, model, manager,
           resumed: bool, masking: MaskingConfig, total_steps: int, flops_per_step: float,
           schedule, progress: bool) -> dict:
    """Train from the restored step to `total_steps`, export; the train summary."""
    chief = run.chief
    initial_step = current_step(model.optimizer)
    snapshot_steps = [k for k in config.snapshot_steps(total_steps)
                      if k > initial_step and chief]
    # Before the checkpointer: a checkpoint never skips past a snapshot.
    snapshots = ([EncoderSnapshots(pretrainer, config, snapshot_steps, flops_per_step)]
                 if snapshot_steps else [])

    def dataset_fn(step):
        def per_worker(context):  # a resumed run reads fresh batches, not the first ones
            return make_dataset(config.tfrecords_pattern, config.train_batch_size,
                                config.max_seq_length, masking, True, context,
                                config.seed + step)
        return strategy.distribute_datasets_from_function(per_worker)

    trained = train_to_step(
        model, dataset_fn, total_steps, manager, resumed,
        run.join("train") if chief else None,
        config, flops_per_step=flops_per_step, schedule=schedule, progress=progress,
        desc="pretraining", shown=("loss", "masked_lm_accuracy", "disc_accuracy"),
        callbacks=snapshots)
    summary = {"model_name": config.model_name, "objective": config.objective,
               "train_steps": total_steps, "flop_budget": config.flop_budget, **trained}
    if chief:
        export_encoder(pretrainer, config.vocab_path, config.model_dir)
        export_pretrainer(pretrainer, config.model_dir)
        run.write_json("train_summary.json", summary)
    else:
        files.rmtree(worker_dir(strategy, config.model_dir))
    return summary


def evaluate(model: PretrainingModel, config: PretrainingConfig, masking: MaskingConfig,
             strategy: tf.distribute.Strategy, run: RunDir) -> dict:
    """The original's ``do_eval``: the pretraining metrics (losses, the generator's MLM
    accuracy, the discriminator's accuracy, precision, recall and AUC) of the model as
    restored, over ``num_eval_steps`` batches of ``eval_tfrecords``, masked and sampled
    the same way on every call (fixed seeds). Written to ``eval_results.json`` and as TensorBoard
    scalars at the model's step under ``eval/``; returned with the step."""
    pattern = config.eval_tfrecords or config.tfrecords_pattern
    data = strategy.distribute_datasets_from_function(
        lambda context: make_dataset(pattern, config.train_batch_size, config.max_seq_length,
                                     masking, False, context, config.seed))
    model.reset_metrics()
    # ELECTRA's generator samples with a seed generator: the same draws on every call,
    # then its state as it was (a resumed run goes on as it would have).
    sampler = getattr(model.pretrainer, "sampler", None)
    state = sampler.seed_generator.state if sampler is not None else None
    saved = state.numpy() if state is not None else None
    if state is not None:
        state.assign(np.array([config.seed, 0], saved.dtype))
    try:
        scores = model.evaluate(data, steps=config.num_eval_steps, verbose=0,
                                return_dict=True)
    finally:
        if state is not None:
            state.assign(saved)
    step = current_step(model.optimizer)
    result = {"step": step, "eval_tfrecords": pattern, "num_eval_steps": config.num_eval_steps,
              **{name: float(value) for name, value in scores.items()}}
    if run.chief:
        writer = tf.summary.create_file_writer(run.join("eval"))
        with writer.as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(name, float(value))
        writer.close()
    run.write_json("eval_results.json", result)
    return result
