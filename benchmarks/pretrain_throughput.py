"""Benchmark: pretraining step throughput on this CPU, against Hugging Face transformers.

Timed is one full pretraining step at the official small shapes (seq 128, vocab 30522,
batch --batch_size): for ELECTRA-Small and ALE-Small the generator forward, sampling
from its softmax at the masked positions, the discriminator forward on the corrupted
input, the losses (mlm + 50 * disc), the backward pass and a LAMB update with
global-norm clipping at 1.0; for BERT-Small the MLM model alone. Ours is
``PretrainingModel(build_pretrainer(config)).fit`` on a repeated synthetic batch (random
tokens, two segments, all 128 positions real, 19 = max_predictions_per_seq(0.15, 128)
masked), in variants fp32 (TF graph), xla (jit_compile), bf16 ("mixed_bfloat16") and
bf16_xla (fp16, "mixed_float16", is for GPUs); BERT and ALE run only the variant that
was fastest for ELECTRA. After --warmup_steps untimed steps (tracing, compiling:
"warm-up s"), --steps steps are timed from each step's start to its end.

The peer is transformers (PyTorch eager, CPU, one thread per core) running the same step,
in each precision of --hf_precisions: fp32, and bf16 under CPU autocast (the forward pass
and the losses under ``torch.autocast("cpu", dtype=torch.bfloat16)``, backward and
optimizer outside it, as PyTorch recommends). Its model: ElectraForMaskedLM (generator: 64
hidden, 1 head, FFN 256) + ElectraForPreTraining sharing one embedding module, the
generator's output layer tied to the word embeddings, Gumbel sampling under no_grad, torch
AdamW and clip_grad_norm_(1.0). As in ours and the original, the generator's MLM head runs
on the masked positions only (--hf_full_logits runs it on all 128, as
ElectraForMaskedLM.forward does). transformers has no factorized-embedding BERT
(BertConfig has no embedding_size), so BERT-Small's peer is ElectraForMaskedLM alone at
BERT-Small's shapes (the same architecture: factorized embedding, 12 x 256, tied MLM head);
it has no shared-layer ELECTRA either, so ALE-Small's peer is the ELECTRA-Small pair (same
FLOPs: sharing changes parameters only). The peer runs in its own process (TensorFlow never
imported there). In every row our steps alternate with the peer's, one step of each of its
precisions after each of ours, so drifts hit all alike; each row's ratios use the peer's
numbers from the same row.

Ratios, ours / the peer's tokens/s: per precision pair (our fp32 variants against the
peer's fp32, our bf16 variants against its bf16), and against the peer's best (its faster
precision). MFU = train_flops_per_step (electra_tf.flops, the original's accounting) per
token x tokens/s / a matmul rate measured in this run (2048 x 2048): the best fp32 one
(TensorFlow, NumPy or PyTorch) and the best bf16 one (TensorFlow or PyTorch); every row is
shown against both. Targets: ours' best >= 3.5x the peer's best, and the bf16 row at >= 60%
of the bf16 matmul rate.

Then each step's matmuls alone (benchmarks/matmul_floor.py: every product of the step
timed on its own at its shape) with the highest MFU they would leave, and the FLOPs of
those products per token against the accounting's, with the share of the rate the step
runs them at: the original counts the input embedding as a one-hot product and a
backward pass as one forward pass, 79.0 MFLOP per token against the products' 70.2 for
ELECTRA-Small and ALE-Small, 59.7 against 65.0 for BERT-Small.

"busy" is the CPU that other processes used during a row's timed window, in cores: on a
2-core machine anything above ~0.1 distorts the numbers, PyTorch's spinning OpenMP threads
far more than ours, so run on an otherwise idle machine.

  python benchmarks/pretrain_throughput.py [--batch_size=32] [--steps=5]
      [--warmup_steps=2] [--models=electra,bert,ale] [--variants=fp32,xla,bf16,bf16_xla]
      [--hf_precisions=fp32,bf16]
"""

import functools
import os
import sys
import time
from importlib import metadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
    torch_sync,
    verdict,
)

