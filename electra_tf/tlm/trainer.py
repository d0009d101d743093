"""A TLM run: index (if missing) -> retrieve -> stage 1 -> stage 2 -> results, for TLM and
its two controls, each step resumable and skippable.

Layout under ``<data_dir>/models/<model_name>/``::

  tlm_config.json            the run's settings (a re-run with other settings is refused)
  retrieved/<run>.jsonl      the external data S of run "tlm" (BM25) and "random" (+ stats)
  <run>/stage1/              checkpoints, train/ events, encoder.keras (+ vocab, config),
                             summary.json (steps, FLOPs, last metrics)
  <run>/stage2/              checkpoints, events, best/ (best-dev weights), results.json
  results.json               every run's dev and test scores at its best-dev step, FLOPs,
                             retrieval stats, and the majority baseline
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from data_prep.build_tlm_index import build_index, make_analyzer
from electra_tf import files
from electra_tf.distribute import check_batch_sizes, chief_decides, is_chief
from electra_tf.masking import MaskingConfig, max_predictions_per_seq
from electra_tf.optimization import WarmupLinearDecay, make_optimizer
from electra_tf.tasks import readers, scorers
from electra_tf.tasks.specs import (
    Features,
    PairTask,
    classification_task,
    majority_predictions,
)
from electra_tf.tlm import retrieval
from electra_tf.tlm.config import TlmConfig
from electra_tf.tlm.data import encode_texts, is_task_step, joint_dataset, task_dataset
from electra_tf.tlm.model import TlmModel
from electra_tf.tokenization import WordPieceTokenizer, load_vocab, special_ids
from electra_tf.training.checkpointing import restore_or_init, worker_dir
from electra_tf.training.dev_eval import fit_with_dev_eval
from electra_tf.training.export import export_encoder
from electra_tf.training.loop import train_to_step
from electra_tf.training.precision import dtype_policy
from electra_tf.training.run_dir import RunDir, format_table

SETTINGS_FILE = "tlm_config.json"  # a TLM run's settings, in its folder

# ----------------------------------------------------------------------------- task data

def query_text(example: readers.PairExample) -> str:
    return example.text_a if example.text_b is None else f"{example.text_a} {example.text_b}"


# ----------------------------------------------------------------------------- retrieval

def ensure_index(config: TlmConfig, progress: bool = True) -> None:
    """Build the Whoosh index from ``corpus`` unless it exists (with the same inputs)."""
    if not config.corpus:
        if not retrieval.index_exists(config.index_path):
            raise ValueError(f"{config.index_path}: no index there and no --corpus to build "
                             f"one from (FORMAT:PATH, e.g. text:corpus.txt)")
        return
    build_index(config.corpus, config.index_path, config.passage_words, config.stem,
                config.index_procs, k1=config.k1, b=config.b, progress=progress)


def open_retriever(config: TlmConfig) -> retrieval.Retriever:
    if config.retriever == "bm25s":
        return retrieval.Bm25sRetriever.from_index(config.index_path, config.k1, config.b)
    return retrieval.WhooshRetriever(config.index_path, config.k1, config.b,
                                     procs=config.search_procs)


def retrieve_external(config: TlmConfig, run: str, queries: list[str],
                      progress: bool = True) -> retrieval.RetrievedSet:
    """The run's external data S, retrieved (or drawn, for "random") once and kept."""
    path = config.retrieved_path(run)
    if files.exists(path):
        return retrieval.read_retrieved(path)
    if run == "random":
        # As many documents as TLM retrieved: the paper's control for what retrieval adds.
        wanted = len(retrieve_external(config, "tlm", queries, progress).entries)
    retriever = open_retriever(config)
    try:
        if run == "tlm":
            found = retrieval.retrieve(retriever, queries, config.top_k, config.query,
                                       config.rake_top_n, progress=progress)
        else:
            found = retrieval.random_documents(retriever, wanted, config.seed)
    finally:
        close = getattr(retriever, "close", None)
        if close:
            close()
    if not found.entries:
        raise ValueError(f"retrieval found no documents for {len(queries)} queries "
                         f"({found.stats.get('skipped', 0)} had no indexable terms)")
    retrieval.write_retrieved(path, found)
    return found


def query_term_overlap(retrieved: retrieval.RetrievedSet, queries: list[str],
                       analyzer) -> float:
    """Fraction of retrieved documents sharing at least one term with the queries (a
    BM25 hit always does; random documents mostly do too, through common words)."""
    vocabulary = {t for q in queries for t in retrieval.query_terms(q, analyzer)}
    if not retrieved.entries:
        return 0.0
    sharing = sum(1 for _, _, text in retrieved.entries
                  if vocabulary.intersection(retrieval.query_terms(text, analyzer)))
    return sharing / len(retrieved.entries)


