"""Benchmark: pretraining step throughput on this CPU, against Hugging Face transformers.

Timed is one full pretraining step at the official small shapes (seq 128, vocab 30522,
batch --batch_size): for ELECTRA-Small and ALE-Small the generator forward, Gumbel sampling
at the masked positions, the discriminator forward on the corrupted input, the losses
(mlm + 50 * disc), the backward pass and a LAMB update with global-norm clipping at 1.0;
for BERT-Small the MLM model alone. Ours is ``PretrainingModel(build_pretrainer(config))``
``.fit`` on a repeated synthetic batch (random tokens, two segments, all 128 positions real,
19 = max_predictions_per_seq(0.15, 128) masked), in variants fp32 (TF graph), xla
(jit_compile), bf16 ("mixed_bfloat16") and bf16_xla; BERT and ALE run only the variant
that was fastest for ELECTRA. After --warmup_steps untimed steps (tracing, compiling:
"warm-up s"), --steps steps are timed from each step's start to its end.

The peer is transformers (PyTorch eager, CPU, one thread per core) running the same step:
ElectraForMaskedLM (generator: 64 hidden, 1 head, FFN 256) + ElectraForPreTraining sharing
one embedding module, the generator's output layer tied to the word embeddings, Gumbel
sampling under no_grad, torch AdamW and clip_grad_norm_(1.0). As in ours and the original,
the generator's MLM head runs on the masked positions only (--hf_full_logits runs it on all
128, as ElectraForMaskedLM.forward does). transformers has no factorized-embedding BERT
(BertConfig has no embedding_size), so BERT-Small's peer is ElectraForMaskedLM alone at
BERT-Small's shapes (the same architecture: factorized embedding, 12 x 256, tied MLM head);
it has no shared-layer ELECTRA either, so ALE-Small's peer is the ELECTRA-Small pair (same
FLOPs: sharing changes parameters only). The peer runs in its own process (TensorFlow never
imported there), and its steps alternate with ours, so drifts hit both alike.

MFU = train_flops_per_step (electra_tf.flops, the original's accounting) per token x
tokens/s / peak, the peak being the best fp32 2048x2048 matmul rate measured in this run
(TensorFlow, NumPy or PyTorch); bf16 rows are divided by the fp32 peak too (the bf16 matmul
rate is printed for reference). The targets: >= 3.5x HF tokens/s and >= 65% MFU.

"busy" is the CPU that other processes used during a row's timed window, in cores: on a
2-core machine anything above ~0.1 distorts the numbers, PyTorch's spinning OpenMP threads
far more than ours, so run on an otherwise idle machine.

  python benchmarks/pretrain_throughput.py [--batch_size=32] [--steps=5]
      [--warmup_steps=2] [--models=electra,bert,ale] [--variants=fp32,xla,bf16,bf16_xla]
"""

import functools
import os
import sys
import time
from importlib import metadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from peer_process import CpuWatch, PeerProcess, one_line, serve  # noqa: E402

MODELS = ("electra", "bert", "ale")
VARIANTS = ("fp32", "xla", "bf16", "bf16_xla")
SEQ_LEN = 128
CLS, SEP, MASK = 101, 102, 103

flags.DEFINE_integer("batch_size", 32, "Sequences per step.", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Timed steps per row (ours and HF each).",
                     lower_bound=1)
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first (trace/compile, warm caches).",
                     lower_bound=1)
flags.DEFINE_integer("steps_per_execution", 1, "Keras steps_per_execution for ours.",
                     lower_bound=1)
flags.DEFINE_list("models", list(MODELS), f"Models to run, of {', '.join(MODELS)}.")
flags.DEFINE_list("variants", list(VARIANTS),
                  f"Our variants for ELECTRA-Small, of {', '.join(VARIANTS)}.")
flags.DEFINE_bool("hf_full_logits", False,
                  "Peer computes generator logits at all positions (HF's forward).")
flags.DEFINE_integer("seed", 0, "Seed of the batch and the models.")
FLAGS = flags.FLAGS