MODELS = ("electra", "bert", "ale")
NAMES = {"electra": "ELECTRA-Small", "bert": "BERT-Small", "ale": "ALE-Small"}
VARIANTS = ("fp32", "xla", "bf16", "bf16_xla", "fp16", "fp16_xla")
DEFAULT_VARIANTS = ("fp32", "xla", "bf16", "bf16_xla")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
SEQ_LEN = 128
MATMUL_SIZE = 2048
CLS, SEP, MASK = 101, 102, 103
TARGET_RATIO = 3.5  # ours' best / the peer's best, tokens/s
TARGET_MFU = 0.60  # the bf16 row's share of the bf16 matmul rate
FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined only when run as a script: benchmarks/gpu.py imports
    this module and defines its own)."""
    flags.DEFINE_integer("batch_size", 32, "Sequences per step.", lower_bound=1)
    flags.DEFINE_integer("steps", 5, "Timed steps per row (ours and the peer's each).",
                         lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 2,
                         "Untimed steps first (trace/compile, warm caches).", lower_bound=1)
    flags.DEFINE_integer("steps_per_execution", 1, "Keras steps_per_execution for ours.",
                         lower_bound=1)
    flags.DEFINE_list("models", list(MODELS), f"Models to run, of {', '.join(MODELS)}.")
    flags.DEFINE_list("variants", list(DEFAULT_VARIANTS),
                      f"Our variants for ELECTRA-Small, of {', '.join(VARIANTS)}.")
    flags.DEFINE_list("hf_precisions", ["fp32", "bf16"],
                      "The peer's precisions, of fp32, bf16 (CPU autocast); none: no peer.")
    flags.DEFINE_bool("hf_full_logits", False,
                      "Peer computes generator logits at all positions (HF's forward).")
    flags.DEFINE_integer("seed", 0, "Seed of the batch and the models.")


def precision_of(variant: str) -> str:
    """"fp32", "bf16" or "fp16": the precision of one of our variants."""
    return variant.split("_")[0] if variant.startswith(("bf16", "fp16")) else "fp32"


def synthetic_batch(batch_size, vocab_size, seed, seq_len=SEQ_LEN):
    """Full-length two-segment sequences (pretraining packs to the maximum length) with
    the ELECTRA masking: max_predictions_per_seq(0.15, seq_len) positions per row (19 at
    128), 85% of them [MASK], the rest kept."""
    from electra_tf.masking import max_predictions_per_seq

    rng = np.random.default_rng(seed)
    num_predictions = max_predictions_per_seq(0.15, seq_len)
    ids = rng.integers(1000, vocab_size, (batch_size, seq_len)).astype("int32")
    segment_ids = np.zeros((batch_size, seq_len), "int32")
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    for row in range(batch_size):
        split = int(rng.integers(seq_len // 4, 3 * seq_len // 4))
        ids[row, split] = SEP
        segment_ids[row, split + 1:] = 1
    special = np.isin(ids, [CLS, SEP])
    positions = np.stack([np.sort(rng.choice(np.flatnonzero(~special[row]), num_predictions,
                                             replace=False))
                          for row in range(batch_size)]).astype("int32")
    masked_lm_ids = np.take_along_axis(ids, positions, axis=1)
    masked = ids.copy()
    replace = rng.random(positions.shape) < 0.85
    np.put_along_axis(masked, positions, np.where(replace, MASK, masked_lm_ids), axis=1)
    return {
        "input_ids": masked,
        "input_mask": np.ones((batch_size, seq_len), "int32"),
        "segment_ids": segment_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": np.ones(positions.shape, "float32"),
    }


# ----------------------------------------------------------------------- matmul rates


def matmul_rate(matmul, size, repeats=10):
    """FLOP/s of a size x size matmul: best of 3 rounds of `repeats`, after one untimed
    call. Reading one element of the last product waits for the device (a GPU queues)."""
    float(matmul()[0, 0])  # thread pools, kernel selection, a GPU's start-up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = matmul()
        float(out[0, 0])
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size**3 / best


def matrices(size):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((size, size)).astype("float32") for _ in range(2)]


def tensorflow_rates(size=MATMUL_SIZE, device="CPU", precisions=("fp32", "bf16")):
    """{"tensorflow <precision>": FLOP/s} of size x size matmuls on `device`."""
    import tensorflow as tf

    dtypes = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
    rates = {}
    with tf.device(f"/{device}:0"):
        a, b = (tf.constant(m) for m in matrices(size))
        for precision in precisions:
            x, y = tf.cast(a, dtypes[precision]), tf.cast(b, dtypes[precision])
            rates[f"tensorflow {precision}"] = matmul_rate(
                lambda x=x, y=y: tf.linalg.matmul(x, y), size)
    return rates


def torch_rates(size, device, precisions):
    """{"torch <precision>": FLOP/s} of size x size matmuls (in the peer process)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    a, b = (torch.from_numpy(m).to(device) for m in matrices(size))
    return {f"torch {p}": matmul_rate(functools.partial(
        torch.mm, a.to(dtypes[p]), b.to(dtypes[p])), size) for p in precisions}


