"""Finetuning runs: load an encoder, train task heads with Keras ``fit``, score the dev sets,
write results, TensorBoard scalars and test-set predictions.

As the original ``run_finetuning.py``: AdamWeightDecay with layer-wise learning-rate decay,
linear warmup over ``warmup_proportion`` of the steps then linear decay, global-norm
clipping; ``num_trials`` repeats the run with seeds ``seed + trial``. Several tasks train
together, one head each on the shared encoder; unlike the original, which shuffled all
tasks' examples into mixed batches, each batch here holds one task (drawn in proportion
to the tasks' training-set sizes), so each task's loss is its own batch mean.

Layout under ``<data_dir>/models/<model_name>/``::

  finetuning/<run>/trial_<k>/   checkpoints (one per epoch, a re-run resumes), events,
                                results.json, test predictions of that trial
  results/<run>.json            every trial's dev scores and their mean
  test_predictions/             the best-dev trial's predictions (GLUE submission files)
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from electra_tf import files
from electra_tf.distribute import check_batch_size, chief_decides, is_chief
from electra_tf.finetuning import readers, scorers
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.model import FinetuningModel
from electra_tf.finetuning.tasks import (
    Features,
    PairTask,
    RaceTask,
    TaggingTask,
    Task,
    get_task,
    nested_subset,
)
from electra_tf.optimization import (
    DEFAULT_EXCLUDE,
    OPTIMIZERS,
    WarmupPolynomialDecay,
    layerwise_lr_multipliers,
)
from electra_tf.pretraining.trainer import dtype_policy
from electra_tf.tokenization import WordPieceTokenizer
from electra_tf.training.checkpointing import run_checkpoints, worker_dir
from electra_tf.training.fitting import StepCallback, current_step, fit_steps

HEAD_PATTERN = r"_head/|_head_crf/"
CHECKPOINT_NAME = "model.ckpt"


# ----------------------------------------------------------------------------- the encoder

def encoder_source(config: FinetuningConfig) -> tuple[str, str]:
    """(kind, path) of the encoder a run starts from: "hf", "tf1", "keras" or "scratch"."""
    if config.init_checkpoint:
        path = config.init_checkpoint
        if path.endswith(".keras"):
            return "keras", path
        if files.exists(files.join(path, "encoder.keras")):  # an electra-pretrain dir
            return "keras", files.join(path, "encoder.keras")
        if files.isdir(path) and (files.exists(files.join(path, "config.json"))
                                  or files.isdir(files.join(path, "discriminator"))):
            return "hf", path
        return "tf1", path
    exported = files.join(config.pretrained_dir, "encoder.keras")
    if not config.from_scratch:
        if not files.exists(exported):
            raise FileNotFoundError(
                f"{exported}: no pretrained encoder; pretrain one (electra-pretrain "
                f"--model_name={config.model_name}), give --init_checkpoint (a TF1 checkpoint "
                f"or a Hugging Face folder), or train from scratch with --from_scratch")
        return "keras", exported
    return "scratch", ""


def vocab_path(config: FinetuningConfig) -> str:
    """--vocab_file, else the vocab beside the encoder, else ``<data_dir>/vocab.txt``."""
    if config.vocab_file:
        return config.vocab_file
    kind, path = encoder_source(config)
    beside = {"keras": files.parent(path), "hf": path,
              "tf1": path if files.isdir(path) else files.parent(path)}.get(kind)
    if beside and files.exists(files.join(beside, "vocab.txt")):
        return files.join(beside, "vocab.txt")
    return files.join(config.data_dir, "vocab.txt")


def load_encoder(config: FinetuningConfig, vocab_size: int) -> keras.Model:
    """A fresh Encoder under the current dtype policy, with the weights of the run's
    source (a saved encoder's own policy is not kept: bf16 pretraining, fp32 finetuning)."""
    from electra_tf.checkpoints import config_from_tf1, load_tf1_checkpoint, model_from_hf
    from electra_tf.configs import get_config
    from electra_tf.modeling import Encoder

    kind, path = encoder_source(config)
    if kind == "hf":
        return model_from_hf(path, target="encoder")[0]
    if kind == "tf1":
        encoder = Encoder(config_from_tf1(path))
        load_tf1_checkpoint(encoder, path)
        return encoder
    if kind == "keras":
        with files.local_copy(path) as local:  # Keras loads only local files
            saved = keras.saving.load_model(local, compile=False)
        encoder = Encoder(saved.model_config)
        encoder.set_weights(saved.get_weights())
        return encoder
    overrides = dict(config.model_hparam_overrides)
    overrides.setdefault("vocab_size", vocab_size)
    return Encoder(get_config("electra", config.model_size, overrides))


# ----------------------------------------------------------------------------- data

def _union_inputs(task_index: int, tasks: list[Task], features: Features) -> dict:
    """Inputs with every key any task reads (zeros where this task has none) and task_id,
    so batches of different tasks share one structure."""
    inputs = dict(features.inputs)
    n, length = inputs["input_ids"].shape[0], inputs["input_ids"].shape[-1]
    if any(t.kind == "tagging" for t in tasks):
        for key in ("word_positions", "word_mask"):
            inputs.setdefault(key, np.zeros((n, length), np.int32))
    inputs["task_id"] = np.full((n,), task_index, np.int32)
    return inputs


def _union_labels(task_index: int, tasks: list[Task], features: Features) -> dict:
    n, length = len(features), features.inputs["input_ids"].shape[-1]
    labels = {}
    for index, task in enumerate(tasks):
        if index == task_index:
            labels[task.name] = features.labels
        elif task.kind == "tagging":
            labels[task.name] = np.zeros((n, length), np.int32)
        elif task.kind == "regression":
            labels[task.name] = np.zeros((n,), np.float32)
        else:
            labels[task.name] = np.zeros((n,), np.int32)
    return labels


def train_dataset(tasks: list[Task], train: list[Features], batch_size: int,
                  seed: int) -> tf.data.Dataset:
    """Shuffled, repeated single-task batches; with several tasks each batch's task is
    drawn in proportion to the tasks' training-set sizes."""
    datasets = []
    for index, features in enumerate(train):
        data = tf.data.Dataset.from_tensor_slices(
            (_union_inputs(index, tasks, features), _union_labels(index, tasks, features)))
        datasets.append(data.shuffle(len(features), seed=seed + index)
                        .repeat().batch(batch_size, drop_remainder=True))
    if len(datasets) == 1:
        return datasets[0].prefetch(2)
    sizes = np.array([len(f) for f in train], np.float64)
    return tf.data.Dataset.sample_from_datasets(
        datasets, weights=list(sizes / sizes.sum()), seed=seed).prefetch(2)


def predict(model: FinetuningModel, task: Task, features: Features, batch_size: int):
    """The task's predictions on a featurized split."""
    tasks = model.tasks
    inputs = _union_inputs(tasks.index(task), tasks, features)
    data = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    outputs = model.predict(data, verbose=0)[task.name]
    return task.predictions(np.asarray(outputs))


# ----------------------------------------------------------------------------- outputs

def write_test_predictions(task: Task, split: str, features: Features, predictions,
                           examples: list, out_dir: str) -> str:
    """GLUE submission files for GLUE-style tasks; ``id<TAB>answer`` for RACE; tagged
    ``word/TAG`` lines for tagging."""
    if isinstance(task, PairTask):
        key = {"test_matched": "mnli-m", "test_mismatched": "mnli-mm",
               "diagnostic": "ax"}.get(split, task.name)
        ids = [readers.example_index(g) for g in features.guids]
        return scorers.write_glue_submission(key, ids, predictions, out_dir)
    if isinstance(task, RaceTask):
        path = files.join(out_dir, f"{task.name}.tsv")
        rows = [f"{guid}\t{'ABCD'[int(p)]}\n" for guid, p in zip(features.guids, predictions,
                                                                    strict=True)]
        files.atomic_write(path, "id\tanswer\n" + "".join(rows))
        return path
    path = files.join(out_dir, f"{task.name}.txt")
    lines = []
    for sentence, tags in zip(examples, predictions, strict=True):
        words = sentence.words
        predicted = [task.tags[t] if t >= 0 else "-NONE-" for t in tags[:len(words)]]
        predicted += ["-NONE-"] * (len(words) - len(predicted))  # words past max_seq_length
        lines.append(" ".join(f"{w}/{t}" for w, t in zip(words, predicted, strict=True)))
    files.atomic_write(path, "\n".join(lines) + "\n")
    return path


def dev_score(scores: dict) -> float:
    """One number to pick the best epoch and trial by: the mean task score (GLUE's
    two-metric tasks count their mean, MNLI the mean of matched and mismatched)."""
    values = []
    for task, splits in scores.items():
        for metrics in splits.values():
            values.append(scorers.task_score(task, metrics) if task in scorers.GLUE_SCORE_TASKS
                          else float(np.mean(list(metrics.values()))))
    return float(np.mean(values)) if values else 0.0


class EpochEnd(StepCallback):
    """At the end of each epoch and at the last step: a checkpoint (for resuming), the dev
    scores, TensorBoard scalars, the weights of the best-dev epoch kept aside, and a
    progress bar with ETA over the run.

    With ``steps_per_execution`` > 1 an epoch ends at the first execution boundary at or
    past its last step (as pretraining's checkpoints do); the executions are never longer
    than an epoch, so each epoch still ends once. The train metrics logged for an epoch are
    its means, also when ``fit`` was called several times within it (Keras resets them at
    each call)."""

    def __init__(self, manager, best, writer, evaluate, total_steps: int,
                 steps_per_epoch: int, schedule, history: list[dict], history_path: str,
                 initial_step: int, progress: bool = True, chief: bool = True,
                 desc: str = "finetuning"):
        super().__init__()
        self.manager = manager
        self.best = best  # (tf.train.Checkpoint, prefix) this process writes the best to
        self.best_written = False
        self.writer = writer
        self.evaluate = evaluate
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.schedule = schedule
        self.history = history
        self.history_path = history_path
        self.chief = chief
        self.last_end = initial_step  # the step of the last epoch end (or of the start)
        self._carry: dict[str, tuple[float, int]] = {}  # earlier fits' (sum, steps) per metric
        self._since = initial_step  # the step the current fit's metric means start at
        self._step = initial_step
        self._logs: dict = {}
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", desc=desc,
                        disable=not (progress and chief), dynamic_ncols=True)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._since = self._step = self._fit_start
        self._logs = {}

    def on_train_batch_end(self, batch, logs=None):
        # Keras' batch index, not the optimizer's counter: no device read per execution.
        step = self.step_after(batch)
        self.bar.update(step - self._step)
        self._step, self._logs = step, logs or {}
        crossed = step // self.steps_per_epoch > self.last_end // self.steps_per_epoch
        if not crossed and step < self.total_steps:
            return
        # The true count: under fp16 a step whose gradients overflowed applies no update.
        applied = int(self.model.optimizer.iterations.numpy())
        final = applied >= self.total_steps
        if not (crossed or final):
            return  # the run goes on for the skipped steps
        epoch = (-(-self.total_steps // self.steps_per_epoch) if final
                 else step // self.steps_per_epoch)
        self.end_epoch(epoch, applied, self._epoch_logs(step))
        self.last_end = self._since = step
        self._carry = {}
        self.model.reset_metrics()

    def on_train_end(self, logs=None):
        # The next fit starts its metrics afresh: keep this one's share of the epoch.
        steps = self._step - self._since
        if steps > 0:
            for name, value in self._logs.items():
                total, count = self._carry.get(name, (0.0, 0))
                self._carry[name] = (total + float(value) * steps, count + steps)
        self._since = self._step

    def _epoch_logs(self, step: int) -> dict[str, float]:
        steps = step - self._since
        means = {}
        for name, value in self._logs.items():
            total, count = self._carry.get(name, (0.0, 0))
            means[name] = (total + float(value) * steps) / max(count + steps, 1)
        return means

    def end_epoch(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        scores = self.evaluate() if self.evaluate else {}
        entry = {"epoch": epoch, "step": step, "dev": scores,
                 "loss": float(logs.get("loss", float("nan")))}
        if scores and (not any(h.get("best") for h in self.history)
                       or dev_score(scores) > max(dev_score(h["dev"]) for h in self.history)):
            for h in self.history:
                h["best"] = False
            entry["best"] = True
            self.best[0].write(self.best[1])
            self.best_written = True
        self.history.append(entry)
        if self.chief:  # the history rides beside the best weights so a resumed run keeps it
            files.write_json(self.history_path, self.history, indent=1)
        self.manager.save(checkpoint_number=step)
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("train/learning_rate", float(self.schedule(step - 1)))
            for task, splits in scores.items():
                for split, metrics in splits.items():
                    for metric, value in metrics.items():
                        tf.summary.scalar(f"{task}/{split}/{metric}", value)
        self.writer.flush()
        shown = "; ".join(f"{t} {s} " + ", ".join(f"{m} {v:.4f}" for m, v in ms.items())
                          for t, ss in scores.items() for s, ms in ss.items())
        if shown and self.chief:
            self.bar.write(f"epoch {epoch} (step {step}): {shown}")
        if "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------- fitting

def fit_with_dev_eval(model: keras.Model, optimizer, make_dataset, run_dir: str,
                      total_steps: int, steps_per_epoch: int, evaluate, schedule,
                      do_train: bool = True, progress: bool = True, desc: str = "finetuning"
                      ) -> tuple[list[dict], dict | None, int]:
    """Train `model` (compiled with `optimizer`, and with the ``steps_per_execution`` to
    use) to `total_steps`, in epochs of `steps_per_epoch` steps, on
    ``make_dataset(start_step)``; after each epoch a checkpoint in `run_dir` (a re-run
    resumes from it), the dev scores of ``evaluate()`` and TensorBoard scalars, with the
    best-dev weights kept in ``run_dir/best/``. With ``steps_per_execution`` > 1 the
    executions are at most an epoch long and each epoch ends at the first execution
    boundary at or past it (see :class:`EpochEnd`). Returns the history (one entry per
    epoch), its best entry, whose weights the model then holds, and the number of steps
    trained (restoring the best weights also restores the optimizer's step counter).

    Under several workers every worker trains and scores (both are collective); only the
    chief writes `run_dir`; the others keep their checkpoints in ``.worker-<id>/`` until
    the end."""
    strategy = model.distribute_strategy
    chief = is_chief(strategy)
    per_execution = max(1, min(model.steps_per_execution, steps_per_epoch))
    # The optimizer fit steps: under fp16, the LossScaleOptimizer around `optimizer`.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer or optimizer)
    manager, latest = run_checkpoints(checkpoint, run_dir, strategy, max_to_keep=1)
    own_dir = worker_dir(strategy, run_dir)
    best_path = files.join(run_dir, "best", "model.ckpt")  # the chief's: read on resume
    best = (tf.train.Checkpoint(model=model), files.join(own_dir, "best", "model.ckpt"))
    history_path = files.join(run_dir, "best", "history.json")
    history: list[dict] = []
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        if files.exists(history_path):
            restored = current_step(optimizer)
            # Epochs after the restored checkpoint (a crash between the two writes) run
            # again.
            history = [h for h in files.read_json(history_path) if h["step"] <= restored]
        logging.info("resumed %s", latest)
    elif not do_train:
        raise ValueError(f"--do_train=false but {run_dir} holds no trained checkpoint: "
                         f"train first (the same command with --do_train)")
    writer = (tf.summary.create_file_writer(run_dir) if chief
              else tf.summary.create_noop_writer())
    step = current_step(optimizer)
    epoch_end = EpochEnd(manager, best, writer, evaluate, total_steps, steps_per_epoch,
                         schedule, history, history_path, step, progress and do_train, chief,
                         desc)
    try:
        if do_train and step < total_steps:
            fit_steps(model, make_dataset, total_steps, per_execution, [epoch_end])
    finally:
        epoch_end.close()
        writer.close()
    steps = current_step(optimizer)
    best_entry = next((h for h in history if h.get("best")), None)
    if best_entry:
        # This process's own copy if it wrote one (the chief's may still be in writing).
        best[0].read(best[1] if epoch_end.best_written else best_path
                     ).assert_existing_objects_matched()
    if not chief:
        files.rmtree(own_dir)
    return history, best_entry, steps


# ----------------------------------------------------------------------------- a run

def _tasks(config: FinetuningConfig) -> list[Task]:
    return [get_task(name, source="tfds" if config.use_tfds else "tsv",
                     double_unordered=config.double_unordered,
                     tfds_data_dir=config.tfds_data_dir) for name in config.task_names]


def _median(trials: list[dict], key: str) -> dict:
    median: dict = {}
    for task, splits in trials[0][key].items():
        for split, metrics in splits.items():
            for metric in metrics:
                values = [t[key][task][split][metric] for t in trials]
                median.setdefault(task, {}).setdefault(split, {})[metric] = float(
                    np.median(values))
    return median


def majority_baseline(task: Task, train: Features, dev: Features) -> dict[str, float]:
    """Dev scores of always predicting the training split's most frequent label (tag,
    answer), or its mean for regression: what a model has to beat."""
    if task.kind == "regression":
        value = task.predictions(np.array([[train.labels.mean()]]))[0]
        return task.score(np.full(len(dev), value), dev)
    labels = train.labels[train.labels >= 0]
    majority = int(np.bincount(labels.reshape(-1)).argmax())
    if task.kind == "tagging":
        predictions = np.where(dev.inputs["word_mask"] > 0, majority, -1)
        return task.score(predictions, dev)
    return task.score(np.full(len(dev), majority), dev)


def markdown_table(results: dict) -> str:
    """Tasks x metrics: medians over trials of the last epoch's dev scores (what the
    paper reports) and of the best-dev epoch's (picked on dev itself, so optimistic),
    the majority baseline, and each trial's best-dev score when there are several."""
    trials = results["trials"]
    header = ["task", "split", "metric", "last epoch", "best-dev epoch", "majority baseline"]
    if len(trials) > 1:
        header += [f"trial {t['trial']}" for t in trials]
    rows = []
    for task, splits in results.get("dev_best", {}).items():
        for split, metrics in splits.items():
            for metric, value in metrics.items():
                baseline = results.get("majority_baseline", {}).get(task, {}).get(split, {})
                last = results["dev_last"][task][split][metric]
                row = [task, split, metric, f"{last:.4f}", f"{value:.4f}",
                       f"{baseline[metric]:.4f}" if metric in baseline else ""]
                if len(trials) > 1:
                    row += [f"{t['dev_best'][task][split][metric]:.4f}" for t in trials]
                rows.append(row)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def check_batch_sizes(config, strategy: tf.distribute.Strategy) -> None:
    """The global train and eval batches of `config` (finetuning's or TLM's) must split
    evenly over `strategy`'s replicas (8 on a TPU)."""
    check_batch_size(strategy, config.train_batch_size)
    check_batch_size(strategy, config.eval_batch_size, "eval_batch_size")


def _check_rerun(config: FinetuningConfig, path: str) -> None:
    from electra_tf.finetuning.config import RERUN_KEYS

    changed = config.changes_from(path, RERUN_KEYS)
    if changed:
        raise ValueError(f"{config.run_dir} holds a run with other settings ({'; '.join(changed)})"
                         f"; use another --model_name, or delete that folder to start over")


def finetune(config: FinetuningConfig, strategy: tf.distribute.Strategy | None = None,
             progress: bool = True) -> dict:
    """Run (or resume) the finetuning `config` describes; returns the results dict that
    is also written to ``results/<run>.json``.

    Under several workers (``MultiWorkerMirroredStrategy``) every worker featurizes,
    trains and scores, and only the chief writes: settings, feature caches, tag sets,
    checkpoints, events, results and predictions (the others keep their checkpoint copies
    in ``.worker-<id>/`` folders until a trial ends)."""
    from electra_tf.finetuning.cache import cached_features

    strategy = strategy or tf.distribute.get_strategy()
    check_batch_sizes(config, strategy)
    chief = is_chief(strategy)
    tokenizer = WordPieceTokenizer(vocab_path(config), do_lower_case=config.do_lower_case)
    tasks = _tasks(config)
    source = encoder_source(config)
    config_path = files.join(config.run_dir, "finetuning_config.json")
    if files.exists(config_path):
        _check_rerun(config, config_path)
    if chief:
        files.atomic_write(config_path, config.to_json())

    examples: dict[tuple[str, str], list] = {}
    cache_hits: dict[str, bool] = {}

    def featurized(task: Task, split: str) -> Features:
        key = (task.name, split)
        if key not in examples:
            examples[key] = task.read(config.data_dir, split)
            if not examples[key]:
                raise ValueError(f"{task.name}: the {split} split has no examples")
        features, hit = cached_features(task, split, examples[key], tokenizer,
                                        config.max_seq_length, config.cache_dir, write=chief)
        cache_hits[f"{task.name}/{split}"] = hit
        return features

    train: list[Features] = []
    for task in tasks:
        if isinstance(task, TaggingTask):  # the tag set comes first: it fixes the label ids
            examples[(task.name, "train")] = task.read(config.data_dir, "train")
            task.set_tags(examples[(task.name, "train")],
                          files.join(config.run_dir, f"{task.name}_tags.json"), write=chief)
        if config.do_train:
            features = featurized(task, "train")
            if features.labels is None:
                raise ValueError(f"{task.name}: the training split has unlabelled examples")
            if config.train_fraction < 1.0:
                features = features.subset(nested_subset(len(features), config.train_fraction,
                                                         config.seed))
            train.append(features)
    dev = {(t.name, s): featurized(t, s) for t in tasks for s in t.eval_splits} \
        if config.do_eval else {}
    test = labelled_test_features(config, tasks, tokenizer, chief) if config.score_test else {}

    trials = [_run_trial(config, strategy, tasks, train, dev, trial, featurized, examples,
                         len(tokenizer.vocab), progress, test)
              for trial in range(config.num_trials)]
    results = {"model_name": config.model_name, "task_names": config.task_names,
               "encoder": {"kind": source[0], "path": source[1]},
               "config": config.to_dict(),
               "num_examples": {f"{t.name}/train": len(f)
                                for t, f in zip(tasks, train, strict=False)}
               | {f"{name}/{split}": len(f) for (name, split), f in dev.items()},
               "features_from_cache": cache_hits,
               "trials": trials}
    if config.do_eval:
        results["dev_best"] = _median(trials, "dev_best")
        results["dev_last"] = _median(trials, "dev_last")
        if config.do_train:
            results["majority_baseline"] = {}
            for task, features in zip(tasks, train, strict=True):
                for split in task.eval_splits:
                    results["majority_baseline"].setdefault(task.name, {})[split] = \
                        majority_baseline(task, features, dev[(task.name, split)])
    if test:
        results["test_at_best_dev"] = _median(trials, "test_at_best_dev")
    if config.write_test_outputs:
        best = max(range(len(trials)), key=lambda k: dev_score(trials[k].get("dev_best", {})))
        results["test_predictions_from_trial"] = best
    if not chief:
        return results
    if config.write_test_outputs:
        src = files.join(config.run_dir, f"trial_{best}", "test_predictions")
        files.makedirs(config.test_predictions_dir)
        for name in files.listdir(src):
            tmp = files.join(config.test_predictions_dir, f".{name}.tmp")
            files.copy(files.join(src, name), tmp)
            files.rename(tmp, files.join(config.test_predictions_dir, name))
    files.write_json(config.results_path, results)
    return results


def _dummy_inputs(tasks: list[Task], max_seq_length: int) -> dict:
    shape = ((1, 4, max_seq_length) if tasks[0].kind == "multiple_choice"
             else (1, max_seq_length))
    inputs = {k: np.zeros(shape, np.int32) for k in ("input_ids", "input_mask", "segment_ids")}
    if any(t.kind == "tagging" for t in tasks):
        inputs.update(word_positions=np.zeros((1, max_seq_length), np.int32),
                      word_mask=np.zeros((1, max_seq_length), np.int32))
    inputs["task_id"] = np.zeros((1,), np.int32)
    return inputs


def _check_fits(config: FinetuningConfig, encoder, vocab_size: int) -> None:
    model_config = encoder.model_config
    if vocab_size > model_config.vocab_size:
        raise ValueError(f"the vocab has {vocab_size} tokens but the encoder's embedding table "
                         f"only {model_config.vocab_size}: use the encoder's own vocab.txt")
    if config.max_seq_length > model_config.max_position_embeddings:
        raise ValueError(f"max_seq_length={config.max_seq_length} exceeds the encoder's "
                         f"max_position_embeddings={model_config.max_position_embeddings}")


def labelled_test_features(config: FinetuningConfig, tasks: list[Task],
                           tokenizer: WordPieceTokenizer, write_cache: bool = True
                           ) -> dict[tuple[str, str], Features]:
    """Every task's labelled test split, featurized (for --score_test); an error names
    the task whose test labels are not known."""
    from electra_tf.finetuning.cache import cached_features

    test = {}
    for task in tasks:
        examples = (task.read_labelled_test(config.data_dir) if isinstance(task, PairTask)
                    else None)
        if not examples:
            raise ValueError(f"--score_test: {task.name} has no labelled test split under "
                             f"{config.data_dir} (a test.tsv with labels, or one with a "
                             f"test_labels.tsv beside it)")
        test[(task.name, "test")] = cached_features(task, "test", examples, tokenizer,
                                                    config.max_seq_length, config.cache_dir,
                                                    write=write_cache)[0]
    return test


def score_splits(model: FinetuningModel, splits: dict[tuple[str, str], Features],
                 batch_size: int) -> dict:
    """{task: {split: scores}} of `model` on featurized splits keyed (task name, split)."""
    scores: dict = {}
    for (name, split), features in splits.items():
        task = next(t for t in model.tasks if t.name == name)
        predictions = predict(model, task, features, batch_size)
        scores.setdefault(name, {})[split] = task.score(predictions, features)
    return scores


def _run_trial(config, strategy, tasks, train, dev, trial, featurized, examples, vocab_size,
               progress, test) -> dict:
    trial_dir = files.join(config.run_dir, f"trial_{trial}")
    done = files.join(trial_dir, "results.json")
    previous = files.read_json(done) if files.exists(done) else None
    finished = previous is not None and (
        (not config.do_eval or "dev_best" in previous)
        and (not test or "test_at_best_dev" in previous)
        and (not config.write_test_outputs or previous.get("test_predictions")))
    if chief_decides(strategy, finished):
        # finished before, with every output asked for now
        return previous if previous is not None else files.read_json(done)
    chief = is_chief(strategy)
    seed = config.seed + trial
    keras.utils.set_random_seed(seed)
    train_size = sum(len(f) for f in train)
    total_steps = (max(1, int(config.epochs * train_size / config.train_batch_size))
                   if config.do_train else 0)
    steps_per_epoch = max(1, min(total_steps, math.ceil(train_size / config.train_batch_size)))
    with dtype_policy(config.policy), strategy.scope():
        encoder = load_encoder(config, vocab_size)
        _check_fits(config, encoder, vocab_size)
        model = FinetuningModel(encoder, tasks, config.dropout_rate, config.use_crf,
                                name="finetuning")
        schedule = WarmupPolynomialDecay(config.learning_rate, max(total_steps, 1),
                                         int(config.warmup_proportion * total_steps))
        multipliers = None
        if config.layerwise_lr_decay < 1.0:
            # Depth counts distinct layers: an ALE encoder's shared groups, not its depth.
            multipliers = layerwise_lr_multipliers(len(encoder.encoder.transformer_layers),
                                                   config.layerwise_lr_decay, HEAD_PATTERN)
        optimizer = OPTIMIZERS[config.optimizer](
            schedule, weight_decay_rate=config.weight_decay_rate,
            exclude_from_weight_decay=DEFAULT_EXCLUDE, lr_multipliers=multipliers,
            global_clipnorm=config.clip_norm)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model(_dummy_inputs(tasks, config.max_seq_length))  # build the heads
        model.optimizer.build(model.trainable_variables)  # with fp16, its loss scale too

    def evaluate() -> dict:
        return score_splits(model, dev, config.eval_batch_size)

    history, best_entry, steps = fit_with_dev_eval(
        model, optimizer, lambda step: train_dataset(tasks, train, config.train_batch_size,
                                                     seed + step),
        trial_dir, total_steps, steps_per_epoch, evaluate if dev else None, schedule,
        do_train=config.do_train, progress=progress)
    result = {"trial": trial, "seed": seed, "steps": steps, "history": history}
    if dev:
        result["dev_last"] = history[-1]["dev"] if history else evaluate()
        result["dev_best"] = best_entry["dev"] if best_entry else result["dev_last"]
        result["best_epoch"] = best_entry["epoch"] if best_entry else None
    if test:  # the model holds the best-dev weights here
        result["test_at_best_dev"] = score_splits(model, test, config.eval_batch_size)
    if config.write_test_outputs:
        out_dir = files.join(trial_dir, "test_predictions")
        for task in tasks:
            for split in task.test_splits:
                try:
                    features = featurized(task, split)
                except FileNotFoundError as e:
                    if split != "diagnostic":
                        raise
                    logging.warning("no AX.tsv: %s", e)  # optional in a submission
                    continue
                predictions = predict(model, task, features, config.eval_batch_size)
                if chief:
                    write_test_predictions(task, split, features, predictions,
                                           examples[(task.name, split)], out_dir)
        result["test_predictions"] = True
    if chief:
        files.write_json(done, result)
    return result
