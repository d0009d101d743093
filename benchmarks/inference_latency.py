"""Benchmark: the parameter and inference-latency table of "To Pretrain or Not to Pretrain".

Prints, for each sequence length, the paper's Table 3 layout: one row per model
(ELECTRA-Small/Base-sized encoders of this package, LSTM-2-256, LSTM-4-256, LSTM-4-512,
and LSTMs on a frozen pretrained 768-wide table, "+emb768"), the parameters without the
token embedding table, and ms per batch (mean ± std of --num_runs after --warmup
untimed runs) at each batch size, for the compiled inference function (tf.function with
a fixed input signature, training=False; --xla adds XLA), random weights and token ids,
every position real. On CPU, and also on GPU when TensorFlow sees one (--gpu).
electra_tf.baselines.latency documents the model names and what is counted.

Then, in the same run, the peer: transformers' ElectraModel (PyTorch CPU, eager,
torch.inference_mode, as many threads as TensorFlow uses, in its own process so the two
runtimes' thread pools do not meet) with the same config and the same weights as our
ELECTRA-Small (exported by electra_tf.checkpoints.save_hf; the largest output difference is
printed), at --hf_batch_size x --hf_seq_len. Ours and HF alternate run by run, so drifts in
the machine's load hit both alike. Printed: HF ms / our ms (> 1: ours faster) against the
goal 2x, and ELECTRA-Base ms / LSTM-2-256 ms from the table against the goal 20x (the
paper's finding), each with whether it is met.

"other processes meanwhile" is the CPU they used during a measurement, in cores; on a 2-core
machine anything above ~0.1 perturbs the numbers.

The defaults (8 models, batch 128/256/384, seq 128, 3 runs after 1 warm-up) took 13 min
on an idle 2-core CPU, over half of it ELECTRA-Base. Sequence lengths up to 512 (the
encoders' position table) are supported (--seq_lengths=128,512), but slow here: by FLOP
count a batch at 512 costs about 4.3x one at 128 for Base (4x the tokens, attention
growing with the length), so the default table at 512 would take about an hour.

  python benchmarks/inference_latency.py [--models=ELECTRA-Small,LSTM-2-256]
      [--batch_sizes=128,256,384] [--seq_lengths=128] [--num_runs=3] [--warmup=1] [--xla]
      [--output_json=latency.json]
"""

import json
import math
import os
import sys
import tempfile
import time
from importlib import metadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from peer_process import CpuWatch, PeerProcess, serve  # noqa: E402

HF_GOAL = 2.0
LSTM_GOAL = 20.0

# No default value: the default rows are electra_tf.baselines.latency.DEFAULT_MODELS, read
# after the peer has started (this module imports no TensorFlow at the top: the spawned
# peer process re-imports it).
flags.DEFINE_list("models", None,
                  "Rows of the table: ELECTRA-<Debug|Tiny|Small|Base|Large>, LSTM-<n>-<k>, "
                  "LSTM-<n>-<k>+emb<pretrained width>. Default: ELECTRA-Small, "
                  "ELECTRA-Base, LSTM-2-256, LSTM-4-256, LSTM-4-512 and the three LSTMs "
                  "+emb768.")
flags.DEFINE_list("batch_sizes", ["128", "256", "384"], "Columns: batch sizes (the paper's).")
flags.DEFINE_list("seq_lengths", ["128"],
                  "One table per sequence length; at most 512 with an encoder in --models "
                  "(512 works but is slow on CPU).")
flags.DEFINE_integer("num_runs", 3, "Timed runs per cell (and per side of the HF comparison).",
                     lower_bound=1)
flags.DEFINE_integer("warmup", 1, "Untimed runs before them.", lower_bound=0)
flags.DEFINE_bool("xla", False, "Compile our inference functions with XLA (jit_compile).")
flags.DEFINE_bool("gpu", True, "Also measure the table on GPU when TensorFlow sees one.")
flags.DEFINE_bool("hf", True, "Compare our ELECTRA-Small with transformers' (PyTorch CPU).")
flags.DEFINE_integer("hf_batch_size", 128, "Batch size of the HF comparison.", lower_bound=1)
flags.DEFINE_integer("hf_seq_len", 128, "Sequence length of the HF comparison.",
                     lower_bound=1, upper_bound=512)
flags.DEFINE_string("output_json", None, "Also write every number measured to this file.")
flags.DEFINE_integer("seed", 0, "Seed of the random weights and token ids.")
FLAGS = flags.FLAGS


# ----------------------------------------------------------------------- the HF peer


