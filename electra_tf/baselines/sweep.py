"""The data-fraction sweep of "To Pretrain or Not to Pretrain": for each fraction of a
task's training set, finetune a pretrained encoder and train BiLSTMs from scratch on the
same nested subset, and score each on the same dev and test splits.

Layout under ``<data_dir>/models/<model_name>/``::

  sweep_config.json                  the settings (a re-run with others is refused)
  cells/<model>/fraction_<f>/trial_<k>/
      result.json                    that cell's scores, steps, seconds and (BiLSTMs)
                                     parameters, learning rate and grid (present = done;
                                     a re-run skips it)
      ...                            the pretrained cell's checkpoints (a re-run resumes)
                                     and TensorBoard events
      lr_<rate>/                     a BiLSTM cell's run at one rate of the grid: its
                                     result.json, checkpoints and TensorBoard events
  results.json, results.md, results.png   every cell, the summary table and the plot

Each cell keeps its best-dev epoch and reports dev and (when the task's test labels are
known) test scores there; a BiLSTM cell also keeps the learning rate of its grid that
scored best on dev. The plot shows the task's metric on test (dev when there are
no test labels) against the fraction, and the gap pretrained − BiLSTM.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf

from electra_tf import files
from electra_tf.baselines.config import PRETRAINED, BaselinesConfig, parse_lstm_model
from electra_tf.finetuning import trainer as finetuning
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.modeling.lstm import BiLstmClassifier, embeddings_from_encoder
from electra_tf.optimization import WarmupPolynomialDecay
from electra_tf.tasks.scorers import dev_score
from electra_tf.tasks.specs import Features, PairTask, classification_task, nested_subset
from electra_tf.tokenization import WordPieceTokenizer
from electra_tf.training.dev_eval import fit_with_dev_eval
from electra_tf.training.run_dir import RunDir, format_table

SETTINGS_FILE = "sweep_config.json"  # a sweep's settings, in its folder


def finetuning_config(config: BaselinesConfig, fraction: float = 1.0, trial: int = 0,
                      output_dir: str = "", score_test: bool = False,
                      num_train_examples: int | None = None) -> FinetuningConfig:
    """The FinetuningConfig of the pretrained encoder's cell: the sweep's shared settings,
    its ``finetune`` overrides, and enough epochs for ``min_train_steps``."""
    values = dict(config.finetune)
    if num_train_examples:
        epochs = values.get("num_train_epochs") or 3.0
        needed = config.min_train_steps * config.train_batch_size / num_train_examples
        values["num_train_epochs"] = max(float(epochs), needed)
    return FinetuningConfig.from_dict(dict(
        values, data_dir=config.data_dir, model_name=config.model_name,
        task_names=[config.task_name], init_checkpoint=config.init_checkpoint,
        vocab_file=config.vocab_file, do_lower_case=config.do_lower_case,
        max_seq_length=config.max_seq_length, train_batch_size=config.train_batch_size,
        eval_batch_size=config.eval_batch_size, seed=config.seed + trial,
        train_fraction=fraction, output_dir=output_dir, score_test=score_test))


def vocab_path(config: BaselinesConfig) -> str:
    """--vocab_file, else the encoder's vocab.txt, else ``<data_dir>/vocab.txt``: the
    BiLSTMs read the same WordPiece ids as the pretrained encoder."""
    if config.init_checkpoint:
        return finetuning.vocab_path(finetuning_config(config))
    return config.vocab_file or files.join(config.data_dir, "vocab.txt")


def _scores(model: keras.Model, task: PairTask, features: Features, batch_size: int) -> dict:
    logits = model.predict({k: features.inputs[k] for k in ("input_ids", "input_mask")},
                           batch_size=batch_size, verbose=0)
    return task.score(np.argmax(logits, axis=-1), features)


def lstm_schedule(config: BaselinesConfig, learning_rate: float, total_steps: int):
    """The BiLSTM's learning rate by step: constant (the paper's), or linear decay to 0
    over `total_steps` with ``lstm_lr_schedule=linear``."""
    end = 0.0 if config.lstm_lr_schedule == "linear" else learning_rate
    return WarmupPolynomialDecay(learning_rate, total_steps, 0, end_learning_rate=end)


def train_lstm(config: BaselinesConfig, name: str, learning_rate: float, train: Features,
               dev: Features, task: PairTask, run_dir: str, seed: int, vocab_size: int,
               table: np.ndarray | None = None, progress: bool = True
               ) -> tuple[BiLstmClassifier, dict]:
    """Train one BiLSTM (``LSTM-n-k``, ``+emb`` = frozen `table`) on `train` with Adam at
    `learning_rate`, scoring dev after each epoch, up to ``lstm_num_train_epochs`` (at
    least ``min_train_steps`` steps) and stopping once dev has not improved for
    ``lstm_early_stopping_patience`` scorings. A run that ``min_train_steps`` stretches
    past ``lstm_num_train_epochs`` epochs (a tiny subset) scores every
    1/``lstm_num_train_epochs`` of its steps instead, not every epoch of a few steps.
    Returns the model at its best-dev scoring and {"steps" (trained), "epochs" (trained,
    in passes over `train`), "stopped_early", "best_epoch" (likewise), "dev", "history"};
    a re-run resumes from `run_dir`'s last scoring."""
    layers, units = parse_lstm_model(name.removesuffix("+emb"))
    keras.utils.set_random_seed(seed)
    model = BiLstmClassifier(vocab_size, task.num_outputs, layers, units,
                             embedding_size=config.embedding_size, pretrained_embeddings=table,
                             project_pretrained=config.lstm_project_embeddings,
                             dropout_rate=config.lstm_dropout_rate)
    batch_size = config.lstm_train_batch_size
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = max(config.min_train_steps,
                      int(config.lstm_num_train_epochs * len(train) / batch_size))
    steps_per_score = max(steps_per_epoch,
                          math.ceil(total_steps / config.lstm_num_train_epochs))
    period = "epoch" if steps_per_score == steps_per_epoch else "eval"
    schedule = lstm_schedule(config, learning_rate, total_steps)
    optimizer = keras.optimizers.Adam(schedule, global_clipnorm=1.0)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    optimizer.build(model.trainable_variables)
    inputs = {k: train.inputs[k] for k in ("input_ids", "input_mask")}

    def make_dataset(step: int) -> tf.data.Dataset:
        data = tf.data.Dataset.from_tensor_slices((inputs, train.labels))
        return (data.shuffle(len(train), seed=seed + step).repeat()
                .batch(batch_size).prefetch(2))

    def evaluate() -> dict:
        return {task.name: {"dev": _scores(model, task, dev, config.eval_batch_size)}}

    history, best, _ = fit_with_dev_eval(
        model, optimizer, make_dataset, run_dir, total_steps, steps_per_score, evaluate,
        schedule, progress=progress, desc=f"{name} lr {learning_rate:g}", period=period,
        patience=config.lstm_early_stopping_patience, min_steps=config.min_train_steps)
    last = history[-1]
    best = best or last
    stopped = last["step"] < total_steps

    def epochs(step: int) -> float:
        return round(step / steps_per_epoch, 2)

    return model, {"steps": last["step"], "epochs": epochs(last["step"]),
                   "stopped_early": stopped, "best_epoch": epochs(best["step"]),
                   "dev": best["dev"][task.name]["dev"], "history": history}