# ----------------------------------------------------------------------------- training

def _optimizer(config: TlmConfig, stage: int, total_steps: int):
    """The stage's optimizer and schedule: the reference's linear warmup then linear decay
    to 0, with the stage's peak learning rate, warmup and weight decay."""
    total_steps = max(total_steps, 1)
    warmup = config.warmup(stage, total_steps)
    if warmup >= total_steps:
        logging.warning("stage %d: %d warmup steps of %d: the learning rate never reaches "
                        "its peak (set --%swarmup_steps or --warmup_proportion)", stage,
                        warmup, total_steps, "stage2_" if stage == 2 else "")
    learning_rate = config.learning_rate if stage == 1 else config.stage2_learning_rate
    schedule = WarmupLinearDecay(learning_rate, total_steps, warmup)
    weight_decay = config.weight_decay_rate if stage == 1 else config.stage2_weight_decay_rate
    optimizer = make_optimizer(config.optimizer, schedule, weight_decay_rate=weight_decay,
                               clip_norm=config.clip_norm)
    return optimizer, schedule


def _dummy_batch(max_seq_length: int, predictions: int) -> dict:
    zeros = np.zeros((1, max_seq_length), np.int32)
    return {"input_ids": zeros, "input_mask": zeros, "segment_ids": zeros,
            "masked_lm_positions": np.zeros((1, predictions), np.int32),
            "is_task": np.zeros((1,), np.int32)}


def run_stage1(config: TlmConfig, run: str, train: Features, external: dict | None,
               num_labels: int, strategy: tf.distribute.Strategy, progress: bool = True
               ) -> dict:
    """Joint training from scratch on T and S (S None: T alone); returns the summary.
    Under several workers only the chief writes the stage's folder."""
    chief = is_chief(strategy)
    stage = RunDir(config.stage_dir(run, 1), chief=chief)
    done = stage.result("summary.json", strategy)
    if done is not None:
        return done
    vocab = load_vocab(config.vocab_path)
    model_config = config.model_config(len(vocab))
    total_steps = config.stage1_steps(model_config)
    flops_per_step = config.stage1_flops_per_step(model_config)
    masking = MaskingConfig(special_ids(vocab), len(vocab),
                            max_predictions_per_seq(config.mask_prob, config.max_seq_length),
                            config.mask_prob, "bert")
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(config.policy), strategy.scope():
        model = TlmModel(model_config, num_labels, config.mlm_weight, use_mlm=True,
                         name="tlm")
        model(_dummy_batch(config.max_seq_length, masking.max_predictions))
        optimizer, schedule = _optimizer(config, 1, total_steps)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model.optimizer.build(model.trainable_variables)  # with fp16, its loss scale too
    manager, latest = restore_or_init(model, model.optimizer, stage.path, strategy,
                                      max_to_keep=2)
    ratio = config.external_ratio if external is not None else 0

    def make_dataset(start_step: int):
        # The rho1 schedule goes on from `start_step` (a resume, a last shorter call).
        return strategy.distribute_datasets_from_function(
            lambda context: joint_dataset(
                train.inputs, train.labels, external, config.train_batch_size, ratio, masking,
                mask_task=config.mlm_weight > 0, seed=config.seed, start_step=start_step,
                input_context=context))

    trained = train_to_step(
        model, make_dataset, total_steps, manager, bool(latest),
        stage.join("train") if chief else None,
        config, flops_per_step=flops_per_step, schedule=schedule, progress=progress,
        desc=f"{run} stage 1", shown=("loss", "masked_lm_accuracy", "task_accuracy"))
    step = trained.pop("step")
    task_batches = sum(1 for s in range(step) if is_task_step(s, ratio))
    summary = {"run": run, "steps": step, "task_batches": task_batches,
               "external_batches": step - task_batches,
               "external_documents": 0 if external is None else len(external["input_ids"]),
               "task_examples": len(train), "flop_budget": config.flop_budget, **trained}
    if chief:
        # Stage 2 (and electra-finetune --init_checkpoint) start from this export.
        export_encoder(model.pretrainer, config.vocab_path, stage.path)
        stage.write_json("summary.json", summary)
    else:
        files.rmtree(worker_dir(strategy, stage.path))
    return summary


def predict_labels(model: TlmModel, features: Features, batch_size: int) -> np.ndarray:
    data = tf.data.Dataset.from_tensor_slices(features.inputs).batch(batch_size)
    return np.asarray(model.predict(data, verbose=0)).argmax(-1)