def _peer_server(conn):
    """The peer process: answers ("load", folder, threads, inputs, probe) and ("run",)."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # its weight-loading bar
    state = {}

    def handle(command):
        if command[0] == "load":
            folder, threads, arrays, probe = command[1:]
            torch.set_num_threads(threads)
            model = state["model"] = transformers.ElectraModel.from_pretrained(folder).eval()
            state["inputs"] = _torch_inputs(arrays)
            with torch.inference_mode():
                hidden = model(**_torch_inputs(probe)).last_hidden_state.numpy()
            return {"hidden": hidden, "threads": torch.get_num_threads(),
                    "attention": model.config._attn_implementation}
        start = time.perf_counter()
        with torch.inference_mode():
            state["model"](**state["inputs"]).last_hidden_state.numpy()
        return time.perf_counter() - start

    serve(conn, handle)


def _torch_inputs(arrays):
    import torch

    return {"input_ids": torch.from_numpy(arrays["input_ids"]).long(),
            "attention_mask": torch.from_numpy(arrays["input_mask"]).long(),
            "token_type_ids": torch.from_numpy(arrays["segment_ids"]).long()}


class Peer(PeerProcess):
    """transformers' ElectraModel in its own process."""

    def __init__(self):
        super().__init__(_peer_server)

    def load(self, folder, threads, inputs, probe):
        return self.call("load", folder, threads, inputs, probe)

    def run(self):
        return self.call("run")


# ------------------------------------------------------------------------- measuring