def _lstm_run(config: BaselinesConfig, model: str, learning_rate: float, cell_dir: str,
              seed: int, task: PairTask, train: Features, features: dict[str, Features],
              table: np.ndarray | None, vocab_size: int, progress: bool) -> dict:
    """Run (or read back) one BiLSTM run of a cell's learning-rate grid; its result."""
    run = RunDir(BaselinesConfig.lr_dir(cell_dir, learning_rate))
    done = run.result("result.json")
    if done is not None:
        return done
    started = time.time()
    lstm, trained = train_lstm(config, model, learning_rate, train, features["dev"], task,
                               run.path, seed, vocab_size, table, progress)
    result = {"learning_rate": learning_rate}
    result.update({k: trained[k] for k in ("steps", "epochs", "stopped_early", "best_epoch",
                                           "dev")})
    if "test" in features:
        result["test"] = _scores(lstm, task, features["test"], config.eval_batch_size)
    table_size = int(np.prod(lstm.word_embeddings.embeddings.shape))
    result["parameters"] = {"total": lstm.count_params(),
                            "without_embeddings": lstm.count_params() - table_size}
    result["seconds"] = round(time.time() - started, 1)
    run.write_json("result.json", result)
    return result


def _cell(config: BaselinesConfig, model: str, fraction: float, trial: int, task: PairTask,
          features: dict[str, Features], table: np.ndarray | None, vocab_size: int,
          progress: bool) -> dict:
    """Run (or resume) one cell and write its result.json."""
    run_dir = config.cell_dir(model, fraction, trial)
    done = RunDir(run_dir).result("result.json")
    if done is not None:
        return done
    seed = config.seed + trial
    indices = nested_subset(len(features["train"]), fraction, seed)
    started = time.time()
    result = {"model": model, "fraction": fraction, "trial": trial, "seed": seed,
              "train_examples": int(len(indices))}
    if model == PRETRAINED:
        finetuned = finetuning.finetune(finetuning_config(config, fraction, trial, run_dir,
                                               "test" in features, len(indices)),
                             progress=progress)
        (only,) = finetuned["trials"]
        result.update(steps=only["steps"], best_epoch=only["best_epoch"],
                      dev=finetuned["dev_best"][task.name]["dev"])
        if "test" in features:
            result["test"] = finetuned["test_at_best_dev"][task.name]["test"]
        result["seconds"] = round(time.time() - started, 1)
    else:
        train = features["train"].subset(indices)
        runs = [_lstm_run(config, model, rate, run_dir, seed, task, train, features,
                          table if model.endswith("+emb") else None, vocab_size, progress)
                for rate in config.lstm_learning_rates]
        # The first best on dev: ties go to the smaller rate.
        chosen = max(runs, key=lambda run: dev_score({task.name: {"dev": run["dev"]}}))
        result.update({k: chosen[k] for k in ("learning_rate", "steps", "epochs",
                                              "stopped_early", "best_epoch", "dev")})
        if "test" in chosen:
            result["test"] = chosen["test"]
        result["parameters"] = chosen["parameters"]
        result["grid"] = {f"{run['learning_rate']:g}": {
            k: v for k, v in run.items() if k not in ("learning_rate", "parameters")}
            for run in runs}
        result["seconds"] = round(sum(run["seconds"] for run in runs), 1)
    RunDir(run_dir).write_json("result.json", result)
    return result