def best_peaks(rates):
    """{precision: (name, FLOP/s)}: the fastest matmul measured in each precision."""
    peaks = {}
    for name, value in rates.items():
        precision = name.split()[-1]
        if value and value > peaks.get(precision, (None, 0.0))[1]:
            peaks[precision] = (name, value)
    return peaks


# ------------------------------------------------------------------------------- ours


def prepare_ours(config, batch, variant, device="CPU", warmup_steps=2, steps_per_execution=1,
                 seed=0):
    """Builds, compiles and warms one TF variant on `device` ("CPU" or "GPU"): (run,
    warm-up seconds), where run() trains steps_per_execution steps and returns their
    seconds."""
    import keras
    import tensorflow as tf

    from electra_tf.modeling.models import build_pretrainer
    from electra_tf.optimization import DEFAULT_EXCLUDE, Lamb, WarmupPolynomialDecay
    from electra_tf.pretraining.objectives import PretrainingModel
    from electra_tf.training.precision import dtype_policy

    class StepClock(keras.callbacks.Callback):
        """First step's start to last step's end: fit's own set-up is not counted."""

        start = end = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.start is None:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # A GPU runs the step after the call has queued it: reading the loss to the
            # host waits for the step (on the CPU it is ready already).
            float(logs["loss"])
            self.end = time.perf_counter()

    spe = steps_per_execution
    keras.utils.clear_session(free_memory=True)
    placement = tf.device(f"/{device}:0")
    # Layers take the global policy when they are built: building inside the block
    # makes them mixed; the next variant is built under float32 again.
    with placement, dtype_policy(POLICIES[precision_of(variant)]):
        task = PretrainingModel(build_pretrainer(config, seed=seed))
        # The original's small-model schedule and LAMB settings; the learning rate does
        # not change the cost of a step. Under mixed_float16 Keras wraps the optimizer
        # in a LossScaleOptimizer.
        optimizer = Lamb(WarmupPolynomialDecay(5e-4, 1_000_000, warmup_steps=10_000),
                         weight_decay_rate=0.01, exclude_from_weight_decay=DEFAULT_EXCLUDE,
                         global_clipnorm=1.0)
        task.compile(optimizer=optimizer, jit_compile="xla" in variant,
                     steps_per_execution=spe)
        data = tf.data.Dataset.from_tensors(batch).repeat()
        start = time.perf_counter()
        task.fit(data, steps_per_epoch=-(-warmup_steps // spe) * spe, verbose=0,
                 shuffle=False)
        warmup_seconds = time.perf_counter() - start

    def run():
        clock = StepClock()
        with tf.device(f"/{device}:0"):
            task.fit(data, steps_per_epoch=spe, verbose=0, shuffle=False,
                     callbacks=[clock])
        return clock.end - clock.start

    return run, warmup_seconds


# ------------------------------------------------------------------------------ peer


def hf_configs(config):
    """transformers.ElectraConfig kwargs for `config`'s discriminator (or BERT) and its
    generator (None for BERT)."""
    def convert(c):
        return dict(vocab_size=c.vocab_size, embedding_size=c.embedding_size,
                    hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
                    num_attention_heads=c.num_attention_heads,
                    intermediate_size=c.intermediate_size, hidden_act=c.hidden_act,
                    hidden_dropout_prob=c.dropout_rate,
                    attention_probs_dropout_prob=c.dropout_rate,
                    max_position_embeddings=c.max_position_embeddings,
                    type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_epsilon)

    return convert(config), convert(config.generator_config()) if config.has_generator else None


def build_peer(disc_config, gen_config, batch, seed, full_logits, device="cpu",
               precision="fp32"):
    """transformers' training step for one batch on `device` ("cpu" or "cuda") at
    `precision` (fp32, or bf16 / fp16 autocast): a function that runs one step."""
    import torch
    import transformers

    torch.manual_seed(seed)
    if gen_config is None:  # BERT-Small: the MLM model alone
        gen, disc = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**disc_config)), None
        modules = [gen]
    else:
        gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**gen_config))
        disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(**disc_config))
        # Tied embeddings as in ELECTRA: one embedding module for both models.
        gen.electra.embeddings = disc.electra.embeddings
        modules = [gen, disc]
    # ...and the generator's output layer is the word-embedding matrix.
    gen.generator_lm_head.weight = gen.electra.embeddings.word_embeddings.weight
    for module in modules:
        module.to(device).train()  # moves parameters in place: the ties hold
    params = list({id(p): p for m in modules for p in m.parameters()}.values())
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range.
    scaler = torch.amp.GradScaler(device) if precision == "fp16" else None
    t = {k: torch.from_numpy(v).long().to(device) for k, v in batch.items()
         if k != "masked_lm_weights"}
    weights = torch.from_numpy(batch["masked_lm_weights"]).flatten().to(device)
    positions = t["masked_lm_positions"]
    inputs = dict(input_ids=t["input_ids"], attention_mask=t["input_mask"],
                  token_type_ids=t["segment_ids"])
    original = t["input_ids"].scatter(1, positions, t["masked_lm_ids"])
    mask = t["input_mask"].float()

    def gather(x):
        return x.gather(1, positions[..., None].expand(-1, -1, x.shape[-1]))

    def forward():
        if full_logits:  # ElectraForMaskedLM.forward: the head on every position
            logits = gather(gen(**inputs).logits)
        else:  # the head on the masked positions only, as ours and the original
            hidden = gather(gen.electra(**inputs).last_hidden_state)
            logits = gen.generator_lm_head(gen.generator_predictions(hidden))
        losses = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), t["masked_lm_ids"].flatten(), reduction="none")
        loss = (losses * weights).sum() / (weights.sum() + 1e-6)
        if disc is not None:
            with torch.no_grad():  # Gumbel-max sampling, no gradient through it
                uniform = torch.rand_like(logits)
                sampled = (logits - torch.log(-torch.log(uniform + 1e-9) + 1e-9)).argmax(-1)
                fake = t["input_ids"].scatter(1, positions, sampled)
                labels = (fake != original).float()
            rtd = disc(**dict(inputs, input_ids=fake)).logits
            disc_losses = torch.nn.functional.binary_cross_entropy_with_logits(
                rtd.float(), labels, reduction="none")
            loss = loss + 50.0 * (disc_losses * mask).sum() / (mask.sum() + 1e-6)
        return loss

    def step():
        with torch_autocast(device, precision):  # the forward pass and the losses only
            loss = forward()
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clipping sees the true gradients
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


