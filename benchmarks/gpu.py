"""Benchmark: ELECTRA-Small on a GPU against transformers on the same GPU, in one command.

Measured in one run, on the first GPU:

1. the GPU's matmul rates (--matmul_size square, 8192 by default) in fp32, bf16 and fp16,
   by TensorFlow and by PyTorch: the peaks MFU is taken against;
2. the pretraining step of benchmarks/pretrain_throughput.py (ELECTRA-Small: generator,
   sampling, discriminator, LAMB with clipping) at batch --train_batch_size x
   --seq_len: ours in each of --variants (fp32, bf16 = "mixed_bfloat16", bf16_xla, ...),
   the peer (transformers on PyTorch CUDA, eager) in each of --precisions (fp32, bf16
   autocast), steps alternating;
3. inference of benchmarks/inference_latency.py (ELECTRA-Small encoder, batch
   --infer_batch_size x --seq_len, the same weights on both sides): ours fp32 and bf16,
   the peer fp32 and bf16 autocast, runs alternating.

Printed: tokens/s, ours / the peer per precision pair and best against best, MFU against
the measured fp32 and bf16 matmul rates. On a GPU without bf16 (compute capability
below 8.0: T4, V100) bf16 is replaced by fp16 on both sides ("mixed_float16" with loss
scaling for ours, fp16 autocast with a GradScaler for the peer), and said so.
TensorFlow runs fp32 matmuls as TensorFloat-32 on Ampere and later by default; --tf32
(default on) gives the peer the same (torch.backends.cuda.matmul.allow_tf32), --notf32
turns it off on both sides.

Every number, the device names and the versions go to ONE JSON file, --output_json,
written atomically. Without a GPU it says so in one line (what TensorFlow and torch see),
measures nothing and writes the JSON with "gpu": null and the reason; the exit status is
then 0, or 1 with --require_gpu. Ours needs a GPU that TensorFlow sees; when torch sees
none (a CPU-only torch build), our pretraining rows are measured and the peer and the
inference comparison are reported as not measured. The peer runs in one spawned process
(TensorFlow never imported there) for both parts.

The defaults take a few minutes on one GPU (3 warm-up + 10 timed steps / runs per row).

  python benchmarks/gpu.py [--output_json=gpu_bench.json] [--require_gpu]
      [--variants=fp32,bf16,bf16_xla] [--precisions=fp32,bf16] [--train_batch_size=128]
      [--infer_batch_size=128] [--seq_len=128] [--steps=10] [--warmup_steps=3]
      [--num_runs=10] [--warmup=3] [--matmul_size=8192] [--notf32]
"""

import json
import math
import os
import sys
import time
from importlib import metadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import inference_latency as infer  # noqa: E402
import pretrain_throughput as train  # noqa: E402
from absl import app, flags  # noqa: E402
from peer_process import PeerProcess, format_ratio, format_share, serve, torch_setup  # noqa: E402