# ----------------------------------------------------------------------------- summary

def summarize(cells: list[dict], metric: str) -> dict:
    """{model: {fraction: {split: {"mean", "std", "trials"}}}} of `metric` over trials."""
    grouped: dict = {}
    for cell in cells:
        for split in ("dev", "test"):
            if split in cell:
                grouped.setdefault(cell["model"], {}).setdefault(
                    f"{cell['fraction']:g}", {}).setdefault(split, []).append(
                        cell[split][metric])
    return {model: {fraction: {split: {"mean": float(np.mean(v)), "std": float(np.std(v)),
                                        "trials": len(v)}
                               for split, v in splits.items()}
                    for fraction, splits in fractions.items()}
            for model, fractions in grouped.items()}


def gaps(summary: dict, split: str) -> dict:
    """{lstm model: {fraction: pretrained − that model}} on `split`'s mean metric."""
    if PRETRAINED not in summary:
        return {}
    out: dict = {}
    for model, fractions in summary.items():
        if model == PRETRAINED:
            continue
        for fraction, splits in fractions.items():
            ours = summary[PRETRAINED].get(fraction, {}).get(split)
            if ours and split in splits:
                out.setdefault(model, {})[fraction] = ours["mean"] - splits[split]["mean"]
    return out


def markdown_table(results: dict) -> str:
    """Fractions × models: the mean metric on the report split (± std over trials when
    there are several), then the gap pretrained − each BiLSTM."""
    split, metric = results["report_split"], results["metric"]
    summary, models = results["summary"], results["models"]
    gap = gaps(summary, split)
    header = ["fraction", "train examples"] + [f"{m} {metric}" for m in models] + \
        [f"gap vs {m}" for m in gap]
    examples = {f"{c['fraction']:g}": c["train_examples"] for c in results["cells"]}
    rows = []
    for fraction in [f"{f:g}" for f in results["fractions"]]:
        row = [f"{float(fraction):.0%}", f"{examples.get(fraction, '')}"]
        for model in models:
            entry = summary.get(model, {}).get(fraction, {}).get(split)
            if entry is None:
                row.append("")
            elif entry["trials"] > 1:
                row.append(f"{entry['mean']:.4f} ± {entry['std']:.4f}")
            else:
                row.append(f"{entry['mean']:.4f}")
        row += [f"{gap[m][fraction]:+.4f}" if fraction in gap[m] else "" for m in gap]
        rows.append(row)
    return format_table(header, rows, right_from=1)