def peer_handler(device):
    """The peer's answers to ("info",), ("peak", size, precisions), ("build", key, disc,
    gen, batch, precision, seed, warmup_steps, full_logits) -> warm-up seconds,
    ("step", key) -> seconds, ("matmuls", products, precision) -> seconds
    (matmul_floor.time_torch) and ("clear",) (frees the models)."""
    steps = {}

    def timed(step):
        start = time.perf_counter()
        step()
        torch_sync(device)
        return time.perf_counter() - start

    def handle(command):
        what, args = command[0], command[1:]
        if what == "info":
            return torch_info()
        if what == "peak":
            return torch_rates(args[0], device, args[1])
        if what == "build":
            key, disc_config, gen_config, batch, precision, seed, warmup, full_logits = args
            steps[key] = build_peer(disc_config, gen_config, batch, seed, full_logits,
                                    device, precision)
            return sum(timed(steps[key]) for _ in range(warmup))
        if what == "step":
            return timed(steps[args[0]])
        if what == "matmuls":
            return matmul_floor.time_torch(args[0], args[1], device)
        if what == "clear":
            steps.clear()
            if device == "cuda":
                import torch

                torch.cuda.empty_cache()
            return None
        raise ValueError(f"unknown peer command {what!r}")

    return handle


def _peer_server(conn, device, tf32):
    torch_setup(device, tf32)
    serve(conn, peer_handler(device))


class Peer(PeerProcess):
    """PyTorch / transformers training in its own process, on "cpu" or "cuda" (`tf32`:
    see peer_process.torch_setup)."""

    def __init__(self, device="cpu", tf32=None):
        super().__init__(_peer_server, device, tf32)
        self.device = device

    def info(self):
        return self.call("info")

    def peak(self, size, precisions):
        return self.call("peak", size, list(precisions))

    def build(self, key, config, batch, precision, seed=0, warmup_steps=2,
              full_logits=False):
        """Builds and warms the peer of `config` at `precision` under `key`: the warm-up
        seconds."""
        return self.call("build", key, *hf_configs(config), batch, precision, seed,
                         warmup_steps, full_logits)

    def step(self, key):
        return self.call("step", key)

    def matmuls(self, products, precision):
        """Seconds of `products` (matmul_floor) in torch at `precision`."""
        return self.call("matmuls", products, precision)

    def clear(self):
        return self.call("clear")


