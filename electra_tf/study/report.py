"""The study's results: gathered from the runs' own result files into
``study_results.json``, the Table IV layout of Shao's "Pretraining Deep Learning Models for
NLU" (train FLOPs, parameters,
per-task dev scores, average) as markdown, and a plot of dev score against pretraining
FLOPs from the encoder snapshots.

Every score is the dev score at the best-dev epoch (step, for TLM) of each run, as ×100,
averaged over seeds (± the standard deviation when there are several): the BiLSTM sweep
and TLM's stage 2 keep only that epoch, so the finetuned rows use it too.
"""

from __future__ import annotations

import numpy as np

from electra_tf import files
from electra_tf.configs import get_config
from electra_tf.flops import count_parameters
from electra_tf.study.config import TASK_METRICS, StudyConfig
from electra_tf.study.pipeline import (
    finetuning_config,
    lstm_config,
    snapshots,
    task_folder,
    tlm_config,
    vocab_size,
)
from electra_tf.training.run_dir import format_table

NAMES = {"bert": "BERT", "electra": "ELECTRA", "ale": "ALE"}


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "values": [float(v) for v in values]}


def finetuned_scores(results: dict, task: str, num_trials: int | None = None) -> dict:
    """Mean/std over the first `num_trials` trials of the task's table metric (best-dev)."""
    name, metric = task_folder(task), TASK_METRICS[task]
    trials = results["trials"][:num_trials]
    return _stats([t["dev_best"][name]["dev"][metric] for t in trials])


def encoder_parameters(config: StudyConfig, objective: str) -> int:
    """The finetuned encoder's parameters (ELECTRA/ALE: the discriminator), no heads."""
    model_type = "electra" if objective == "scratch" else objective
    overrides = dict(config.pretrain_hparams.get("model_hparam_overrides", {}))
    overrides["vocab_size"] = vocab_size(config)
    return count_parameters(get_config(model_type, config.model_size, overrides))["encoder"]


def row_label(config: StudyConfig, row: str) -> str:
    size = config.model_size.capitalize()
    if row == "scratch":
        return f"No pretraining ({size})"
    return f"{NAMES[row]}-{size}"


def collect(config: StudyConfig) -> dict:
    """Everything finished so far, as one dict (rows with missing cells stay partial)."""
    rows = []
    for row in config.rows:
        entry = {"row": row, "label": row_label(config, row),
                 "parameters": encoder_parameters(config, row), "scores": {}}
        if row != "scratch":
            summary = files.read_json(files.join(config.model_dir(row), "train_summary.json"),
                                      missing_ok=True)
            if summary:
                entry.update(train_flops=summary["flops"], pretrain_steps=summary["step"])
        else:
            entry["train_flops"] = 0.0
        for task in config.tasks:
            finetuned = files.read_json(finetuning_config(config, row, task, config.num_trials)
                                        .results_path, missing_ok=True)
            if finetuned and len(finetuned["trials"]) >= config.num_trials:
                entry["scores"][task] = finetuned_scores(finetuned, task, config.num_trials)
        rows.append(entry)

    if config.tlm_task:
        tlm = tlm_config(config)
        done = files.read_json(tlm.results_path, missing_ok=True) or {}
        done = done.get("runs", {}).get("tlm", {})
        entry = {"row": "tlm", "label": f"TLM-{config.model_size.capitalize()} "
                 f"({config.tlm_budget_fraction:g} of the budget, 1 seed)", "scores": {}}
        if "stage1" in done and "stage2" in done:
            model_config = tlm.model_config(vocab_size(config))
            metric = TASK_METRICS[config.tlm_task]
            entry.update(train_flops=done["stage1"]["flops"],
                         parameters=count_parameters(model_config)["encoder"])
            entry["scores"][config.tlm_task] = _stats([done["stage2"]["dev"][metric]])
        rows.append(entry)

    if config.lstm_model:
        seeds = lstm_config(config, config.lstm_tasks[0]).num_trials if config.lstm_tasks \
            else config.num_trials
        entry = {"row": "lstm", "label": f"{config.lstm_model} (no pretraining"
                 + (f", {seeds} seed{'s' * (seeds > 1)})" if seeds != config.num_trials
                    else ")"), "train_flops": 0.0, "scores": {}}
        for task in config.lstm_tasks:
            sweep = files.read_json(lstm_config(config, task).results_path, missing_ok=True)
            if sweep:
                cells = [c for c in sweep["cells"] if c["model"] == config.lstm_model]
                entry["scores"][task] = _stats([c["dev"][TASK_METRICS[task]] for c in cells])
                entry["parameters"] = cells[0]["parameters"]["total"]
        rows.append(entry)

    for entry in rows:
        means = [entry["scores"][t]["mean"] for t in config.tasks if t in entry["scores"]]
        if len(means) == len(config.tasks):
            entry["average"] = float(np.mean(means))

    curves = {}
    for objective in config.objectives if config.curve_tasks else ():
        points = []
        for directory, snapshot in snapshots(config, objective):
            scores = []
            for task in config.curve_tasks:
                finetuned = files.read_json(finetuning_config(
                    config, objective, task, config.curve_trials, directory, directory)
                    .results_path, missing_ok=True)
                if finetuned and len(finetuned["trials"]) >= config.curve_trials:
                    scores.append(finetuned_scores(finetuned, task, config.curve_trials)["mean"])
            if len(scores) == len(config.curve_tasks):
                points.append({"step": snapshot["step"], "flops": snapshot["flops"],
                               "score": float(np.mean(scores))})
        final = next(r for r in rows if r["row"] == objective)
        if "train_flops" in final:
            scores = []
            for task in config.curve_tasks:
                finetuned = files.read_json(finetuning_config(
                    config, objective, task, config.num_trials).results_path, missing_ok=True)
                if finetuned:
                    scores.append(finetuned_scores(finetuned, task, config.curve_trials)["mean"])
            if len(scores) == len(config.curve_tasks):
                points.append({"step": final["pretrain_steps"], "flops": final["train_flops"],
                               "score": float(np.mean(scores))})
        curves[objective] = points
    scratch = next((r for r in rows if r["row"] == "scratch"), None)
    baseline = None
    if scratch and config.curve_tasks and all(t in scratch["scores"]
                                              for t in config.curve_tasks):
        baseline = float(np.mean([scratch["scores"][t]["values"][:config.curve_trials]
                                  for t in config.curve_tasks]))
    return {"config": config.to_dict(), "tasks": config.tasks, "rows": rows,
            "curves": curves, "curve_scratch": baseline}