from electra_tf.configs import SIZES  # noqa: E402  (no TensorFlow: the peer imports this)

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when run as a script, so tests can import it)."""
    flags.DEFINE_string("output_json", "gpu_bench.json", "The JSON file of every number.")
    flags.DEFINE_bool("require_gpu", False, "Exit with status 1 when there is no GPU.")
    flags.DEFINE_list("variants", ["fp32", "bf16", "bf16_xla"],
                      f"Our pretraining variants, of {', '.join(train.VARIANTS)}.")
    flags.DEFINE_list("precisions", ["fp32", "bf16"],
                      "The peer's pretraining precisions and both sides' inference precisions, "
                      "of fp32, bf16, fp16.")
    flags.DEFINE_enum("size", "small", list(SIZES),
                      "Model size (the official small by default).")
    flags.DEFINE_integer("train_batch_size", 128, "Sequences per pretraining step.",
                         lower_bound=1)
    flags.DEFINE_integer("infer_batch_size", 128, "Sequences per inference batch.",
                         lower_bound=1)
    flags.DEFINE_integer("seq_len", 128, "Sequence length of both.", lower_bound=8,
                         upper_bound=512)
    flags.DEFINE_integer("steps", 10, "Timed pretraining steps per row (each side).",
                         lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 3, "Untimed pretraining steps first.", lower_bound=1)
    flags.DEFINE_integer("num_runs", 10, "Timed inference runs (each side and precision).",
                         lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed inference runs first.", lower_bound=0)
    flags.DEFINE_integer("matmul_size", 8192, "Size of the square matmuls of the peak rates.",
                         lower_bound=16)
    flags.DEFINE_bool("tf32", True, "TensorFloat-32 for fp32 matmuls on both sides (TF's "
                      "default; PyTorch's is off).")
    flags.DEFINE_bool("force_cpu", False,
                      "Testing only: run the whole GPU code path on the CPU.")
    flags.DEFINE_integer("seed", 0, "Seed of the batches and the models.")


def _peer_server(conn, device, tf32):
    """One peer process for both benchmarks: the inference commands go to
    inference_latency's handler, the rest to pretrain_throughput's."""
    torch_setup(device, tf32)
    training, inference = train.peer_handler(device), infer.peer_handler(device)
    serve(conn, lambda command: (inference if command[0] in ("load", "run") else training)(
        command))


class Peer(train.Peer):
    """transformers in its own process, on "cuda" (or "cpu" with --force_cpu): the
    pretraining peer's commands and the inference peer's load / run."""

    def __init__(self, device, tf32):
        PeerProcess.__init__(self, _peer_server, device, tf32)
        self.device = device

    load = infer.Peer.load
    run = infer.Peer.run


def _fail(message):
    """Bad input: one line, no traceback, exit status 1."""
    print(f"gpu.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def _check_flags():
    unknown = [v for v in FLAGS.variants if v not in train.VARIANTS]
    if unknown or not FLAGS.variants:
        _fail(f"--variants={','.join(FLAGS.variants)}: allowed: {', '.join(train.VARIANTS)}")
    unknown = [p for p in FLAGS.precisions if p not in ("fp32", "bf16", "fp16")]
    if unknown or not FLAGS.precisions:
        _fail(f"--precisions={','.join(FLAGS.precisions)}: allowed: fp32, bf16, fp16")
    if FLAGS.force_cpu and any("fp16" in v for v in FLAGS.variants + FLAGS.precisions):
        _fail("--force_cpu: fp16 is for GPUs; use fp32 and bf16")


def json_safe(value):
    """`value` with NaN and infinities as None: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def format_flops(rate):
    """A FLOP/s rate in TFLOP/s from 1e12 up, else in GFLOP/s."""
    return f"{rate / 1e12:.1f} TFLOP/s" if rate >= 1e12 else f"{rate / 1e9:.1f} GFLOP/s"


def no_gpu_reason(tf_info, torch_info):
    """One line: what TensorFlow and torch see, when TensorFlow sees no GPU."""
    torch_sees = (f"sees {torch_info['device']}" if torch_info.get("cuda_available") else
                  "sees none (CUDA available: False"
                  + (", a CPU-only build)" if not torch_info.get("cuda_version") else ")"))
    return (f"no GPU: TensorFlow {tf_info['version']} sees none (built with CUDA: "
            f"{'yes' if tf_info['built_with_cuda'] else 'no'}); torch "
            f"{torch_info['torch']} {torch_sees}")


def half_precision(tf_info, force_cpu):
    """bf16 where the GPU has it (compute capability 8.0 and later; on the CPU, always),
    else fp16."""
    if force_cpu:
        return "bf16"
    capability = tf_info.get("compute_capability") or (0, 0)
    return "bf16" if tuple(capability) >= (8, 0) else "fp16"