# -------------------------------------------------------------------------- measuring


def measure(run_ours, peer_steps, steps, steps_per_execution=1, pids=()):
    """Alternates our executions with as many steps of each peer in `peer_steps`
    ({precision: step function}; `run_ours` may be None), so slow drifts in the machine's
    state hit all alike: (ours s/step or None, {precision: peer s/step}, cores used by
    other processes meanwhile)."""
    spe = steps_per_execution
    rounds = -(-steps // spe)
    ours, theirs = 0.0, dict.fromkeys(peer_steps, 0.0)
    with CpuWatch(*pids) as watch:
        for _ in range(rounds):
            if run_ours is not None:
                ours += run_ours()
            for precision, step in peer_steps.items():
                theirs[precision] += sum(step() for _ in range(spe))
    done = rounds * spe
    return (ours / done if run_ours else None, {p: s / done for p, s in theirs.items()},
            watch.other_cores)


def attempt(what, fn, *args, **kwargs):
    """fn(*args, **kwargs), or None after printing the failure in one line."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # a failing variant is a result, not a crash
        print(f"  {what} FAILED: {one_line(e)}", flush=True)
        return None


def rates_of_row(row, tokens):
    """(ours tokens/s, {precision: peer tokens/s}) of a measured row."""
    return (tokens / row["step_s"] if row.get("step_s") else None,
            {p: tokens / s for p, s in row.get("hf_step_s", {}).items() if s})


def row_ratios(precision, ours, peer):
    """Ours / the peer in the same precision, and ours / the peer's best (its faster
    precision): {"same", "best", "peer_best"} (NaN where not measured)."""
    peer_best, best_rate = best_of(peer)
    return {"same": ratio(ours, peer.get(precision)), "best": ratio(ours, best_rate),
            "peer_best": peer_best}


def mfu(flops_per_token, tokens_per_s, peak):
    """Model FLOPs utilization: the model's FLOPs per second over a matmul rate."""
    if tokens_per_s is None or not peak:
        return float("nan")
    return flops_per_token * tokens_per_s / peak


def model_summary(rows, tokens):
    """Per precision pair and best vs best, from one model's rows: {"fp32": ...,
    "bf16": ..., "best": ...}, each {ours_variant, ours, peer_precision, peer, ratio},
    using the peer's numbers from the window of our chosen row."""
    measured = [(rates_of_row(row, tokens), row) for row in rows if row.get("step_s")]
    summary = {}
    for precision in ("fp32", "bf16", "fp16"):
        candidates = [(ours, peer, row) for (ours, peer), row in measured
                      if row["precision"] == precision and precision in peer]
        if candidates:
            ours, peer, row = max(candidates, key=lambda c: c[0])
            summary[precision] = {"ours_variant": row["variant"], "ours": ours,
                                  "peer_precision": precision, "peer": peer[precision],
                                  "ratio": ratio(ours, peer[precision])}
    if measured:
        (ours, peer), row = max(measured, key=lambda m: m[0][0])
        name, value = best_of(peer)
        summary["best"] = {"ours_variant": row["variant"], "ours": ours,
                           "peer_precision": name, "peer": value if name else None,
                           "ratio": ratio(ours, value)}
    return summary


def format_summary(name, summary):
    """One line: ours / the peer per precision pair and best vs best."""
    parts = []
    for key, label in (("fp32", "fp32 vs HF fp32"), ("bf16", "bf16 vs HF bf16"),
                       ("fp16", "fp16 vs HF fp16")):
        if key in summary:
            parts.append(f"{label} {format_ratio(summary[key]['ratio'])}")
    if "best" in summary:
        b = summary["best"]
        peer = (f"HF {b['peer_precision']} {b['peer']:,.0f}" if b["peer_precision"]
                else "HF not measured")
        parts.append(f"best vs best {format_ratio(b['ratio'])} (ours {b['ours_variant']} "
                     f"{b['ours']:,.0f} vs {peer} tokens/s)")
    return f"{name}, ours / HF tokens/s: " + ("; ".join(parts) or "not measured")


# ------------------------------------------------------------------------------- main