def synthetic_batch(batch_size, vocab_size, seed):
    """Full-length two-segment sequences (pretraining packs to the maximum length) with
    the ELECTRA masking: max_predictions_per_seq(0.15, 128) = 19 positions per row, 85%
    of them [MASK], the rest kept."""
    from electra_tf.masking import max_predictions_per_seq

    rng = np.random.default_rng(seed)
    num_predictions = max_predictions_per_seq(0.15, SEQ_LEN)
    ids = rng.integers(1000, vocab_size, (batch_size, SEQ_LEN)).astype("int32")
    segment_ids = np.zeros((batch_size, SEQ_LEN), "int32")
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    for row in range(batch_size):
        split = int(rng.integers(SEQ_LEN // 4, 3 * SEQ_LEN // 4))
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
        "input_mask": np.ones((batch_size, SEQ_LEN), "int32"),
        "segment_ids": segment_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": np.ones(positions.shape, "float32"),
    }


def _matmul_rate(matmul):
    """FLOP/s of a 2048x2048 matmul: best of 3 rounds of 10, after one untimed call."""
    matmul()  # thread pools, kernel selection
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10):
            out = matmul()
        float(out[0, 0])  # eager CPU ops are done when they return; cheap anyway
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 2048**3 / best


def _matrices():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2048, 2048)).astype("float32") for _ in range(2)]


def measure_peak():
    """{name: FLOP/s} for TensorFlow fp32 and bf16 and NumPy fp32 matmuls."""
    import tensorflow as tf

    a, b = _matrices()
    ta, tb = tf.constant(a), tf.constant(b)
    ha, hb = tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)
    return {"tensorflow fp32": _matmul_rate(lambda: tf.linalg.matmul(ta, tb)),
            "numpy fp32": _matmul_rate(lambda: a @ b),
            "tensorflow bf16": _matmul_rate(lambda: tf.linalg.matmul(ha, hb))}


def prepare_ours(config, batch, variant):
    """Builds, compiles and warms one TF variant: (run, warm-up seconds), where run()
    trains steps_per_execution steps and returns their seconds."""
    import keras
    import tensorflow as tf

    from electra_tf.modeling.models import build_pretrainer
    from electra_tf.optimization import DEFAULT_EXCLUDE, Lamb, WarmupPolynomialDecay
    from electra_tf.pretraining.objectives import PretrainingModel

    class StepClock(keras.callbacks.Callback):
        """First step's start to last step's end: fit's own set-up is not counted."""

        start = end = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.start is None:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.end = time.perf_counter()

    spe = FLAGS.steps_per_execution
    keras.utils.clear_session(free_memory=True)
    # Layers take the global policy when they are built; it is reset afterwards so the
    # next variant runs in float32.
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if "bf16" in variant
                                            else "float32")
    try:
        task = PretrainingModel(build_pretrainer(config, seed=FLAGS.seed))
        # The original's small-model schedule and LAMB settings; the learning rate does
        # not change the cost of a step.
        optimizer = Lamb(WarmupPolynomialDecay(5e-4, 1_000_000, warmup_steps=10_000),
                         weight_decay_rate=0.01, exclude_from_weight_decay=DEFAULT_EXCLUDE,
                         global_clipnorm=1.0)
        task.compile(optimizer=optimizer, jit_compile="xla" in variant,
                     steps_per_execution=spe)
        data = tf.data.Dataset.from_tensors(batch).repeat()
        start = time.perf_counter()
        task.fit(data, steps_per_epoch=-(-FLAGS.warmup_steps // spe) * spe, verbose=0,
                 shuffle=False)
        warmup_seconds = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy("float32")

    def run():
        clock = StepClock()
        task.fit(data, steps_per_epoch=spe, verbose=0, shuffle=False, callbacks=[clock])
        return clock.end - clock.start

    return run, warmup_seconds


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


def build_peer(disc_config, gen_config, batch, seed, full_logits):
    """transformers' training step for one batch: a function that runs one step."""
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
    params = list({id(p): p for m in modules for p in m.parameters()}.values())
    for module in modules:
        module.train()
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
    t = {k: torch.from_numpy(v).long() for k, v in batch.items() if k != "masked_lm_weights"}
    weights = torch.from_numpy(batch["masked_lm_weights"]).flatten()
    positions = t["masked_lm_positions"]
    inputs = dict(input_ids=t["input_ids"], attention_mask=t["input_mask"],
                  token_type_ids=t["segment_ids"])
    original = t["input_ids"].scatter(1, positions, t["masked_lm_ids"])
    mask = t["input_mask"].float()

    def gather(x):
        return x.gather(1, positions[..., None].expand(-1, -1, x.shape[-1]))

    def step():
        if full_logits:  # ElectraForMaskedLM.forward: the head on every position
            logits = gather(gen(**inputs).logits)
        else:  # the head on the masked positions only, as ours and the original
            hidden = gather(gen.electra(**inputs).last_hidden_state)
            logits = gen.generator_lm_head(gen.generator_predictions(hidden))
        losses = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), t["masked_lm_ids"].flatten(), reduction="none")
        loss = (losses * weights).sum() / (weights.sum() + 1e-6)
        if disc is not None:
            with torch.no_grad():  # Gumbel-max sampling, no gradient through it
                uniform = torch.rand_like(logits)
                sampled = (logits - torch.log(-torch.log(uniform + 1e-9) + 1e-9)).argmax(-1)
                fake = t["input_ids"].scatter(1, positions, sampled)
                labels = (fake != original).float()
            rtd = disc(**dict(inputs, input_ids=fake)).logits
            disc_losses = torch.nn.functional.binary_cross_entropy_with_logits(
                rtd, labels, reduction="none")
            loss = loss + 50.0 * (disc_losses * mask).sum() / (mask.sum() + 1e-6)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _peer_server(conn, seed, warmup_steps, full_logits):
    """The peer process: answers ("peak",), ("build", key, disc, gen, batch) and
    ("step", key)."""
    import torch

    torch.set_num_threads(os.cpu_count())
    steps = {}

    def handle(command):
        if command[0] == "peak":
            return _matmul_rate(functools.partial(
                torch.mm, *(torch.from_numpy(m) for m in _matrices())))
        if command[0] == "build":
            key, disc_config, gen_config, batch = command[1:]
            steps[key] = build_peer(disc_config, gen_config, batch, seed, full_logits)
            start = time.perf_counter()
            for _ in range(warmup_steps):
                steps[key]()
            return time.perf_counter() - start
        start = time.perf_counter()
        steps[command[1]]()
        return time.perf_counter() - start

    serve(conn, handle)