def tensorflow_info():
    """TensorFlow's version and GPUs (memory growth on, so the peer's process finds room)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    info = {"version": tf.__version__, "built_with_cuda": tf.test.is_built_with_cuda(),
            "gpus": [gpu.name for gpu in gpus]}
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[0])
        info.update(device=details.get("device_name"),
                    compute_capability=details.get("compute_capability"))
    return info


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    _check_flags()
    started = time.perf_counter()
    peer_device = "cpu" if FLAGS.force_cpu else "cuda"
    # The peer starts before TensorFlow is imported; it answers what torch sees.
    peer = Peer(peer_device, FLAGS.tf32)
    try:
        result = run(peer)
    finally:
        peer.close()
    result["wall_s"] = time.perf_counter() - started
    from electra_tf.files import atomic_write

    atomic_write(FLAGS.output_json, json.dumps(json_safe(result), indent=2))
    if result["gpu"] is None:
        print(f"gpu.py: {result['reason']}; nothing measured; wrote {FLAGS.output_json}")
    else:
        print(f"\nTotal {result['wall_s']:.0f} s. Wrote {FLAGS.output_json}")
    sys.exit(exit_status(result, FLAGS.require_gpu))


def exit_status(result, require_gpu):
    """1 when no GPU was found and one is required, else 0 (nothing measured is not an
    error unless --require_gpu says so)."""
    return 1 if result["gpu"] is None and require_gpu else 0


def run(peer):
    """Detects the GPU and measures everything: the JSON-able result."""
    torch_info = peer.info()
    tf_info = tensorflow_info()
    versions = {p: metadata.version(p) for p in ("tensorflow", "keras", "torch",
                                                 "transformers")}
    settings = {name: FLAGS[name].value for name in (
        "variants", "precisions", "size", "train_batch_size", "infer_batch_size", "seq_len",
        "steps", "warmup_steps", "num_runs", "warmup", "matmul_size", "tf32", "force_cpu",
        "seed")}
    result = {"gpu": None, "reason": None, "tensorflow": tf_info, "torch": torch_info,
              "versions": versions, "settings": settings}
    if not tf_info["gpus"] and not FLAGS.force_cpu:
        result["reason"] = no_gpu_reason(tf_info, torch_info)
        return result
    import tensorflow as tf

    device = "CPU" if FLAGS.force_cpu else "GPU"
    tf.config.experimental.enable_tensor_float_32_execution(FLAGS.tf32)
    result["gpu"] = {"name": "CPU (--force_cpu)" if FLAGS.force_cpu else tf_info["device"],
                     "compute_capability": tf_info.get("compute_capability"),
                     "torch_device": torch_info.get("device")}
    peer_ok = FLAGS.force_cpu or torch_info["cuda_available"]
    if not peer_ok:
        print(f"The peer is not measured: torch {torch_info['torch']} sees no GPU.")
        result["reason"] = f"torch {torch_info['torch']} sees no GPU: the peer not measured"
    half = half_precision(tf_info, FLAGS.force_cpu)
    variants = list(dict.fromkeys(v.replace("bf16", half) for v in FLAGS.variants))
    precisions = list(dict.fromkeys(p.replace("bf16", half) for p in FLAGS.precisions))
    if half != "bf16":
        print(f"{result['gpu']['name']} (compute capability {tf_info['compute_capability']})"
              f" has no bf16: fp16 in its place (ours mixed_float16, the peer fp16 "
              f"autocast with a GradScaler).")
    print(f"{result['gpu']['name']}: TensorFlow {versions['tensorflow']}, torch "
          f"{torch_info['torch']}, transformers {versions['transformers']}"
          + ("" if FLAGS.force_cpu else
             f"; fp32 matmuls as TF32: {'on' if FLAGS.tf32 else 'off'} (both sides)"),
          flush=True)
    result.update(device=device, half=half, variants=variants, precisions=precisions)

    # 1. Matmul rates.
    size = FLAGS.matmul_size
    rate_precisions = ["fp32", "bf16"] + ([] if FLAGS.force_cpu else ["fp16"])
    rates = train.tensorflow_rates(size, device, rate_precisions)
    if peer_ok:
        rates.update(train.attempt("torch matmul", peer.peak, size, rate_precisions)
                     or {})
    peaks = train.best_peaks(rates)
    print(f"matmul {size}x{size}: " + ", ".join(f"{k} {format_flops(v)}"
                                               for k, v in rates.items()), flush=True)
    result["matmul"] = {"size": size, "rates": rates,
                        "peaks": {p: {"name": n, "flops": v} for p, (n, v) in peaks.items()}}

    # 2. Pretraining.
    rows = train.measure_rows(
        ["electra"], variants, peer if peer_ok else None, precisions, device=device,
        size=FLAGS.size, batch_size=FLAGS.train_batch_size, seq_len=FLAGS.seq_len,
        steps=FLAGS.steps, warmup_steps=FLAGS.warmup_steps, seed=FLAGS.seed)
    if peer_ok:
        peer.clear()  # the training models' GPU memory, before inference
    result["training"] = training_result(rows, peaks, half)

    # 3. Inference.
    result["inference"] = inference_result(peer if peer_ok else None, device, precisions,
                                           peaks)
    return result


def training_result(rows, peaks, half):
    """Prints the pretraining table and summary: their JSON-able numbers."""
    tokens = FLAGS.train_batch_size * FLAGS.seq_len
    name = f"ELECTRA-{FLAGS.size.capitalize()}"
    print(f"\nPretraining step, {name}, batch {FLAGS.train_batch_size} x seq "
          f"{FLAGS.seq_len}, {FLAGS.warmup_steps} warm-up + {FLAGS.steps} timed steps, ours "
          f"and transformers alternating:")
    print("\n".join(train.format_rows(rows, peaks, tokens, half, {"electra": name})))
    print("matmuls alone per step (benchmarks/matmul_floor.py):\n" + "\n".join(
        "  " + line for line in train.matmul_lines(rows, tokens, peaks, {"electra": name})))
    summary = train.model_summary(rows, tokens)
    print(train.format_summary(name, summary))
    out = []
    for row in rows:
        ours, peer = train.rates_of_row(row, tokens)
        out.append(dict(row, tokens_per_s=ours, hf_tokens_per_s=peer,
                        ratios=train.row_ratios(row["precision"], ours, peer) if ours else {},
                        mfu={p: train.mfu(row["flops_per_token"], ours, v)
                             for p, (_, v) in peaks.items()}))
    return {"model": name, "batch_size": FLAGS.train_batch_size, "seq_len": FLAGS.seq_len,
            "rows": out, "summary": summary}


def inference_result(peer, device, precisions, peaks):
    """Measures and prints the inference comparison: its JSON-able numbers."""
    from electra_tf.configs import get_config
    from electra_tf.flops import inference_flops

    model = f"ELECTRA-{FLAGS.size.capitalize()}"
    if peer is None:
        return {"model": model, "error": "the peer is not measured: torch sees no GPU"}
    print(f"\nInference, {model}, batch {FLAGS.infer_batch_size} x seq {FLAGS.seq_len} ...",
          flush=True)
    comparison = train.attempt(
        "inference", infer.compare_inference, peer, model=model, device=device,
        batch_size=FLAGS.infer_batch_size, seq_len=FLAGS.seq_len, precisions=precisions,
        num_runs=FLAGS.num_runs, warmup=FLAGS.warmup, seed=FLAGS.seed,
        threads=os.cpu_count() if device == "CPU" else None)
    if comparison is None:
        return {"model": model, "error": "failed"}
    print("\n".join(infer.format_comparison(comparison)))
    flops = inference_flops(get_config("electra", FLAGS.size), FLAGS.seq_len)
    per_token = flops / FLAGS.seq_len
    comparison["flops_per_token"] = per_token
    comparison["mfu"] = {side: {p: {peak: train.mfu(per_token, r["tokens_per_s"], v)
                                    for peak, (_, v) in peaks.items()}
                                for p, r in comparison[side].items()}
                         for side in ("ours", "hf")}
    for p in precisions:
        shares = {side: comparison["mfu"][side][p].get(p) for side in ("ours", "hf")}
        print(f"inference MFU {p} (against the {p} matmul rate): ours "
              f"{format_share(shares['ours'])}, transformers {format_share(shares['hf'])}")
    up = comparison["speedup"]
    print("ours / transformers, inference: " + "; ".join(
        f"{p} vs HF {p} {format_ratio(up.get(p))}" for p in precisions)
        + f"; best vs best {format_ratio(up['best'])} (ours {up['ours_best']}, HF "
        f"{up['hf_best']})")
    return comparison


if __name__ == "__main__":
    define_flags()
    app.run(main)