def main(argv):
    del argv
    hf_precisions = [] if FLAGS.hf_precisions == ["none"] else FLAGS.hf_precisions
    unknown = sorted(set(FLAGS.models) - set(MODELS)) + sorted(
        set(FLAGS.variants) - set(VARIANTS)) + sorted(set(hf_precisions) - {"fp32", "bf16"})
    models = [m for m in MODELS if m in FLAGS.models]
    variants = [v for v in VARIANTS if v in FLAGS.variants]
    if unknown or not models or not variants:
        # One line, no traceback, exit status 1 (absl's UsageError prints the whole doc).
        print(f"pretrain_throughput.py: error: unknown or empty --models/--variants/"
              f"--hf_precisions: {unknown}; allowed: models {', '.join(MODELS)}; variants "
              f"{', '.join(VARIANTS)}; hf_precisions fp32, bf16 or none", file=sys.stderr)
        sys.exit(1)
    started = time.perf_counter()
    peer = Peer() if hf_precisions else None  # before TensorFlow is imported
    try:
        rates = cpu_rates(peer)
        rows = measure_rows(models, variants, peer, hf_precisions,
                            batch_size=FLAGS.batch_size, steps=FLAGS.steps,
                            warmup_steps=FLAGS.warmup_steps,
                            steps_per_execution=FLAGS.steps_per_execution, seed=FLAGS.seed,
                            full_logits=FLAGS.hf_full_logits)
        onednn = (f"TensorFlow {matmul_floor.tensorflow_onednn_version() or 'none'}, torch "
                  + ((peer.info()["onednn"] or "none") if peer else "not measured"))
    finally:
        if peer is not None:
            peer.close()
    report(rows, rates, time.perf_counter() - started, onednn)


def cpu_rates(peer):
    """The CPU's matmul rates (TensorFlow fp32 / bf16, NumPy, and the peer's torch), printed
    with the CPU other processes used meanwhile: {name: FLOP/s}."""
    with CpuWatch(*([peer.pid] if peer else [])) as watch:
        rates = tensorflow_rates(MATMUL_SIZE)
        rates["numpy fp32"] = matmul_rate(functools.partial(np.matmul, *matrices(
            MATMUL_SIZE)), MATMUL_SIZE)
        if peer is not None:
            rates.update(attempt("torch matmul", peer.peak, MATMUL_SIZE, ["fp32", "bf16"])
                         or {})
    print(f"matmul {MATMUL_SIZE}x{MATMUL_SIZE} GFLOP/s: " + ", ".join(
        f"{k} {v / 1e9:.0f}" for k, v in rates.items())
        + f" (other processes meanwhile: {watch.other_cores:.2f} cores)", flush=True)
    return rates


def measure_rows(models, variants, peer, hf_precisions, *, device="CPU", size="small",
                 batch_size=32, seq_len=SEQ_LEN, steps=5, warmup_steps=2,
                 steps_per_execution=1, seed=0, full_logits=False):
    """Measures every row: a list of {model, variant, precision, warmup_s, step_s,
    hf_step_s: {precision: s}, busy, flops_per_token} (step_s None when it failed).
    `device` is ours ("CPU" or "GPU"); the peer's is its own. BERT and ALE run only the
    variant that was fastest for ELECTRA."""
    from electra_tf.configs import get_config
    from electra_tf.flops import train_flops_per_step

    hf_precisions = list(hf_precisions) if peer is not None else []
    pids = [peer.pid] if peer else []
    rows, built, best = [], {}, None
    for model in models:
        config = get_config(model, size)
        batch = synthetic_batch(batch_size, config.vocab_size, seed, seq_len)
        flops_per_token = train_flops_per_step(config, batch_size, seq_len) / (
            batch_size * seq_len)
        key = "bert" if model == "bert" else "electra"  # ALE's peer is ELECTRA's
        for precision in hf_precisions:
            if (key, precision) not in built:
                print(f"{model}: transformers {precision}: build, warm up ...", flush=True)
                built[key, precision] = attempt(
                    f"{model} transformers {precision}", peer.build, f"{key} {precision}",
                    config, batch, precision, seed, warmup_steps, full_logits)
        peer_steps = {p: functools.partial(peer.step, f"{key} {p}") for p in hf_precisions
                      if built.get((key, p)) is not None}
        for variant in variants if model == "electra" or best is None else [best]:
            print(f"{model}: {variant}: build, compile, warm up, time ...", flush=True)
            prepared = attempt(f"{model} {variant}", prepare_ours, config, batch, variant,
                               device, warmup_steps, steps_per_execution, seed)
            timed = prepared and attempt(f"{model} {variant}", measure, prepared[0],
                                         peer_steps, steps, steps_per_execution, pids)
            rows.append({"model": model, "variant": variant,
                         "precision": precision_of(variant),
                         "warmup_s": prepared[1] if prepared else None,
                         "step_s": timed[0] if timed else None,
                         "hf_step_s": timed[1] if timed else {},
                         "busy": timed[2] if timed else None,
                         "flops_per_token": flops_per_token})
            del prepared  # frees the Keras model before the next one is built
        add_matmul_floors([row for row in rows if row["model"] == model], config, batch,
                          list(peer_steps), peer, device, full_logits)
        if model == "electra":
            timed = [(row["step_s"], row["variant"]) for row in rows if row["step_s"]]
            best = min(timed)[1] if timed else None
    return rows