def plot_sweep(results: dict, path: str) -> None:
    """A PNG: the metric against the training-set fraction for every model (left) and
    the gap pretrained − BiLSTM (right); written to a temporary name, then renamed."""
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    split, metric = results["report_split"], results["metric"]
    summary = results["summary"]
    gap = gaps(summary, split)
    fig, axes = plt.subplots(1, 2 if gap else 1, figsize=(11 if gap else 5.5, 4),
                             squeeze=False)
    left = axes[0][0]
    for model in results["models"]:
        points = sorted((float(f), s[split]["mean"], s[split]["std"])
                        for f, s in summary.get(model, {}).items() if split in s)
        if points:
            x, y, err = zip(*points, strict=True)
            left.errorbar([100 * v for v in x], y, yerr=err, marker="o", capsize=3,
                          label=model)
    left.set(xlabel="training set used (%)", ylabel=f"{split} {metric}",
             title=f"{results['task']}: {split} {metric}")
    left.grid(alpha=0.3)
    left.legend()
    if gap:
        right = axes[0][1]
        for model, values in gap.items():
            points = sorted((float(f), v) for f, v in values.items())
            x, y = zip(*points, strict=True)
            right.plot([100 * v for v in x], y, marker="o", label=f"pretrained − {model}")
        right.axhline(0.0, color="grey", linewidth=0.8)
        right.set(xlabel="training set used (%)", ylabel=f"{metric} gap",
                  title="pretrained − BiLSTM")
        right.grid(alpha=0.3)
        right.legend()
    fig.tight_layout()
    files.save_figure(fig, path)


# ----------------------------------------------------------------------------- the sweep

def run_sweep(config: BaselinesConfig, progress: bool = True) -> dict:
    """Run (or resume) every cell of the sweep; writes and returns results.json's dict.

    Example::

        config = BaselinesConfig(data_dir="data", model_name="sweep_mr",
                                 task_name="sst2_mr", fractions=[0.1, 1.0],
                                 lstm_models=["LSTM-1-128"])
        results = run_sweep(config)  # data/models/sweep_mr/results.{json,md,png}
        print(markdown_table(results))
    """
    vocab = vocab_path(config)
    tokenizer = WordPieceTokenizer(vocab, do_lower_case=config.do_lower_case)
    task = classification_task(config.task_name, "the sweep")
    features = task.labelled_splits(config.data_dir, tokenizer, config.max_seq_length)[1]
    table = None
    if "pretrained" in config.lstm_embeddings:
        table = embeddings_from_encoder(config.init_checkpoint, vocab)
    run = RunDir(config.output_dir, SETTINGS_FILE, "a sweep")
    run.start(config)

    plan = [(model, fraction, trial) for fraction in config.fractions
            for trial in range(config.num_trials) for model in config.models]
    cells, spent, trained = [], 0.0, 0
    for index, (model, fraction, trial) in enumerate(plan, 1):
        if progress:
            eta = (f", ETA {(len(plan) - index + 1) * spent / trained / 60:.0f} min"
                   if trained else "")
            print(f"[{index}/{len(plan)}{eta}] {model} on {fraction:.0%} of {task.name}, "
                  f"trial {trial}", flush=True)
        was_done = files.exists(
            files.join(config.cell_dir(model, fraction, trial), "result.json"))
        cell_started = time.time()
        cells.append(_cell(config, model, fraction, trial, task, features, table,
                           len(tokenizer.vocab), progress))
        if not was_done:  # the ETA counts cells trained now, not ones read back
            spent += time.time() - cell_started
            trained += 1

    metric = task.spec.metrics[0]
    split = "test" if "test" in features else "dev"
    results = {"task": task.name, "metric": metric, "report_split": split,
               "models": config.models, "fractions": config.fractions,
               "num_examples": {s: len(f) for s, f in features.items()},
               "vocab_file": vocab, "config": config.to_dict(), "cells": cells}
    results["summary"] = summarize(cells, metric)
    results["gap"] = gaps(results["summary"], split)
    files.write_json(config.results_path, results)
    run.write_text("results.md", markdown_table(results) + "\n")
    plot_sweep(results, run.join("results.png"))
    return results
