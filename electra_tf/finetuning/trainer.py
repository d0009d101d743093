"""Finetuning runs: load an encoder, train task heads with Keras ``fit``, score the dev sets,
write results, TensorBoard scalars and test-set predictions.

As the original ``run_finetuning.py``: AdamWeightDecay with layer-wise learning-rate decay
(the original's rates, off-by-one included, unless ``fix_layerwise_lr_decay``), linear
warmup over ``warmup_proportion`` of the steps then linear decay, global-norm clipping of
the batch's summed loss; a large encoder's learning rate and decay default to the
original's large-model ones; ``num_trials`` repeats the run with seeds ``seed + trial``.
Several tasks train together, one head each on the shared encoder; unlike the original,
which shuffled all tasks' examples into mixed batches, each batch here holds one task
(drawn in proportion to the tasks' training-set sizes).

Layout under ``<data_dir>/models/<model_name>/``::

  finetuning/<run>/trial_<k>/   checkpoints (one per epoch, a re-run resumes), events,
                                results.json, test predictions of that trial, and
                                finetuned.keras (its best-dev model, heads and vocab)
  finetuning/<run>/finetuned.keras   the best-dev trial's model (what electra-export
                                and electra-predict read)
  results/<run>.json            every trial's dev scores, their median and their max, and
                                the learning rate, decay and epochs the run resolved
  test_predictions/             the best-dev trial's predictions (GLUE submission files)
"""

from __future__ import annotations

import math
import posixpath
import re

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.checkpoints import (
    config_from_tf1,
    load_tf1_checkpoint,
    model_from_hf,
    save_keras,
)
from electra_tf.configs import get_config
from electra_tf.distribute import check_batch_sizes, chief_decides, is_chief
from electra_tf.finetuning.config import FinetuningConfig, is_large
from electra_tf.finetuning.model import FinetuningModel
from electra_tf.modeling import Encoder
from electra_tf.optimization import (
    WarmupPolynomialDecay,
    layerwise_lr_multipliers,
    make_optimizer,
)
from electra_tf.tasks import readers, scorers
from electra_tf.tasks.cache import cached_features
from electra_tf.tasks.specs import (
    Features,
    PairTask,
    QATask,
    RaceTask,
    TaggingTask,
    Task,
    get_task,
    majority_predictions,
    nested_subset,
)
from electra_tf.tokenization import WordPieceTokenizer
from electra_tf.training.dev_eval import fit_with_dev_eval
from electra_tf.training.precision import dtype_policy
from electra_tf.training.run_dir import RunDir, format_table

HEAD_PATTERN = r"_head(_[a-z_]+)?/"  # a task's head layers: <task>_head, <task>_head_crf, ...
SETTINGS_FILE = "finetuning_config.json"  # a run's settings, in its run dir
FINETUNED_FILE = "finetuned.keras"  # the model with its best-dev weights, heads and vocab
QA_PREDICTIONS = "qa_predictions"  # a trial's official QA prediction files


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


def large_encoder(config: FinetuningConfig, encoder) -> bool:
    """Whether the original's large-model defaults apply: the encoder has the "large"
    shape, or it is a fresh --model_size=large one."""
    model_config = encoder.model_config
    return ((encoder_source(config)[0] == "scratch" and config.model_size == "large")
            or is_large(model_config.hidden_size, model_config.num_hidden_layers))


def lr_multipliers(encoder, decay: float, fix_off_by_one: bool = False) -> dict | None:
    """Layer-wise learning-rate factors {variable-path regex: factor} for finetuning
    `encoder` (None when `decay` is 1). By default the original's ``_get_layer_lrs``: the
    head decay^0, layer i of n decay^(n+1-i), the embeddings decay^(n+2); with
    `fix_off_by_one` the top layer is one factor below the head (layer i: decay^(n-i)).
    n counts distinct layers: an ALE encoder's shared groups, not its depth."""
    if decay >= 1.0:
        return None
    return dict(layerwise_lr_multipliers(len(encoder.transformer.transformer_layers), decay,
                                         HEAD_PATTERN, original_off_by_one=not fix_off_by_one))


# ----------------------------------------------------------------------------- data