def task_scores(task: PairTask, predictions: np.ndarray, features: Features) -> dict:
    """Accuracy, micro and macro F1, and the task's own metrics (F1, MCC) if it has others."""
    return task.score(predictions, features) | scorers.classification_scores(
        predictions, features.labels)


def stage2_model(config: TlmConfig, model_config, num_labels: int, stage1_encoder: str,
                 total_steps: int, strategy: tf.distribute.Strategy):
    """Stage 2's compiled model: the encoder of stage 1 (its ``encoder.keras``), a newly
    initialized classification head, no MLM head in use; returns (model, optimizer,
    schedule)."""
    with files.local_copy(stage1_encoder) as local:  # Keras loads only local files
        saved = keras.saving.load_model(local, compile=False)
    keras.utils.set_random_seed(config.seed + 1)
    with dtype_policy(config.policy), strategy.scope():
        model = TlmModel(model_config, num_labels, mlm_weight=0.0, use_mlm=False, name="tlm")
        model(_dummy_batch(config.max_seq_length, 1))
        # No MLM loss in stage 2: its head's own weights are frozen (not the head as a
        # whole, which would freeze the token embedding table it is tied to).
        head = model.pretrainer.mlm_head
        head.dense.trainable = head.layer_norm.trainable = False
        head.output_bias.trainable = False
        model.encoder.set_weights(saved.get_weights())
        optimizer, schedule = _optimizer(config, 2, total_steps)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model.optimizer.build(model.trainable_variables)  # with fp16, its loss scale too
    return model, optimizer, schedule


def run_stage2(config: TlmConfig, run: str, task: PairTask, features: dict[str, Features],
               strategy: tf.distribute.Strategy, progress: bool = True) -> dict:
    """The task alone from stage 1's encoder, the classification head new; dev scores
    every ``eval_every_steps``; dev and test at the best-dev step."""
    stage = RunDir(config.stage_dir(run, 2), chief=is_chief(strategy))
    done = stage.result("results.json", strategy)
    if done is not None:
        return done
    stage1_encoder = files.join(config.stage_dir(run, 1), "encoder.keras")
    # Also waits, under several workers, for the chief to finish writing stage 1.
    if not chief_decides(strategy, files.exists(files.join(config.stage_dir(run, 1),
                                                           "summary.json"))):
        raise ValueError(f"{stage1_encoder}: no stage-1 encoder; run stage1 first "
                         f"(--stages=stage1,stage2)")
    vocab = load_vocab(config.vocab_path)
    model_config = config.model_config(len(vocab))
    train = features["train"]
    total_steps = max(1, int(config.stage2_num_train_epochs * len(train)
                             / config.train_batch_size))
    every = min(config.eval_every_steps, total_steps)
    model, optimizer, schedule = stage2_model(config, model_config, task.num_outputs,
                                              stage1_encoder, total_steps, strategy)

    def evaluate() -> dict:
        dev = features["dev"]
        return {task.name: {"dev": task_scores(
            task, predict_labels(model, dev, config.eval_batch_size), dev)}}

    history, best_entry, steps = fit_with_dev_eval(
        model, optimizer,
        lambda step: strategy.distribute_datasets_from_function(
            lambda context: task_dataset(train.inputs, train.labels, config.train_batch_size,
                                         config.seed + step, context)),
        stage.path, total_steps, every, evaluate, schedule, progress=progress,
        desc=f"{run} stage 2", period="eval")
    best = best_entry or history[-1]
    result = {"run": run, "steps": steps,
              "flops_per_step": config.stage2_flops_per_step(model_config),
              "best_step": best["step"], "dev": best["dev"][task.name]["dev"],
              "history": history}
    result["flops"] = result["steps"] * result["flops_per_step"]
    if "test" in features:
        result["test"] = task_scores(
            task, predict_labels(model, features["test"], config.eval_batch_size),
            features["test"])
    stage.write_json("results.json", result)
    return result


# ----------------------------------------------------------------------------- the run