class Peer(PeerProcess):
    """PyTorch / transformers in its own process."""

    def __init__(self):
        super().__init__(_peer_server, FLAGS.seed, FLAGS.warmup_steps, FLAGS.hf_full_logits)

    def peak(self):
        return self.call("peak")

    def build(self, key, config, batch):
        """Builds and warms the peer of `config` under `key`: the warm-up seconds."""
        return self.call("build", key, *hf_configs(config), batch)

    def step(self, key):
        return self.call("step", key)


def measure(run_ours, peer_step, pids):
    """Alternates our executions with as many peer steps (either may be None), so slow
    drifts in the machine's state hit both alike: (ours s/step, peer s/step, cores used
    by other processes meanwhile)."""
    spe = FLAGS.steps_per_execution
    rounds = -(-FLAGS.steps // spe)
    ours = theirs = 0.0
    with CpuWatch(*pids) as watch:
        for _ in range(rounds):
            if run_ours is not None:
                ours += run_ours()
            if peer_step is not None:
                theirs += sum(peer_step() for _ in range(spe))
    steps = rounds * spe
    return (ours / steps if run_ours else None, theirs / steps if peer_step else None,
            watch.other_cores)


def _attempt(what, fn, *args):
    """fn(*args), or None after printing the failure in one line."""
    try:
        return fn(*args)
    except Exception as e:  # a failing variant is a result, not a crash
        print(f"  {what} FAILED: {one_line(e)}", flush=True)
        return None


NAMES = {"electra": "ELECTRA-Small", "bert": "BERT-Small", "ale": "ALE-Small"}


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.models) - set(MODELS)) + sorted(set(FLAGS.variants)
                                                               - set(VARIANTS))
    models = [m for m in MODELS if m in FLAGS.models]
    variants = [v for v in VARIANTS if v in FLAGS.variants]
    if unknown or not models or not variants:
        raise app.UsageError(f"unknown or empty --models/--variants: {unknown}")
    started = time.perf_counter()
    peer = Peer()  # started first: it must not inherit anything from TensorFlow
    try:
        rows, peaks = run(models, variants, peer)
    finally:
        peer.close()
    report(rows, peaks, time.perf_counter() - started)