def _union_inputs(task_index: int, tasks: list[Task], features: Features) -> dict:
    """Inputs with every key any task reads (zeros where this task has none) and task_id,
    so batches of different tasks share one structure."""
    inputs = dict(features.inputs)
    n, length = inputs["input_ids"].shape[0], inputs["input_ids"].shape[-1]
    if any(t.kind == "tagging" for t in tasks):
        for key in ("word_positions", "word_mask"):
            inputs.setdefault(key, np.zeros((n, length), np.int32))
    if any(t.kind == "qa" for t in tasks):  # the gold start the joint end head trains on
        own = tasks[task_index].kind == "qa" and features.labels is not None
        inputs["start_positions"] = (features.labels[:, 0].astype(np.int32) if own
                                     else np.zeros((n,), np.int32))
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
        elif task.kind == "qa":
            labels[task.name] = np.zeros((n, 3), np.int32)
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
    if isinstance(outputs, dict):  # a QA head's several outputs
        return task.predictions({key: np.asarray(value) for key, value in outputs.items()})
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


def write_qa_predictions(task: QATask, split: str, predictions: dict, features: Features,
                         out_dir: str, submission: bool = False) -> list[str]:
    """The official scripts' inputs in ``<out_dir>/<task>_<split>/``: ``predictions.json``
    (question id -> answer: the best non-null span, as the original writes its dev
    predictions, or with `submission` for SQuAD 2.0 "" where the null score exceeds
    ``qa_na_threshold``), for SQuAD 2.0 ``null_odds.json`` (question id -> null score,
    the official script's ``--na-prob-file``), and ``nbest_predictions.json`` (the n-best
    spans with their scores and probabilities)."""
    answers, null_scores, nbest = task.answers(predictions, features)
    written = {"predictions": (task.official_predictions(answers, null_scores) if submission
                               else answers), "nbest_predictions": nbest}
    if task.v2:
        written["null_odds"] = null_scores
    paths = []
    for name, value in written.items():
        paths.append(files.join(out_dir, f"{task.name}_{split}", f"{name}.json"))
        files.write_json(paths[-1], value)
    return paths


# ----------------------------------------------------------------------------- a run

def _tasks(config: FinetuningConfig) -> list[Task]:
    return [get_task(name, source="tfds" if config.use_tfds else "tsv",
                     double_unordered=config.double_unordered,
                     tfds_data_dir=config.tfds_data_dir, qa_options=config.qa_options)
            for name in config.task_names]


def _over_trials(trials: list[dict], key: str, reduce) -> dict:
    """{task: {split: {metric: reduce(the trials' values)}}} of each trial's `key`."""
    summary: dict = {}
    for task, splits in trials[0][key].items():
        for split, metrics in splits.items():
            for metric in metrics:
                values = [t[key][task][split][metric] for t in trials]
                summary.setdefault(task, {}).setdefault(split, {})[metric] = float(
                    reduce(values))
    return summary


def summarize_trials(trials: list[dict]) -> dict:
    """The median over trials (the ELECTRA paper reports medians) and the max of each
    score every trial has: ``dev_best``, ``dev_last``, ``test_at_best_dev`` and the same
    keys with ``_max``."""
    summary = {}
    for key in ("dev_best", "dev_last", "test_at_best_dev"):
        if trials and all(key in t for t in trials):
            summary[key] = _over_trials(trials, key, np.median)
            summary[f"{key}_max"] = _over_trials(trials, key, np.max)
    return summary


def markdown_table(results: dict) -> str:
    """Tasks x metrics: medians over trials of the last epoch's dev scores (what the
    paper reports) and of the best-dev epoch's (picked on dev itself, so optimistic),
    the majority baseline, and when there are several trials the max over them of the
    last and the best-dev epoch's scores and each trial's best-dev score."""
    trials = results["trials"]
    header = ["task", "split", "metric", "last epoch", "best-dev epoch", "majority baseline"]
    several = len(trials) > 1 and "dev_last_max" in results
    if several:
        header += ["last epoch, max", "best-dev epoch, max"]
        header += [f"trial {t['trial']}" for t in trials]
    rows = []
    for task, splits in results.get("dev_best", {}).items():
        for split, metrics in splits.items():
            for metric, value in metrics.items():
                baseline = results.get("majority_baseline", {}).get(task, {}).get(split, {})
                last = results["dev_last"][task][split][metric]
                row = [task, split, metric, f"{last:.4f}", f"{value:.4f}",
                       f"{baseline[metric]:.4f}" if metric in baseline else ""]
                if several:
                    row += [f"{results['dev_last_max'][task][split][metric]:.4f}",
                            f"{results['dev_best_max'][task][split][metric]:.4f}"]
                    row += [f"{t['dev_best'][task][split][metric]:.4f}" for t in trials]
                rows.append(row)
    return format_table(header, rows)