def _cell(score: dict | None) -> str:
    if score is None:
        return "–"
    text = f"{100 * score['mean']:.1f}"
    if len(score["values"]) > 1:
        text += f" ± {100 * score['std']:.1f}"
    return text


def markdown_table(results: dict) -> str:
    """Table IV's layout: model, train FLOPs, parameters, one column per task, average."""
    tasks = results["tasks"]
    header = ["Model", "Train FLOPs", "Params"] + [
        f"{t} ({TASK_METRICS[t]})" for t in tasks] + ["Avg."]
    rows = []
    for row in results["rows"]:
        flops = row.get("train_flops")
        params = row.get("parameters")
        cells = [row["label"], "–" if not flops else f"{flops:.2e}",
                 "–" if params is None else f"{params / 1e6:.1f}M"]
        cells += [_cell(row["scores"].get(t)) for t in tasks]
        cells.append(f"{100 * row['average']:.1f}" if "average" in row else "–")
        rows.append(cells)
    return format_table(header, rows, right_from=1)


def plot(results: dict, path: str) -> None:
    """Dev score (mean over the curve tasks) against pretraining FLOPs, one line per
    objective, the from-scratch control as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = results["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for objective, points in results["curves"].items():
        if points:
            ax.plot([p["flops"] for p in points], [100 * p["score"] for p in points],
                    marker="o", label=NAMES[objective])
    if results.get("curve_scratch") is not None:
        ax.axhline(100 * results["curve_scratch"], color="grey", linestyle="--",
                   label="no pretraining")
    ax.set_xlabel("pretraining FLOPs")
    ax.set_ylabel(f"dev score ×100 ({', '.join(config['curve_tasks'])})")
    ax.set_title(f"{config['model_size']} models, same corpus, budget "
                 f"{config['flop_budget']:.2g} FLOPs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    files.save_figure(fig, path)


def write(config: StudyConfig, results: dict) -> None:
    """``study_results.json``, ``study_results.md`` and ``study_results.png``."""
    files.write_json(config.results_path, results)
    base = config.results_path.removesuffix(".json")
    files.atomic_write(f"{base}.md", markdown_table(results) + "\n")
    if any(results["curves"].values()):  # the demo has no curve tasks: no plot
        plot(results, f"{base}.png")