def run(models, variants, peer):
    """Measures everything: (rows, fp32 peak FLOP/s, a line about the peaks)."""
    from electra_tf.configs import get_config
    from electra_tf.flops import train_flops_per_step

    with CpuWatch(peer.pid) as watch:
        peaks = measure_peak()
        torch_peak = _attempt("torch matmul", peer.peak)
        if torch_peak:
            peaks["torch fp32"] = torch_peak
    print("matmul 2048x2048 GFLOP/s: " + ", ".join(f"{k} {v / 1e9:.0f}"
                                                   for k, v in peaks.items())
          + f" (other processes meanwhile: {watch.other_cores:.2f} cores)", flush=True)

    tokens = FLAGS.batch_size * SEQ_LEN
    rows, built, best = [], {}, None
    for model in models:
        config = get_config(model, "small")
        batch = synthetic_batch(FLAGS.batch_size, config.vocab_size, FLAGS.seed)
        flops_per_token = train_flops_per_step(config, FLAGS.batch_size, SEQ_LEN) / tokens
        key = "bert" if model == "bert" else "electra"  # ALE's peer is ELECTRA's
        if key not in built:
            print(f"{model}: transformers: build, warm up ...", flush=True)
            built[key] = _attempt(f"{model} transformers", peer.build, key, config, batch)
        peer_step = (lambda key=key: peer.step(key)) if built[key] is not None else None
        for variant in variants if model == "electra" or best is None else [best]:
            print(f"{model}: {variant}: build, compile, warm up, time ...", flush=True)
            prepared = _attempt(f"{model} {variant}", prepare_ours, config, batch, variant)
            timed = prepared and _attempt(f"{model} {variant}", measure, prepared[0],
                                          peer_step, [peer.pid])
            rows.append((model, variant, prepared and prepared[1], timed, flops_per_token))
            del prepared  # frees the Keras model before the next one is built
        if model == "electra":
            timed = [(row[3][0], row[1]) for row in rows if row[3]]
            best = min(timed)[1] if timed else None
    return rows, peaks


def report(rows, peaks, seconds):
    tokens = FLAGS.batch_size * SEQ_LEN
    fp32 = {k: v for k, v in peaks.items() if k.endswith("fp32")}
    peak_name = max(fp32, key=fp32.get)
    peak = fp32[peak_name]
    print(f"\n{os.cpu_count()} cores; batch {FLAGS.batch_size} x seq {SEQ_LEN}; "
          f"{FLAGS.warmup_steps} warm-up + {FLAGS.steps} timed steps; peak: {peak_name} "
          f"matmul {peak / 1e9:.0f} GFLOP/s (tensorflow bf16: "
          f"{peaks['tensorflow bf16'] / 1e9:.0f})")
    header = (f"{'model':<14}{'variant':<10}{'tokens/s':>10}{'HF tokens/s':>13}"
              f"{'ours/HF':>9}{'MFU':>7}{'HF MFU':>8}{'step s':>8}{'HF step s':>11}"
              f"{'warm-up s':>11}"
              f"{'busy':>6}")
    print(header)
    print("-" * len(header))
    busiest = 0.0
    for model, variant, warmup, timed, flops_per_token in rows:
        if not timed:
            print(f"{NAMES[model]:<14}{variant:<10}{'failed':>10}")
            continue
        ours, theirs, busy = timed
        busiest = max(busiest, busy)
        rate = tokens / ours
        peer_rate = tokens / theirs if theirs else float("nan")
        print(f"{NAMES[model]:<14}{variant:<10}{rate:>10,.0f}{peer_rate:>13,.0f}"
              f"{rate / peer_rate:>8.2f}x{flops_per_token * rate / peak:>7.1%}"
              f"{flops_per_token * peer_rate / peak:>8.1%}{ours:>8.2f}"
              f"{theirs or float('nan'):>11.2f}{warmup:>11.1f}{busy:>6.2f}")
    print(f"MFU: train FLOPs per token (electra_tf.flops) x tokens/s / {peak / 1e9:.0f} "
          f"GFLOP/s (bf16 rows too; against the bf16 matmul rate their MFU would be "
          f"{peak / peaks['tensorflow bf16']:.2f}x that). HF: transformers "
          f"{metadata.version('transformers')}, torch {metadata.version('torch')}, "
          f"{os.cpu_count()} threads, own process, MLM head on "
          f"{'all' if FLAGS.hf_full_logits else 'masked'} positions; BERT-Small's peer is "
          "ElectraForMaskedLM alone (HF BERT has no factorized embedding), ALE-Small's the "
          "ELECTRA-Small pair (HF has no shared-layer ELECTRA). Ours and HF alternate step "
          "by step; busy = cores used by other processes meanwhile"
          + (f" (max {busiest:.2f}: timings perturbed)." if busiest > 0.1 else "."))
    print(f"Goals: >= 3.5x HF tokens/s, >= 65% MFU. Total {seconds:.0f} s.")


if __name__ == "__main__":
    app.run(main)