def add_matmul_floors(rows, config, batch, peer_precisions, peer, device="CPU",
                      full_logits=False):
    """Adds to each measured row the step's matmuls alone (benchmarks/matmul_floor.py):
    "matmul_s", ours in TensorFlow at the row's precision (the MLM logits in float32),
    "hf_matmul_s", the peer's in torch at each of its precisions (its MLM head on
    every position with `full_logits`), and "matmul_flops_per_token", the FLOPs of our
    step's products (forward and both backward) per token."""
    batch_size, seq_len = batch["input_ids"].shape
    masked = batch["masked_lm_positions"].size
    products = matmul_floor.pretraining_products(config, batch_size, seq_len, masked,
                                                 logits_fp32=True)
    peer_products = matmul_floor.pretraining_products(
        config, batch_size, seq_len, batch_size * seq_len if full_logits else masked)
    ours = {}
    theirs = {p: attempt(f"torch matmuls {p}", peer.matmuls, peer_products, p)
              for p in peer_precisions} if peer is not None else {}
    for row in rows:
        if not row.get("step_s"):
            continue
        precision = row["precision"]
        if precision not in ours:
            ours[precision] = attempt(f"matmuls {precision}", matmul_floor.time_tensorflow,
                                      products, precision, device)
        row["matmul_s"] = ours[precision]
        row["hf_matmul_s"] = {p: s for p, s in theirs.items() if s}
        row["matmul_flops_per_token"] = matmul_floor.flops(products) / (batch_size * seq_len)


def matmul_lines(rows, tokens, peaks, names=NAMES):
    """Per measured row: the step's matmuls alone against the step, ours and the peer's,
    and the highest MFU (against the row's precision's rate in `peaks`) that
    TensorFlow's matmuls at the step's own shapes leave, everything between them free;
    then the FLOPs of the step's products per token against the original's accounting
    (which counts the input embedding as a one-hot product and the backward pass as one
    forward pass), and the share of the rate the step runs those products at."""
    lines = []
    for row in rows:
        if not row.get("step_s") or not row.get("matmul_s"):
            continue
        precision = row["precision"]
        peak = peaks.get(precision, (None, None))[1]
        ceiling = mfu(row["flops_per_token"], tokens / row["matmul_s"], peak)
        peer = [f"HF {p} {s * 1000:,.0f} ms ({format_share(s / row['hf_step_s'][p])} of "
                f"its step)" for p, s in row.get("hf_matmul_s", {}).items()
                if row.get("hf_step_s", {}).get(p)]
        share = format_share(row["matmul_s"] / row["step_s"])
        lines.append(f"{names.get(row['model'], row['model'])} {row['variant']}: ours "
                     f"{row['matmul_s'] * 1000:,.0f} ms ({share} of our step; MFU "
                     f"{precision} at most {format_share(ceiling)})"
                     + "".join(f"; {part}" for part in peer))
        if row.get("matmul_flops_per_token"):
            executed = mfu(row["matmul_flops_per_token"], tokens / row["step_s"], peak)
            lines.append(f"  its products {row['matmul_flops_per_token'] / 1e6:,.1f} MFLOP "
                         f"per token (the original's accounting "
                         f"{row['flops_per_token'] / 1e6:,.1f}), run at "
                         f"{format_share(executed)} of the {precision} rate")
    return lines