def finetune(config: FinetuningConfig, strategy: tf.distribute.Strategy | None = None,
             progress: bool = True, compiled: CompiledTrials | None = None) -> dict:
    """Run (or resume) the finetuning `config` describes; returns the results dict that
    is also written to ``results/<run>.json``.

    Under several workers (``MultiWorkerMirroredStrategy``) every worker featurizes,
    trains and scores, and only the chief writes: settings, feature caches, tag sets,
    checkpoints, events, results and predictions (the others keep their checkpoint copies
    in ``.worker-<id>/`` folders until a trial ends).

    Example::

        config = FinetuningConfig(data_dir="data", model_name="electra_debug",
                                  task_names=["sst2"], num_train_epochs=1)
        results = finetune(config)  # data/models/electra_debug/results/sst2.json
        print(markdown_table(results))
    """
    strategy = strategy or tf.distribute.get_strategy()
    check_batch_sizes(config, strategy)
    chief = is_chief(strategy)
    tokenizer = WordPieceTokenizer(vocab_path(config), do_lower_case=config.do_lower_case)
    tasks = _tasks(config)
    source = encoder_source(config)
    run = RunDir(config.run_dir, SETTINGS_FILE, chief=chief)
    run.check(config)

    examples: dict[tuple[str, str], list] = {}
    cache_hits: dict[str, bool] = {}

    def read(task: Task, split: str) -> list:
        key = (task.name, split)
        if key not in examples:
            examples[key] = task.read(config.data_dir, split)
            if not examples[key]:
                raise ValueError(f"{task.name}: the {split} split has no examples")
        return examples[key]

    # Bad task data stops the run before it writes anything.
    for task in tasks:
        for split in ((["train"] if config.do_train or isinstance(task, TaggingTask) else [])
                      + (list(task.eval_splits) if config.do_eval else [])):
            read(task, split)
    run.start(config)

    def featurized(task: Task, split: str) -> Features:
        features, hit = cached_features(task, split, read(task, split), tokenizer,
                                        config.max_seq_length, config.cache_dir, write=chief)
        cache_hits[f"{task.name}/{split}"] = hit
        return features

    train: list[Features] = []
    for task in tasks:
        if isinstance(task, TaggingTask):  # the tag set comes first: it fixes the label ids
            sentences = read(task, "train")
            if task.spans:  # chunking: every split's tags, as the original
                for split in (*task.eval_splits, *task.test_splits):
                    try:
                        sentences = sentences + read(task, split)
                    except FileNotFoundError:
                        continue
            task.set_tags(sentences, files.join(config.run_dir, f"{task.name}_tags.json"),
                          write=chief)
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

    compiled = CompiledTrials() if compiled is None else compiled
    trials = [_run_trial(config, strategy, tasks, train, dev, trial, featurized, examples,
                         tokenizer, progress, test, compiled)
              for trial in range(config.num_trials)]
    results = {"model_name": config.model_name, "task_names": config.task_names,
               "encoder": {"kind": source[0], "path": source[1]},
               "config": config.to_dict(),
               "num_examples": {f"{t.name}/train": len(f)
                                for t, f in zip(tasks, train, strict=False)}
               | {f"{name}/{split}": len(f) for (name, split), f in dev.items()},
               "features_from_cache": cache_hits,
               "trials": trials}
    resolved = [t["resolved"] for t in trials if "resolved" in t]
    if resolved:
        results["resolved"] = resolved[-1]
    results.update(summarize_trials(trials))
    if config.do_eval:
        if config.do_train:
            results["majority_baseline"] = {}
            for task, features in zip(tasks, train, strict=True):
                for split in task.eval_splits:
                    if isinstance(task, QATask):  # no label to take the majority of
                        results.setdefault("qa_baselines", {}).setdefault(task.name, {})[
                            split] = task.baseline_scores(dev[(task.name, split)])
                        continue
                    results["majority_baseline"].setdefault(task.name, {})[split] = \
                        task.score(majority_predictions(task, features, dev[(task.name, split)]),
                                   dev[(task.name, split)])
    best = max(range(len(trials)),
               key=lambda k: scorers.dev_score(trials[k].get("dev_best", {})))
    if config.write_test_outputs:
        results["test_predictions_from_trial"] = best
    if not chief:
        return results
    best_model = files.join(config.run_dir, f"trial_{best}", FINETUNED_FILE)
    if files.exists(best_model):  # a trial that finished before models were kept has none
        files.copy(best_model, files.join(config.run_dir, f".{FINETUNED_FILE}.tmp"))
        files.rename(files.join(config.run_dir, f".{FINETUNED_FILE}.tmp"),
                     files.join(config.run_dir, FINETUNED_FILE))
    qa_dir = files.join(config.run_dir, f"trial_{best}", QA_PREDICTIONS)
    if files.isdir(qa_dir):
        _copy_files(qa_dir, config.qa_predictions_dir)
    if config.write_test_outputs:
        _copy_files(files.join(config.run_dir, f"trial_{best}", "test_predictions"),
                    config.test_predictions_dir)
    files.write_json(config.results_path, results)
    return results