def _check_retrieved_for_workers(config: TlmConfig, strategy: tf.distribute.Strategy) -> None:
    """Under several workers the index and retrieval are not redone (each worker would
    build the same index into the same folder): the retrieved sets must be on disk."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    stages = set(config.stages)
    needed = [config.retrieved_path(run) for run in config.runs
              if run != "task_only" and {"retrieve", "stage1"} & stages]
    missing = [path for path in needed if not files.exists(path)]
    if not chief_decides(strategy, not missing):
        raise ValueError(f"{', '.join(missing) or 'the retrieved sets'}: not retrieved yet; "
                         f"under several workers run the index and retrieve stages first, "
                         f"in one process (--stages=index,retrieve), then the training "
                         f"stages on every worker")


def markdown_table(results: dict) -> str:
    """Runs x (external documents, stage-1 steps, FLOPs, dev and test scores)."""
    metrics = ("accuracy", "macro_f1")
    header = ["run", "external docs", "stage-1 steps", "total FLOPs"]
    header += [f"dev {m}" for m in metrics] + [f"test {m}" for m in metrics]
    rows = []
    for run, entry in results["runs"].items():
        stage1, stage2 = entry.get("stage1", {}), entry.get("stage2", {})
        row = [run, str(stage1.get("external_documents", "")), str(stage1.get("steps", "")),
               f"{entry['total_flops']:.3g}" if entry.get("total_flops") else ""]
        for split in ("dev", "test"):
            scores = stage2.get(split, {})
            row += [f"{scores[m]:.4f}" if m in scores else "" for m in metrics]
        rows.append(row)
    baseline = results.get("majority_baseline", {})
    if baseline:
        rows.append(["majority class", "", "", ""]
                    + [f"{baseline[m]:.4f}" if m in baseline else "" for m in metrics]
                    + ["", ""])
    return format_table(header, rows)


def run_tlm(config: TlmConfig, strategy: tf.distribute.Strategy | None = None,
            progress: bool = True) -> dict:
    """Do `config`'s stages for each of its runs; returns (and writes) the results.

    Under several workers (``MultiWorkerMirroredStrategy``) every worker trains and
    scores, only the chief writes; the index and the retrieved sets must exist already.

    Example::

        config = TlmConfig(data_dir="data", model_name="tlm_mr", task_name="sst2_mr",
                           corpus=["text:data/samples/wiki_leads/wiki_leads.txt"],
                           model_size="debug", flop_budget=1e14)
        results = run_tlm(config)  # data/models/tlm_mr/results.json
        print(markdown_table(results))
    """
    strategy = strategy or tf.distribute.get_strategy()
    check_batch_sizes(config, strategy)
    chief = is_chief(strategy)
    task = classification_task(config.task_name, "TLM")
    tokenizer = WordPieceTokenizer(config.vocab_path, do_lower_case=config.do_lower_case)
    # A model that cannot be built or a budget below one step fails before anything is
    # written (or indexed, or retrieved).
    config.stage1_steps(config.model_config(len(tokenizer.vocab)))
    RunDir(config.model_dir, SETTINGS_FILE, "a TLM run", chief=chief).start(config)
    _check_retrieved_for_workers(config, strategy)
    examples, features = task.labelled_splits(config.data_dir, tokenizer,
                                              config.max_seq_length)
    queries = [query_text(e) for e in examples["train"]]  # training examples only
    stages = set(config.stages)
    needs_corpus = [r for r in config.runs if r != "task_only"]
    if ("index" in stages and needs_corpus
            and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)):
        ensure_index(config, progress)

    previous = files.read_json(config.results_path, missing_ok=True) or {}
    results = {"task": task.name, "config": config.to_dict(),
               "num_examples": {s: len(f) for s, f in features.items()},
               "majority_baseline": task_scores(task, majority_predictions(
                   task, features["train"], features["dev"]), features["dev"]),
               "runs": dict(previous.get("runs", {}))}
    for run in config.runs:
        entry = dict(results["runs"].get(run, {}))
        external = None
        if run != "task_only" and ({"retrieve", "stage1"} & stages):
            if "retrieve" not in stages and not files.exists(config.retrieved_path(run)):
                raise ValueError(f"{config.retrieved_path(run)}: not retrieved yet; add "
                                 f"retrieve to --stages")
            found = retrieve_external(config, run, queries, progress)
            entry["retrieval"] = dict(found.stats)
            analyzer = make_analyzer(config.stem)
            entry["retrieval"]["share_query_terms"] = query_term_overlap(found, queries,
                                                                         analyzer)
            if "stage1" in stages:
                external = encode_texts([text for _, _, text in found.entries], tokenizer,
                                        config.max_seq_length)
        if "stage1" in stages:
            entry["stage1"] = run_stage1(config, run, features["train"], external,
                                         task.num_outputs, strategy, progress)
        if "stage2" in stages:
            stage2 = run_stage2(config, run, task, features, strategy, progress)
            entry["stage2"] = {k: v for k, v in stage2.items() if k != "history"}
        if "stage1" in entry and "stage2" in entry:
            entry["total_flops"] = entry["stage1"]["flops"] + entry["stage2"]["flops"]
        results["runs"][run] = entry
        logging.info("%s: %s", run, entry.get("stage2", {}).get("dev"))
    if chief:
        files.write_json(config.results_path, results)
    return results
