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
ELECTRA-Small (exported by electra_tf.checkpoints.save_hf; the largest fp32 output
difference is printed), at --hf_batch_size x --hf_seq_len, in each precision of
--precisions: fp32, and bf16 (ours: the same weights under Keras' "mixed_bfloat16" policy;
the peer: torch.autocast("cpu", dtype=torch.bfloat16)). Ours and HF alternate run by run,
every precision in each round, so drifts in the machine's load hit all alike. Printed: HF
ms / our ms (> 1: ours faster) per precision and best against best, ours bf16 against the
peer's best with the target 2x, and ELECTRA-Base ms / LSTM-2-256 ms from the table
against the target 20x (the paper's finding), each with whether it is met.

Last, the accuracy of our bf16 path on real text: --check_sentences Wikipedia sentences
(the wiki_leads sample), masked as in pretraining, through a pretrained ELECTRA
(--check_model; by default the demo's data/demo/models/electra_tiny when `make demo` has
made it, else ELECTRA-Small with random weights, said so in the output) in float32 and
under mixed_bfloat16: the largest differences of the generator's MLM logits, the
discriminator's hidden states and replaced-token logits, and the share of identical
predictions (electra_tf.baselines.latency.precision_agreement).

"other processes meanwhile" is the CPU they used during a measurement, in cores; on a 2-core
machine anything above ~0.1 perturbs the numbers.

The defaults (8 models, batch 128/256/384, seq 128, 3 runs after 1 warm-up) took 13 min
on an idle 2-core CPU, over half of it ELECTRA-Base. Sequence lengths up to 512 (the
encoders' position table) are supported (--seq_lengths=128,512), but slow here: by FLOP
count a batch at 512 costs about 4.3x one at 128 for Base (4x the tokens, attention
growing with the length), so the default table at 512 would take about an hour.

  python benchmarks/inference_latency.py [--models=ELECTRA-Small,LSTM-2-256]
      [--batch_sizes=128,256,384] [--seq_lengths=128] [--num_runs=3] [--warmup=1] [--xla]
      [--precisions=fp32,bf16] [--check_model=auto] [--check_sentences=256]
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
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import matmul_floor  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from peer_process import (  # noqa: E402
    CpuWatch,
    PeerProcess,
    best_of,
    format_ratio,
    format_share,
    one_line,
    ratio,
    serve,
    torch_autocast,
    torch_info,
    torch_setup,
    verdict,
)

HF_TARGET = 2.0  # ours bf16 / the peer's best, speed
LSTM_TARGET = 20.0
PRECISIONS = ("fp32", "bf16")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
DEMO_MODEL = os.path.join(ROOT, "data", "demo", "models", "electra_tiny")
FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined only when run as a script: benchmarks/gpu.py imports
    this module and defines its own)."""
    # No default value: the default rows are electra_tf.baselines.latency.DEFAULT_MODELS,
    # read after the peer has started (this module imports no TensorFlow at the top: the
    # spawned peer process re-imports it).
    flags.DEFINE_list("models", None,
                      "Rows of the table: ELECTRA-<Debug|Tiny|Small|Base|Large>, LSTM-<n>-<k>, "
                      "LSTM-<n>-<k>+emb<pretrained width>. Default: ELECTRA-Small, "
                      "ELECTRA-Base, LSTM-2-256, LSTM-4-256, LSTM-4-512 and the three LSTMs "
                      "+emb768.")
    flags.DEFINE_list("batch_sizes", ["128", "256", "384"],
                      "Columns: batch sizes (the paper's).")
    flags.DEFINE_list("seq_lengths", ["128"],
                      "One table per sequence length; at most 512 with an encoder in "
                      "--models (512 works but is slow on CPU).")
    flags.DEFINE_integer("num_runs", 3,
                         "Timed runs per cell (and per side and precision of the HF "
                         "comparison).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed runs before them.", lower_bound=0)
    flags.DEFINE_bool("xla", False, "Compile our inference functions with XLA (jit_compile).")
    flags.DEFINE_bool("gpu", True, "Also measure the table on GPU when TensorFlow sees one.")
    flags.DEFINE_bool("hf", True, "Compare our ELECTRA-Small with transformers' (PyTorch CPU).")
    flags.DEFINE_list("precisions", list(PRECISIONS),
                      "Precisions of the HF comparison, each for ours (Keras policy "
                      "float32 / mixed_bfloat16) and the peer (fp32 / bf16 CPU autocast).")
    flags.DEFINE_integer("hf_batch_size", 128, "Batch size of the HF comparison.",
                         lower_bound=1)
    flags.DEFINE_integer("hf_seq_len", 128, "Sequence length of the HF comparison and of "
                         "the bf16 accuracy check.", lower_bound=3, upper_bound=512)
    flags.DEFINE_string("check_model", "auto",
                        "Model of the bf16 accuracy check on real text: a pretrained "
                        "ELECTRA (a pretraining run's model dir, model.ckpt-N, "
                        "pretrainer.keras or a Hugging Face export); 'auto': the demo's "
                        "data/demo/models/electra_tiny when present, else 'random' "
                        "(ELECTRA-Small with random weights).")
    flags.DEFINE_integer("check_sentences", 256, "Wikipedia sentences of the bf16 accuracy "
                         "check (0: no check).", lower_bound=0)
    flags.DEFINE_string("output_json", None, "Also write every number measured to this file.")
    flags.DEFINE_integer("seed", 0, "Seed of the random weights and token ids.")


# ----------------------------------------------------------------------- the HF peer


def _to_host(tensor):
    """A torch tensor as numpy on the host; bfloat16 (which numpy lacks) as its bits."""
    import torch

    tensor = tensor.cpu()
    return (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy()


def peer_handler(device):
    """The peer's answers to ("info",), ("load", folder, threads, inputs, probe),
    ("run", precision) -> seconds (the call until the output is on the host) and
    ("matmuls", products, precision) -> seconds (matmul_floor.time_torch)."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # its weight-loading bar
    state = {}

    def handle(command):
        if command[0] == "info":
            return torch_info()
        if command[0] == "load":
            folder, threads, arrays, probe = command[1:]
            if threads:
                torch.set_num_threads(threads)
            model = transformers.ElectraModel.from_pretrained(folder).eval().to(device)
            state["model"] = model
            state["inputs"] = _torch_inputs(arrays, device)
            with torch.inference_mode():
                hidden = model(**_torch_inputs(probe, device)).last_hidden_state
            return {"hidden": _to_host(hidden), "threads": torch.get_num_threads(),
                    "attention": model.config._attn_implementation}
        if command[0] == "matmuls":
            return matmul_floor.time_torch(command[1], command[2], device)
        if command[0] == "run":
            start = time.perf_counter()
            with torch.inference_mode(), torch_autocast(device, command[1]):
                _to_host(state["model"](**state["inputs"]).last_hidden_state)
            return time.perf_counter() - start
        raise ValueError(f"unknown peer command {command[0]!r}")

    return handle


def _peer_server(conn, device, tf32):
    if device != "cpu":  # on the CPU, "load" sets as many threads as TensorFlow uses
        torch_setup(device, tf32)
    serve(conn, peer_handler(device))


def _torch_inputs(arrays, device="cpu"):
    import torch

    return {"input_ids": torch.from_numpy(arrays["input_ids"]).long().to(device),
            "attention_mask": torch.from_numpy(arrays["input_mask"]).long().to(device),
            "token_type_ids": torch.from_numpy(arrays["segment_ids"]).long().to(device)}


class Peer(PeerProcess):
    """transformers' ElectraModel in its own process, on "cpu" or "cuda" (`tf32`: see
    peer_process.torch_setup)."""

    def __init__(self, device="cpu", tf32=None):
        super().__init__(_peer_server, device, tf32)
        self.device = device

    def info(self):
        return self.call("info")

    def load(self, folder, threads, inputs, probe):
        return self.call("load", folder, threads, inputs, probe)

    def run(self, precision="fp32"):
        return self.call("run", precision)

    def matmuls(self, products, precision):
        return self.call("matmuls", products, precision)


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


def compare_inference(peer, *, model="ELECTRA-Small", device="CPU", batch_size=128,
                      seq_len=128, precisions=PRECISIONS, num_runs=3, warmup=1, xla=False,
                      seed=0, threads=None):
    """Our encoder against transformers' ElectraModel with the same weights, each in
    every precision (ours: the model rebuilt under the Keras policy; the peer: autocast),
    on `device` (ours; the peer's is its own), alternating run by run: a JSON-able dict
    of the run times, tokens/s, speed-ups (:func:`speedups`) and the fp32 outputs'
    largest difference."""
    import tensorflow as tf

    from electra_tf import checkpoints
    from electra_tf.baselines.latency import (
        InferenceTimer,
        parse_model_name,
        random_inputs,
        with_policy,
    )
    from electra_tf.configs import get_config

    spec = parse_model_name(model)
    placement = f"/{device}:0"
    with tf.device(placement):
        base = spec.build()
        timers = {p: InferenceTimer(base if p == "fp32" else with_policy(base, POLICIES[p]),
                                    batch_size, seq_len, xla, seed) for p in precisions}
        probe = random_inputs(spec.input_names, 2, 16, seed=seed + 1)
        probe["input_mask"][1, 9:] = 0  # one padded row: the mask must mean the same
        mine = base(probe, training=False)["sequence_output"].numpy()
    inputs = {k: v.numpy() for k, v in timers[precisions[0]].inputs.items()}
    with tempfile.TemporaryDirectory(prefix="latency-hf-") as folder:
        checkpoints.save_hf(base, os.path.join(folder, "hf"))
        loaded = peer.load(os.path.join(folder, "hf"), threads, inputs, probe)
    real = probe["input_mask"].astype(bool)
    max_diff = float(np.abs(mine - loaded["hidden"])[real].max())
    print(f"HF comparison: same weights, largest |fp32 hidden state difference| "
          f"{max_diff:.1e}; HF attention '{loaded['attention']}', {loaded['threads']} torch "
          f"threads", flush=True)
    ours_s = {p: [] for p in precisions}
    theirs_s = {p: [] for p in precisions}
    with CpuWatch(peer.pid) as watch, tf.device(placement):
        for _ in range(warmup):
            for p in precisions:
                timers[p].run()
                peer.run(p)
        for _ in range(num_runs):
            for p in precisions:
                ours_s[p].append(timers[p].run())
                theirs_s[p].append(peer.run(p))
    tokens = batch_size * seq_len

    def side(seconds):
        runs_ms = [1000 * s for s in seconds]
        mean = float(np.mean(runs_ms))
        return {"runs_ms": runs_ms, "mean_ms": mean, "tokens_per_s": tokens / mean * 1000}

    ours = {p: side(v) for p, v in ours_s.items()}
    theirs = {p: side(v) for p, v in theirs_s.items()}
    return {"model": spec.name, "device": device, "batch_size": batch_size,
            "seq_len": seq_len, "precisions": list(precisions), "num_runs": num_runs,
            "warmup": warmup, "xla": xla, "ours": ours, "hf": theirs,
            "speedup": speedups({p: v["mean_ms"] for p, v in ours.items()},
                                {p: v["mean_ms"] for p, v in theirs.items()}),
            "matmuls": matmul_floors(peer, get_config("electra", spec.size), batch_size,
                                     seq_len, precisions, device),
            "max_abs_diff": max_diff, "hf_attention": loaded["attention"],
            "torch_threads": loaded["threads"], "busy": watch.other_cores}


def matmul_floors(peer, config, batch_size, seq_len, precisions, device="CPU"):
    """The encoder's matmuls alone (benchmarks/matmul_floor.py: each product timed on
    its own at its shape), ms per batch: {"ours": {precision: ms}, "hf": {...}}, ours in
    TensorFlow on `device`, the peer's in torch on its own."""
    products = matmul_floor.inference_products(config, batch_size, seq_len)
    return {"ours": {p: 1000 * matmul_floor.time_tensorflow(products, p, device)
                     for p in precisions},
            "hf": {p: 1000 * peer.matmuls(products, p) for p in precisions}}


def speedups(ours_ms, hf_ms):
    """HF ms / our ms (> 1: ours faster) per precision measured by both, "best" (each
    side's fastest precision, named in "ours_best" / "hf_best") and "bf16_vs_hf_best"
    (ours bf16 against the peer's fastest); NaN where not measured."""
    ours_best, ours_fastest = best_of(ours_ms, lower_is_better=True)
    hf_best, hf_fastest = best_of(hf_ms, lower_is_better=True)
    result = {p: ratio(hf_ms[p], ours_ms[p]) for p in ours_ms if p in hf_ms}
    result.update(best=ratio(hf_fastest, ours_fastest), ours_best=ours_best,
                  hf_best=hf_best, bf16_vs_hf_best=ratio(hf_fastest, ours_ms.get("bf16")))
    return result


def format_comparison(result, peer_name="transformers"):
    """The comparison as a small table: ms per batch and tokens/s of each side per
    precision, HF ms / our ms, and the best of each side."""
    up = result["speedup"]
    lines = [f"{result['model']} inference on {result['device']}, batch "
             f"{result['batch_size']} x seq {result['seq_len']}, mean of "
             f"{result['num_runs']} runs after {result['warmup']} warm-up, ours and "
             f"{peer_name} alternating (other processes meanwhile: {result['busy']:.2f} "
             f"cores):",
             f"{'precision':<11}{'ours ms':>16}{'HF ms':>16}{'ours tokens/s':>15}"
             f"{'HF tokens/s':>13}{'HF ms / ours ms':>17}"]
    for p in result["precisions"]:
        ours, hf = result["ours"][p], result["hf"][p]
        lines.append(f"{p:<11}{ours['mean_ms']:>16,.1f}{hf['mean_ms']:>16,.1f}"
                     f"{ours['tokens_per_s']:>15,.0f}{hf['tokens_per_s']:>13,.0f}"
                     f"{format_ratio(up.get(p)):>17}")
    if up["ours_best"] and up["hf_best"]:
        ours, hf = result["ours"][up["ours_best"]], result["hf"][up["hf_best"]]
        lines.append(f"{'best':<11}{ours['mean_ms']:>9,.1f} ({up['ours_best']})"
                     f"{hf['mean_ms']:>9,.1f} ({up['hf_best']}){ours['tokens_per_s']:>15,.0f}"
                     f"{hf['tokens_per_s']:>13,.0f}{format_ratio(up['best']):>17}")
    floors = result.get("matmuls")
    for p in result["precisions"] if floors else ():
        ours, hf = floors["ours"][p], floors["hf"][p]
        lines.append(f"matmuls alone, {p}: ours {ours:,.1f} ms "
                     f"({format_share(ours / result['ours'][p]['mean_ms'])} of the pass), HF "
                     f"{hf:,.1f} ms ({format_share(hf / result['hf'][p]['mean_ms'])})")
    return lines


def target_bound(result, target=HF_TARGET):
    """(the pass time in ms that `target` x the peer's best means, the share of it that
    our bf16 matmuls alone take), NaN where not measured."""
    up, floors = result["speedup"], result.get("matmuls") or {}
    allowed = (result["hf"][up["hf_best"]]["mean_ms"] / target if up["hf_best"]
               else float("nan"))
    return allowed, ratio(floors.get("ours", {}).get("bf16"), allowed)


# ------------------------------------------------------- bf16 accuracy on real text


def real_sentences(count, per_document=2, min_words=5):
    """`count` sentences of the Wikipedia leads sample (data_prep.samples), at most
    `per_document` from each lead and of at least `min_words` words."""
    from data_prep import readers, samples

    sentences = []
    for document in readers.read_plain_text(samples.path("wiki_leads")):
        taken = [s for s in document.sentences if len(s.split()) >= min_words]
        sentences += taken[:per_document]
        if len(sentences) >= count:
            return sentences[:count]
    return sentences


def check_precision(model_path, count, seq_len, seed=0):
    """Our bf16 path against our fp32 path on `count` real sentences, with the
    pretrained ELECTRA at `model_path` ("random": ELECTRA-Small with random weights):
    electra_tf.baselines.latency.precision_agreement's dict plus the model's name and
    whether it is trained."""
    from data_prep import samples
    from electra_tf.baselines import latency
    from electra_tf.configs import get_config
    from electra_tf.modeling import build_pretrainer
    from electra_tf.pretraining.warm_start import load_source, source_vocab_file
    from electra_tf.tokenization import WordPieceTokenizer

    if model_path == "random":
        pretrainer = build_pretrainer(get_config("electra", "small"), seed=seed)
        vocab = samples.path("vocab")
    else:
        pretrainer = load_source(model_path)
        vocab = source_vocab_file(model_path) or samples.path("vocab")
    tokenizer = WordPieceTokenizer(vocab)
    features = latency.masked_sentences(
        tokenizer.tokenize_each(real_sentences(count)), tokenizer.special,
        pretrainer.model_config.vocab_size, seq_len, seed)
    result = latency.precision_agreement(pretrainer, features, POLICIES["bf16"], seed=seed)
    config = pretrainer.model_config
    result.update(model="ELECTRA-Small, random weights" if model_path == "random" else
                  os.path.relpath(model_path) if not model_path.startswith("gs://")
                  else model_path, trained=model_path != "random",
                  architecture=f"{config.model_type} {config.num_hidden_layers} x "
                  f"{config.hidden_size}")
    return result


def format_check(result):
    """The accuracy check in a few lines."""
    policy = result["policy"]
    trained = ("pretrained" if result["trained"] else
               "RANDOM weights: the agreement below is that of a random model, not of "
               "trained predictions")
    lines = [f"bf16 accuracy on real text: ours {policy} vs ours float32, {result['model']} "
             f"({result['architecture']}; {trained}); {result['sentences']:,} Wikipedia "
             f"sentences, {result['tokens']:,} tokens, {result['masked']:,} masked:"]
    for key, what in (("mlm", "generator MLM logits at the masked positions"),
                      ("rtd", "discriminator replaced-token logits on the generator's "
                              "corruption")):
        r = result[key]
        lines.append(f"  {what}: max |diff| {r['max_abs_diff']:.3g} (largest |logit| "
                     f"{r['max_abs']:.3g}); identical predictions {r['agreement']:.2%}; "
                     f"accuracy fp32 {r['accuracy']['float32']:.2%}, bf16 "
                     f"{r['accuracy'][policy]:.2%}")
    h = result["hidden"]
    lines.append(f"  discriminator hidden states: max |diff| {h['max_abs_diff']:.3g} "
                 f"(largest |value| {h['max_abs']:.3g})")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    batch_sizes = _int_list(FLAGS.batch_sizes, "batch_sizes")
    seq_lengths = _int_list(FLAGS.seq_lengths, "seq_lengths")
    unknown = [p for p in FLAGS.precisions if p not in PRECISIONS]
    if unknown or not FLAGS.precisions:
        _fail(f"--precisions={','.join(FLAGS.precisions)}: allowed: "
              f"{', '.join(PRECISIONS)}")
    check_model = FLAGS.check_model
    if check_model == "auto":
        check_model = DEMO_MODEL if os.path.isdir(DEMO_MODEL) else "random"
    elif check_model != "random" and not (check_model.startswith("gs://")
                                          or os.path.exists(check_model)):
        _fail(f"--check_model={check_model}: no such file or folder (a pretrained "
              f"ELECTRA, 'auto' or 'random')")
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
    if FLAGS.check_sentences:
        print(f"\nbf16 accuracy check on {FLAGS.check_sentences} Wikipedia sentences "
              f"({check_model}) ...", flush=True)
        try:
            result["bf16_check"] = check_precision(check_model, FLAGS.check_sentences,
                                                   FLAGS.hf_seq_len, FLAGS.seed)
            print("\n".join(format_check(result["bf16_check"])))
        except Exception as e:  # the timings above stand; say why the check did not run
            print(f"bf16 accuracy check FAILED: {one_line(e)}")
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
                  "num_runs", "warmup", "xla", "precisions", "hf_batch_size", "hf_seq_len",
                  "check_model", "check_sentences", "seed")},
              "versions": {p: metadata.version(p) for p in (
                  "tensorflow", "keras", "torch", "transformers")}}

    # Target 2: the paper's finding, from the CPU table(s).
    lstm_ratios = {}
    for table in tables:
        if table["device"] != "CPU":
            continue
        for batch in batch_sizes:
            ratio_ = latency.latency_ratio(table, "ELECTRA-Base", "LSTM-2-256", batch)
            lstm_ratios[f"seq {table['seq_len']} batch {batch}"] = ratio_
    measured = [r for r in lstm_ratios.values() if not math.isnan(r)]
    worst = min(measured) if measured else math.nan
    result["base_over_lstm_2_256"] = {k: None if math.isnan(v) else v
                                      for k, v in lstm_ratios.items()}

    if peer is not None:
        result["onednn"] = {"tensorflow": matmul_floor.tensorflow_onednn_version(),
                            "torch": peer.info()["onednn"]}
        onednn = (f"TensorFlow {result['onednn']['tensorflow'] or 'none'}, torch "
                  f"{result['onednn']['torch'] or 'none'}")
        print(f"HF comparison: ELECTRA-Small, batch {FLAGS.hf_batch_size} x seq "
              f"{FLAGS.hf_seq_len}, {', '.join(FLAGS.precisions)}, ours and transformers "
              f"alternating ...", flush=True)
        hf = compare_inference(peer, batch_size=FLAGS.hf_batch_size, seq_len=FLAGS.hf_seq_len,
                               precisions=FLAGS.precisions, num_runs=FLAGS.num_runs,
                               warmup=FLAGS.warmup, xla=FLAGS.xla, seed=FLAGS.seed,
                               threads=threads)
        result["hf_comparison"] = hf
        print("\n".join(format_comparison(hf)))
        print(f"HF: transformers {metadata.version('transformers')}, torch "
              f"{metadata.version('torch')}, CPU, own process, eager, "
              f"torch.inference_mode; bf16: torch.autocast('cpu', dtype=torch.bfloat16). "
              f"Ours bf16: the same weights under Keras' mixed_bfloat16 policy.")
        print("matmuls alone: each product of the encoder (fused query/key/value, the "
              "attention's two batched products, the output and feed-forward denses) timed "
              f"on its own at its shape (benchmarks/matmul_floor.py); oneDNN {onednn}.")
        up = hf["speedup"]
        allowed, share = target_bound(hf)
        print(f"Target 1: ours bf16 >= {HF_TARGET:g}x faster than HF's best "
              f"({up['hf_best']}): {format_ratio(up['bf16_vs_hf_best'])} -> "
              f"{verdict(up['bf16_vs_hf_best'], HF_TARGET)}; that is {allowed:,.0f} ms a "
              f"batch, and our bf16 matmuls alone take {format_share(share)} of it")
    else:
        print(f"Target 1: ours bf16 >= {HF_TARGET:g}x faster than HF's best: not measured "
              f"(--nohf)")
    print(f"Target 2: ELECTRA-Base latency / LSTM-2-256 latency >= {LSTM_TARGET:g}x (CPU): "
          + (", ".join(f"{k}: {v:.1f}x" for k, v in lstm_ratios.items()
                       if not math.isnan(v)) or "needs both models in --models")
          + f" -> {verdict(worst, LSTM_TARGET)}"
          + (" (at every batch size)" if len(measured) > 1 and worst >= LSTM_TARGET else ""))
    return result


if __name__ == "__main__":
    define_flags()
    app.run(main)