def _copy_files(source: str, target_dir: str) -> None:
    """Every file under `source` to the same place under `target_dir`, each written to a
    temporary name and renamed."""
    for name in files.relative_files(source):
        target = files.join(target_dir, name)
        files.makedirs(files.parent(target))
        tmp = files.join(files.parent(target), f".{posixpath.basename(name)}.tmp")
        files.copy(files.join(source, name), tmp)
        files.rename(tmp, target)


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
    test = {}
    for task in tasks:
        examples = (task.read_labelled_test(config.data_dir)
                    if isinstance(task, PairTask | QATask) else None)
        if not examples:
            expected = ("a test.json or test.jsonl[.gz] whose every question has its answers"
                        if isinstance(task, QATask) else "a test.tsv with labels, or one "
                        "with a test_labels.tsv beside it")
            raise ValueError(f"--score_test: {task.name} has no labelled test split under "
                             f"{config.data_dir} ({expected})")
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


class CompiledTrials:
    """The compiled model of the first trial a process trains, reused by its next trials
    (and by the next runs given the same ``CompiledTrials``, when their models and
    training settings are the same, as a study's rows on one task are).

    Building and compiling a model again for every trial also traces its train and
    predict functions again (on a TPU, XLA-compiles them), which for a small model or a
    small task costs more than its training. A later trial still builds its model with
    its own seed, exactly as a first trial does, but then copies that model's variables
    (weights and dropout seed states) into the compiled model and resets the optimizer's
    variables (step, moments, loss scale) to their values before the first step: the
    trial starts from the state a fresh build would have, so its results are the same,
    and a resumed run still equals an uninterrupted one. While the copy is made, the
    weights are held twice; so they are by the uncompiled copy each trial is saved from
    (:meth:`uncompiled`), built once and kept with the compiled model."""

    def __init__(self):
        self.model: FinetuningModel | None = None
        self.optimizer = self.schedule = self.settings = None
        self.start: list[tuple[tf.Variable, np.ndarray]] = []
        self.serving: FinetuningModel | None = None

    def keep(self, model: FinetuningModel, optimizer, schedule, settings: dict) -> None:
        """Keep `model` (compiled with `optimizer` on `schedule`, its heads and optimizer
        built, not yet trained) and the `settings` it was compiled for."""
        variables = {id(v): v for v in [*model.optimizer.variables, *optimizer.variables]}
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.settings = settings
        self.start = [(v, v.numpy()) for v in variables.values()]
        self.serving = None

    def take(self, fresh: FinetuningModel, settings: dict):
        """(model, optimizer, schedule): the kept ones, the model holding `fresh`'s
        initial state; None when none is kept or `fresh` or the `settings` differ (a new
        model is compiled then)."""
        kept = self.model
        if (kept is None or settings != self.settings
                or fresh.get_config() != kept.get_config()
                or _layout(fresh) != _layout(kept)):
            return None
        for target, source in zip(kept.variables, fresh.variables, strict=True):
            target.assign(source)
        for variable, value in self.start:
            variable.assign(value)
        # The same heads (their configs matched), but this run's task objects: they
        # read and score this run's data, and predict looks them up in `tasks`.
        kept.tasks = fresh.tasks
        return kept, self.optimizer, self.schedule

    def uncompiled(self, model: FinetuningModel) -> FinetuningModel:
        """`model` without its optimizer, to save (``FinetuningModel.without_optimizer``):
        for the kept model one copy, built from its config once and given each trial's
        weights (building it again took ~0.8 s of a debug-size trial)."""
        if model is not self.model:
            return model.without_optimizer()
        if self.serving is None:
            self.serving = model.without_optimizer()
        else:
            self.serving.set_weights(model.get_weights())
        return self.serving


def _layout(model: keras.Model) -> list[tuple]:
    """Each variable's path, shape and dtype; Keras numbers its seed generators across
    all models of a process, so their numbers are left out."""
    return [(re.sub(r"seed_generator_\d+", "seed_generator", v.path), tuple(v.shape), v.dtype)
            for v in model.variables]