def _fail(message):
    """Bad input: one line, no traceback, exit status 1."""
    print(f"inference_latency.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def _int_list(values, flag):
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        _fail(f"--{flag}={','.join(values)}: not all integers")
    if not numbers or min(numbers) < 1:
        _fail(f"--{flag}={','.join(values)}: need one or more integers >= 1")
    return numbers


def compare_with_hf(peer, threads):
    """Our ELECTRA-Small against transformers' on the same weights, alternating runs:
    a JSON-able dict of both sides' run times, the ratio and the output difference."""
    from electra_tf import checkpoints
    from electra_tf.baselines.latency import InferenceTimer, parse_model_name, random_inputs

    spec = parse_model_name("ELECTRA-Small")
    batch, seq_len = FLAGS.hf_batch_size, FLAGS.hf_seq_len
    ours = InferenceTimer(spec, batch, seq_len, FLAGS.xla, FLAGS.seed)
    inputs = {k: v.numpy() for k, v in ours.inputs.items()}
    probe = random_inputs(spec.input_names, 2, 16, seed=FLAGS.seed + 1)
    probe["input_mask"][1, 9:] = 0  # one padded row: the mask must mean the same
    with tempfile.TemporaryDirectory(prefix="latency-hf-") as folder:
        checkpoints.save_hf(ours.model, os.path.join(folder, "hf"))
        loaded = peer.load(os.path.join(folder, "hf"), threads, inputs, probe)
    mine = ours.model(probe, training=False)["sequence_output"].numpy()
    real = probe["input_mask"].astype(bool)
    max_diff = float(np.abs(mine - loaded["hidden"])[real].max())
    print(f"HF comparison: same weights, largest |hidden state difference| {max_diff:.1e}; "
          f"HF attention '{loaded['attention']}', {loaded['threads']} torch threads",
          flush=True)
    ours_s, theirs_s = [], []
    with CpuWatch(peer.pid) as watch:
        for _ in range(FLAGS.warmup):
            ours.run()
            peer.run()
        for _ in range(FLAGS.num_runs):
            ours_s.append(ours.run())
            theirs_s.append(peer.run())
    ours_ms, theirs_ms = 1000 * np.array(ours_s), 1000 * np.array(theirs_s)
    return {"model": spec.name, "batch_size": batch, "seq_len": seq_len,
            "ours_ms": ours_ms.tolist(), "hf_ms": theirs_ms.tolist(),
            "ours_mean_ms": float(ours_ms.mean()), "hf_mean_ms": float(theirs_ms.mean()),
            "speedup": float(theirs_ms.mean() / ours_ms.mean()),
            "max_abs_diff": max_diff, "hf_attention": loaded["attention"],
            "torch_threads": loaded["threads"], "busy": watch.other_cores}


def _verdict(value, goal):
    if math.isnan(value):
        return "not measured"
    return "MET" if value >= goal else "NOT met"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    batch_sizes = _int_list(FLAGS.batch_sizes, "batch_sizes")
    seq_lengths = _int_list(FLAGS.seq_lengths, "seq_lengths")
    from electra_tf.baselines import latency

    # Every name and shape is checked before anything is built or timed.
    models = FLAGS.models or list(latency.DEFAULT_MODELS)
    try:
        models = [latency.parse_model_name(model) for model in models]
    except ValueError as e:
        _fail(f"--models: {e}")
    for model in models:
        for seq_len in seq_lengths:
            try:
                latency.check_shape(batch_sizes[0], seq_len, model.max_seq_len)
            except ValueError as e:
                _fail(f"--seq_lengths: {e} ({model.name})")
    started = time.perf_counter()
    # A spawned process: it starts a fresh interpreter, so the TensorFlow imported here
    # is not in it.
    peer = Peer() if FLAGS.hf else None
    try:
        result = run([m.name for m in models], batch_sizes, seq_lengths, peer)
    finally:
        if peer is not None:
            peer.close()
    result["wall_s"] = time.perf_counter() - started
    print(f"\nTotal {result['wall_s']:.0f} s.")
    if FLAGS.output_json:
        from electra_tf.files import atomic_write

        atomic_write(FLAGS.output_json, json.dumps(result, indent=2))
        print(f"Wrote {FLAGS.output_json}")


def run(models, batch_sizes, seq_lengths, peer):
    """Measures the tables and the comparisons, printing as it goes: the JSON-able result."""
    import tensorflow as tf

    from electra_tf.baselines import latency

    threads = latency.cpu_threads()
    devices = ["CPU"] + (["GPU"] if FLAGS.gpu and tf.config.list_physical_devices("GPU")
                         else [])
    print(f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__} with {threads} intra-op "
          f"threads; devices: {', '.join(devices)}", flush=True)
    tables = []
    for device in devices:
        for seq_len in seq_lengths:
            with CpuWatch(peer.pid if peer else None) as watch:
                table = latency.latency_table(
                    models, batch_sizes, seq_len, FLAGS.num_runs, FLAGS.warmup,
                    FLAGS.xla, device, FLAGS.seed,
                    progress=lambda line: print("  " + line, flush=True))
            table["busy"] = watch.other_cores
            tables.append(table)
            print("\n" + latency.format_table(table))
            print(f"(other processes meanwhile: {watch.other_cores:.2f} cores)\n", flush=True)

    result = {"tables": tables, "models": models, "batch_sizes": batch_sizes,
              "seq_lengths": seq_lengths, "flags": {k: FLAGS[k].value for k in (
                  "num_runs", "warmup", "xla", "hf_batch_size", "hf_seq_len", "seed")},
              "versions": {p: metadata.version(p) for p in (
            "tensorflow", "keras", "torch", "transformers")}}

    # Goal 2: the paper's finding, from the CPU table(s).
    lstm_ratios = {}
    for table in tables:
        if table["device"] != "CPU":
            continue
        for batch in batch_sizes:
            ratio = latency.latency_ratio(table, "ELECTRA-Base", "LSTM-2-256", batch)
            lstm_ratios[f"seq {table['seq_len']} batch {batch}"] = ratio
    measured = [r for r in lstm_ratios.values() if not math.isnan(r)]
    worst = min(measured) if measured else math.nan
    result["base_over_lstm_2_256"] = {k: None if math.isnan(v) else v
                                      for k, v in lstm_ratios.items()}

    if peer is not None:
        print(f"HF comparison: ELECTRA-Small, batch {FLAGS.hf_batch_size} x seq "
              f"{FLAGS.hf_seq_len}, ours and transformers alternating ...", flush=True)
        hf = compare_with_hf(peer, threads)
        result["hf_comparison"] = hf
        print(f"ELECTRA-Small inference, batch {hf['batch_size']} x seq {hf['seq_len']}, "
              f"mean of {FLAGS.num_runs}: ours {hf['ours_mean_ms']:,.0f} ms, transformers "
              f"{metadata.version('transformers')} (torch {metadata.version('torch')}, CPU) "
              f"{hf['hf_mean_ms']:,.0f} ms (other processes meanwhile: {hf['busy']:.2f} "
              f"cores)")
        print(f"Goal 1: ours >= {HF_GOAL:g}x faster than HF: {hf['speedup']:.2f}x -> "
              f"{_verdict(hf['speedup'], HF_GOAL)}")
    else:
        print(f"Goal 1: ours >= {HF_GOAL:g}x faster than HF: not measured (--nohf)")
    print(f"Goal 2: ELECTRA-Base latency / LSTM-2-256 latency >= {LSTM_GOAL:g}x (CPU): "
          + (", ".join(f"{k}: {v:.1f}x" for k, v in lstm_ratios.items()
                       if not math.isnan(v)) or "needs both models in --models")
          + f" -> {_verdict(worst, LSTM_GOAL)}"
          + (" (at every batch size)" if len(measured) > 1 and worst >= LSTM_GOAL else ""))
    return result


if __name__ == "__main__":
    app.run(main)