def format_rows(rows, peaks, tokens, half="bf16", names=NAMES):
    """The table: one line per row of ours, the peer's tokens/s in fp32 and in `half`
    (bf16 or fp16) measured in the same window, ours / the peer (same precision, and its
    best), MFU against the fp32 and the `half` matmul rate."""
    fp32_peak = peaks.get("fp32", (None, None))[1]
    half_peak = peaks.get(half, (None, None))[1]
    header = (f"{'model':<14}{'variant':<10}{'tokens/s':>10}{'HF fp32':>9}{'HF ' + half:>9}"
              f"{'vs same':>9}{'vs best':>9}{'MFU fp32':>10}{'MFU ' + half:>10}{'step s':>8}"
              f"{'warm-up s':>11}{'busy':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        name = names.get(row["model"], row["model"])
        if not row.get("step_s"):
            lines.append(f"{name:<14}{row['variant']:<10}{'failed':>10}")
            continue
        ours, peer = rates_of_row(row, tokens)
        ratios = row_ratios(row["precision"], ours, peer)

        def peer_rate(p, peer=peer):
            return f"{peer[p]:,.0f}" if p in peer else "-"

        lines.append(
            f"{name:<14}{row['variant']:<10}{ours:>10,.0f}{peer_rate('fp32'):>9}"
            f"{peer_rate(half):>9}{format_ratio(ratios['same']):>9}"
            f"{format_ratio(ratios['best']):>9}"
            f"{format_share(mfu(row['flops_per_token'], ours, fp32_peak)):>10}"
            f"{format_share(mfu(row['flops_per_token'], ours, half_peak)):>10}"
            f"{row['step_s']:>8.2f}{row['warmup_s']:>11.1f}{row['busy']:>6.2f}")
    return lines


def notes(rows, full_logits=False) -> list[str]:
    """The lines under the table: what the peer ran (when it ran: without it, as with
    --hf_precisions=none, transformers and torch need not be installed) and what MFU and
    busy mean."""
    busiest = max([row["busy"] for row in rows if row.get("busy") is not None] or [0.0])
    if any(row.get("hf_step_s") for row in rows):
        peer = (f"HF: transformers {metadata.version('transformers')}, torch "
                f"{metadata.version('torch')}, {os.cpu_count()} threads, own process, fp32 "
                f"and bf16 (torch.autocast on CPU) as measured in the row's window, MLM "
                f"head on {'all' if full_logits else 'masked'} positions; BERT-Small's "
                "peer is ElectraForMaskedLM alone (HF BERT has no factorized embedding), "
                "ALE-Small's the ELECTRA-Small pair (HF has no shared-layer ELECTRA). vs "
                "same: ours / HF in the row's precision (fp32 variants vs HF fp32, bf16 vs "
                "HF bf16); vs best: ours / HF's faster precision.")
    else:
        peer = "HF: not measured (--hf_precisions=none)."
    return [peer, "MFU: train FLOPs per token (electra_tf.flops) x tokens/s / the fp32 and "
            "the bf16 matmul rate. busy = cores used by other processes meanwhile"
            + (f" (max {busiest:.2f}: timings perturbed)." if busiest > 0.1 else ".")]


def report(rows, rates, seconds, onednn):
    tokens = FLAGS.batch_size * SEQ_LEN
    peaks = best_peaks(rates)
    print(f"\n{os.cpu_count()} cores; batch {FLAGS.batch_size} x seq {SEQ_LEN}; "
          f"{FLAGS.warmup_steps} warm-up + {FLAGS.steps} timed steps; matmul rates: "
          + ", ".join(f"{p} {peaks[p][1] / 1e9:.0f} GFLOP/s ({peaks[p][0]})"
                      for p in ("fp32", "bf16") if p in peaks))
    print("\n".join(format_rows(rows, peaks, tokens)))
    print("\n".join(notes(rows, FLAGS.hf_full_logits)))
    print(f"Matmuls alone per step (oneDNN {onednn}): each product of the step, forward "
          "and both backward, timed on its own at its shape (benchmarks/matmul_floor.py); "
          "'at most' is the MFU if nothing between the matmuls took time:")
    print("\n".join("  " + line for line in matmul_lines(rows, tokens, peaks)))
    for model in dict.fromkeys(row["model"] for row in rows):
        summary = model_summary([r for r in rows if r["model"] == model], tokens)
        print(format_summary(NAMES[model], summary))
        if model == "electra":
            best_ratio = summary.get("best", {}).get("ratio")
            bf16 = [r for r in rows if r["model"] == model and r["variant"] == "bf16"
                    and r.get("step_s")]
            share = (mfu(bf16[0]["flops_per_token"], tokens / bf16[0]["step_s"],
                         peaks.get("bf16", (None, None))[1]) if bf16 else float("nan"))
            print(f"Targets (ELECTRA-Small): ours' best >= {TARGET_RATIO:g}x HF's best: "
                  f"{format_ratio(best_ratio)} -> {verdict(best_ratio, TARGET_RATIO)}; "
                  f"bf16 >= {TARGET_MFU:.0%} of the bf16 matmul rate: "
                  f"{format_share(share)} -> {verdict(share, TARGET_MFU)}")
    print(f"Total {seconds:.0f} s.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