def _run_trial(config, strategy, tasks, train, dev, trial, featurized, examples, tokenizer,
               progress, test, compiled: CompiledTrials) -> dict:
    chief = is_chief(strategy)
    trial_run = RunDir(files.join(config.run_dir, f"trial_{trial}"), chief=chief)
    previous = trial_run.result("results.json")
    finished = previous is not None and (
        (not config.do_eval or "dev_best" in previous)
        and (not test or "test_at_best_dev" in previous)
        and (not config.write_test_outputs or previous.get("test_predictions")))
    if chief_decides(strategy, finished):
        # finished before, with every output asked for now
        return previous if previous is not None else trial_run.result("results.json")
    seed = config.seed + trial
    keras.utils.set_random_seed(seed)
    train_size = sum(len(f) for f in train)
    vocab_size = len(tokenizer.vocab)
    preprocessing = {"vocab": tokenizer.vocab, "do_lower_case": config.do_lower_case,
                     "max_seq_length": config.max_seq_length}
    with dtype_policy(config.policy), strategy.scope():
        encoder = load_encoder(config, vocab_size)
        _check_fits(config, encoder, vocab_size)
        # The defaults that depend on the encoder are known only now.
        resolved = config.resolved(large_encoder(config, encoder))
        logging.info("trial %d: %s", trial, resolved)
        total_steps = (max(1, int(resolved["num_train_epochs"] * train_size
                                  / config.train_batch_size)) if config.do_train else 0)
        steps_per_epoch = max(1, min(total_steps,
                                     math.ceil(train_size / config.train_batch_size)))
        model = FinetuningModel(encoder, tasks, config.dropout_rate, config.use_crf,
                                preprocessing, mean_loss=config.mean_loss,
                                qa_head=config.qa_head, name="finetuning")
        model.build_heads(config.max_seq_length)
        # What the compiled functions and the optimizer depend on besides the model.
        settings = {"strategy": id(model.distribute_strategy), "policy": config.policy,
                    "resolved": resolved, "total_steps": total_steps,
                    **{name: getattr(config, name) for name in (
                        "optimizer", "weight_decay_rate", "clip_norm", "warmup_proportion",
                        "fix_layerwise_lr_decay", "jit_compile", "steps_per_execution")}}
        kept = compiled.take(model, settings)
        if kept is not None:
            del model, encoder  # its initial state is in the kept model now
            model, optimizer, schedule = kept
            # the last trial's last call may have been shorter
            model.use_steps_per_execution(config.steps_per_execution)
        else:
            schedule = WarmupPolynomialDecay(resolved["learning_rate"], max(total_steps, 1),
                                             int(config.warmup_proportion * total_steps))
            multipliers = lr_multipliers(encoder, resolved["layerwise_lr_decay"],
                                         config.fix_layerwise_lr_decay)
            optimizer = make_optimizer(config.optimizer, schedule,
                                       weight_decay_rate=config.weight_decay_rate,
                                       clip_norm=config.clip_norm, lr_multipliers=multipliers)
            model.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                          steps_per_execution=config.steps_per_execution)
            model.optimizer.build(model.trainable_variables)  # with fp16, its loss scale
            compiled.keep(model, optimizer, schedule, settings)

    def evaluate() -> dict:
        return score_splits(model, dev, config.eval_batch_size)

    history, best_entry, steps = fit_with_dev_eval(
        model, optimizer, lambda step: train_dataset(tasks, train, config.train_batch_size,
                                                     seed + step),
        trial_run.path, total_steps, steps_per_epoch, evaluate if dev else None, schedule,
        do_train=config.do_train, progress=progress)
    result = {"trial": trial, "seed": seed, "steps": steps, "resolved": resolved,
              "history": history}
    if dev:
        result["dev_last"] = history[-1]["dev"] if history else evaluate()
        result["dev_best"] = best_entry["dev"] if best_entry else result["dev_last"]
        result["best_epoch"] = best_entry["epoch"] if best_entry else None
    if chief:  # the model holds the best-dev weights here
        save_keras(compiled.uncompiled(model), trial_run.join(FINETUNED_FILE))
    if test:
        result["test_at_best_dev"] = score_splits(model, test, config.eval_batch_size)
    for (name, split), features in dev.items():  # QA: the official prediction files
        task = next(t for t in tasks if t.name == name)
        if isinstance(task, QATask):  # every worker predicts (a collective), the chief writes
            predictions = predict(model, task, features, config.eval_batch_size)
            if chief:
                write_qa_predictions(task, split, predictions, features,
                                     trial_run.join(QA_PREDICTIONS))
    if config.write_test_outputs:
        out_dir = trial_run.join("test_predictions")
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
                if chief and isinstance(task, QATask):
                    write_qa_predictions(task, split, predictions, features, out_dir,
                                         submission=True)
                elif chief:
                    write_test_predictions(task, split, features, predictions,
                                           examples[(task.name, split)], out_dir)
        result["test_predictions"] = True
    if chief:
        trial_run.write_json("results.json", result)
    return result
