"""run_tlm: task-driven language modeling (Yao et al., "NLP From Scratch Without Large-Scale
Pretraining") from index to results, with its controls.

Examples::

  # everything: build the index if missing, retrieve, stage 1, stage 2, for TLM and both
  # controls, at the same FLOPs
  electra-tlm --flagfile=flags/tlm/samples.flags --data_dir=data/samples \\
      --runs=tlm,task_only,random
  # one step alone
  electra-tlm --flagfile=flags/tlm/samples.flags --data_dir=data/samples --stages=retrieve

Runs: ``tlm`` (the BM25 top-k of each training example), ``task_only`` (no external data),
``random`` (as many random corpus documents as TLM retrieved). Re-running an interrupted
command resumes where it stopped; finished steps are skipped.
"""

from __future__ import annotations

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS

# TlmConfig fields default to None: the config's default, or the --hparams value.
FLAG_TABLE = [
    ("string", "data_dir", None, "Holds vocab.txt, finetuning_data/<task>/ and models/."),
    ("string", "model_name", None, "Outputs go to <data_dir>/models/<model_name> (default "
     "tlm)."),
    ("string", "task_name", None, "The task T: a classification task (default sst2_mr)."),
    ("list", "runs", None, "tlm, task_only, random (default tlm)."),
    ("list", "stages", None, "Which of index, retrieve, stage1, stage2 to do (default all)."),
    ("string", "hparams", "{}", "JSON object of TlmConfig fields; a field also given as a "
     "flag must agree."),
    ("string", "strategy", "default", "default (CPU / one GPU), mirrored, multi_worker or "
     "tpu."),
    ("string", "tpu", None, "TPU name or 'local'. Implies --strategy=tpu."),
    ("bool", "progress", True, "Show progress bars with ETA."),
    ("integer", "seed", None, "Seed of initialization, masking, shuffling and the random "
     "control (default 0)."),
    # corpus and index
    ("multi_string", "corpus", None, "FORMAT:PATH of the general corpus D (any corpus "
     "reader's format); needed only to build a missing index."),
    ("string", "index_dir", None, "The Whoosh index (default <data_dir>/tlm_index)."),
    ("integer", "passage_words", None, "Index passages of this many words (0: documents)."),
    ("bool", "stem", None, "Porter-stem index terms (the reference did not)."),
    ("integer", "index_procs", None, "Whoosh writer processes."),
    # retrieval
    ("string", "retriever", None, "whoosh (BM25F, default) or bm25s (many times faster)."),
    ("integer", "top_k", None, "Documents per query (default 50; the paper used 50 for "
     "high-resource and up to 5000 for low-resource tasks)."),
    ("string", "query", None, "text (every term of the example, default) or rake (its top "
     "RAKE key phrases, for long texts)."),
    ("integer", "rake_top_n", None, "Key phrases per query with --query=rake (default 5)."),
    ("integer", "search_procs", None, "Whoosh search processes."),
    ("float", "k1", None, "BM25 k1 (default 1.2)."),
    ("float", "b", None, "BM25 b (default 0.75)."),
    # model and training
    ("string", "model_size", None, "BERT-style encoder size: debug, tiny, small (default), "
     "base, large."),
    ("string", "model_hparam_overrides", None, "JSON model config overrides."),
    ("string", "vocab_file", None, "Default <data_dir>/vocab.txt."),
    ("integer", "max_seq_length", None, "Tokens per sequence, task and external (default "
     "128)."),
    ("integer", "train_batch_size", None, "Global batch size of both stages (default 32)."),
    ("integer", "eval_batch_size", None, "Prediction batch size (default 128)."),
    ("string", "optimizer", None, "adamw (the reference's, default) or lamb."),
    ("float", "weight_decay_rate", None, "Decoupled weight decay (default 0.01)."),
    ("float", "warmup_proportion", None, "Linear warmup over this fraction of each stage "
     "(default 0.06)."),
    ("string", "mixed_precision", None, "'' (float32, default), bf16 or fp16."),
    ("integer", "steps_per_execution", None, "Train steps per compiled call in both stages, "
     "like the original's iterations_per_loop (default 1; raise it on TPUs and GPUs)."),
    ("bool", "jit_compile", None, "Compile the train steps with XLA (default off)."),
    ("integer", "external_ratio", None, "rho1: external batches per task batch in stage 1 "
     "(default 3; 0 = task batches only)."),
    ("float", "mlm_weight", None, "rho2: a task batch's loss is (rho2 * MLM + task) / "
     "(rho2 + 1) (default 20)."),
    ("float", "mask_prob", None, "Masked fraction of tokens (default 0.15)."),
    ("float", "learning_rate", None, "Stage 1 peak learning rate (default 5e-4)."),
    ("integer", "num_train_steps", None, "Stage 1 steps (or --flop_budget)."),
    ("float", "flop_budget", None, "Stage 1 FLOPs: as many steps as fit (or "
     "--num_train_steps)."),
    ("float", "stage2_learning_rate", None, "Stage 2 peak learning rate (default 1e-4)."),
    ("float", "stage2_num_train_epochs", None, "Stage 2 epochs over T (default 3)."),
    ("integer", "eval_every_steps", None, "Stage 2 dev evaluation interval (default 100)."),
    ("integer", "save_checkpoints_steps", None, "Stage 1 checkpoint interval (default 500)."),
    ("integer", "log_every_steps", None, "Stage 1 TensorBoard interval (default 50)."),
]


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    return cli.define_flags(FLAG_TABLE, flag_values, required=("data_dir",))


def build_config(flag_values: flags.FlagValues = FLAGS):
    """TlmConfig from parsed flags and --hparams."""
    from electra_tf.tlm.config import TlmConfig

    return cli.config_from_flags(TlmConfig, flag_values,
                                 json_flags=("model_hparam_overrides",),
                                 list_flags=("runs", "stages", "corpus"))


def run() -> str:
    config = build_config()  # flag errors before TensorFlow starts devices
    from electra_tf.distribute import make_strategy
    from electra_tf.tlm.trainer import markdown_table, run_tlm

    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
    results = run_tlm(config, strategy, progress=FLAGS.progress)
    return (f"{results['task']}: scores at each run's best-dev step\n"
            f"{markdown_table(results)}\nresults: {config.results_path}")


def main():
    define_flags()
    app.run(cli.run_main("run_tlm", run))


if __name__ == "__main__":
    main()
