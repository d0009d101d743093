"""Benchmark: pretraining step throughput on this CPU, against Hugging Face transformers.

What is timed is one full pretraining step at the official small shapes (seq 128, vocab
30522, batch --batch_size): for ELECTRA-Small and ALE-Small the generator forward, Gumbel
sampling of the masked positions, the discriminator forward on the corrupted input, the
losses (mlm + 50 * disc), the backward pass and a LAMB update with global-norm clipping at
1.0; for BERT-Small the same without generator and discriminator. Ours is
``PretrainingTask(build_pretrainer(config)).fit`` on a repeated synthetic batch (random
tokens, two segments, 19 = max_predictions_per_seq(0.15, 128) positions masked), in
variants fp32 (TF graph), xla (jit_compile), bf16 ("mixed_bfloat16") and bf16_xla; BERT
and ALE run only the variant that was fastest for ELECTRA. Throughput is tokens/s over
steady-state steps: --warmup_steps untimed steps first (tracing and compiling), then
--steps timed steps, clocked from the first step's start to the last step's end.

The peer is transformers (PyTorch, CPU, eager, all cores) running the same step:
ElectraForMaskedLM (generator: 64 hidden, 1 head, FFN 256) + ElectraForPreTraining sharing
one embedding module, the generator's output layer tied to the word embeddings, Gumbel
sampling under no_grad, torch AdamW and clip_grad_norm_(1.0). Like ours (and the original)
the generator's MLM head runs on the masked positions only (--hf_full_logits runs it on
all 128, as ElectraForMaskedLM.forward does: ~6.7x the head's FLOPs). transformers has no
factorized-embedding BERT (BertConfig has no embedding_size), so BERT-Small's peer is
ElectraForMaskedLM alone at BERT-Small's shapes (same architecture: factorized embedding,
12 x 256, tied MLM head); it has no shared-layer ELECTRA either, so ALE-Small's peer is the
ELECTRA-Small pair (same FLOPs; sharing only changes the parameter count).

MFU = train_flops_per_step (electra_tf.flops, the original's accounting) per token x
tokens/s / peak, where peak is the best fp32 2048x2048 matmul rate measured in this run
(TensorFlow, NumPy or PyTorch; bf16 variants are still divided by the fp32 peak, the bf16
matmul peak is printed for reference). Goals (the issue): >= 3.5x HF tokens/s and >= 65%
MFU. Other processes using the CPU during a timed window are reported (from /proc/stat):
they make the numbers unreliable.

  .venv/bin/python benchmarks/pretrain_throughput.py [--batch_size=32] [--steps=8]
      [--warmup_steps=2] [--models=electra,bert,ale] [--variants=fp32,xla,bf16,bf16_xla]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

MODELS = ("electra", "bert", "ale")
VARIANTS = ("fp32", "xla", "bf16", "bf16_xla")
SEQ_LEN = 128
CLS, SEP, MASK = 101, 102, 103

flags.DEFINE_integer("batch_size", 32, "Sequences per step.", lower_bound=1)
flags.DEFINE_integer("steps", 8, "Timed steps per measurement.", lower_bound=1)
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


class CpuWatch:
    """CPU time that other processes used while a window was open, in cores (/proc/stat
    busy time minus this process's), so a perturbed measurement can be told apart."""

    def __enter__(self):
        self._start = (self._busy(), self._own(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, wall = self._start
        wall = time.perf_counter() - wall
        self.other_cores = max(0.0, (self._busy() - busy) - (self._own() - own)) / wall
        return False

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return 0.0
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system


def synthetic_batch(batch_size, vocab_size, seed):
    """Full-length two-segment sequences (pretraining packs to the maximum length) with
    the ELECTRA masking: max_predictions_per_seq(0.15, 128) = 19 positions per row, 85%
    of them [MASK], the rest kept."""
    from electra_tf.pretraining.inputs import max_predictions_per_seq

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


def measure_peak():
    """Best-of-3 rates of ten 2048x2048 matmuls: {library: FLOP/s}, fp32 and TF bf16."""
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048)).astype("float32") for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    pa, pb = torch.from_numpy(a), torch.from_numpy(b)
    candidates = {
        "tensorflow fp32": lambda: tf.linalg.matmul(ta, tb),
        "numpy fp32": lambda: a @ b,
        "torch fp32": lambda: torch.mm(pa, pb),
        "tensorflow bf16": (lambda x, y: lambda: tf.linalg.matmul(x, y))(
            tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)),
    }
    rates = {}
    for name, matmul in candidates.items():
        matmul()  # first call: thread pools, kernel selection
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(10):
                out = matmul()
            float(out[0, 0])  # eager CPU ops are done when they return; cheap anyway
            best = min(best, (time.perf_counter() - start) / 10)
        rates[name] = 2 * 2048**3 / best
    return rates


def prepare_ours(config, batch, variant):
    """Builds, compiles and warms one TF variant: (run, warm-up seconds), where run()
    trains steps_per_execution steps and returns their seconds."""
    import keras
    import tensorflow as tf

    from electra_tf.modeling.models import build_pretrainer
    from electra_tf.optimization import DEFAULT_EXCLUDE, Lamb, WarmupPolynomialDecay
    from electra_tf.pretraining.objectives import PretrainingTask

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
        task = PretrainingTask(build_pretrainer(config, seed=FLAGS.seed))
        # The original's small-model schedule and LAMB settings; the learning rate does
        # not change the cost of a step.
        optimizer = Lamb(WarmupPolynomialDecay(5e-4, 1_000_000, warmup_steps=10_000),
                         weight_decay_rate=0.01, exclude_from_weight_decay=DEFAULT_EXCLUDE,
                         global_clipnorm=1.0)
        task.compile(optimizer=optimizer, jit_compile="xla" in variant,
                     steps_per_execution=spe)
        data = tf.data.Dataset.from_tensors(batch).repeat()
        start = time.perf_counter()
        task.fit(data, steps_per_epoch=-(-FLAGS.warmup_steps // spe) * spe, verbose=0)
        warmup_seconds = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy("float32")

    def run():
        clock = StepClock()
        task.fit(data, steps_per_epoch=spe, verbose=0, callbacks=[clock])
        return clock.end - clock.start

    return run, warmup_seconds


def hf_configs(config):
    """transformers ElectraConfigs for `config`'s discriminator (or BERT) and generator."""
    import transformers

    def convert(c):
        return transformers.ElectraConfig(
            vocab_size=c.vocab_size, embedding_size=c.embedding_size,
            hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
            hidden_act=c.hidden_act, hidden_dropout_prob=c.dropout_rate,
            attention_probs_dropout_prob=c.dropout_rate,
            max_position_embeddings=c.max_position_embeddings,
            type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_epsilon)

    return convert(config), convert(config.generator_config()) if config.has_generator else None


def prepare_peer(config, batch):
    """Builds and warms transformers' model: (step, warm-up seconds); step() trains one
    step."""
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(FLAGS.seed)
    disc_config, gen_config = hf_configs(config)
    if gen_config is None:  # BERT-Small: the MLM model alone
        gen, disc = transformers.ElectraForMaskedLM(disc_config), None
        modules = [gen]
    else:
        gen = transformers.ElectraForMaskedLM(gen_config)
        disc = transformers.ElectraForPreTraining(disc_config)
        # Tied embeddings as in ELECTRA: one embedding module, and the generator's output
        # layer is the shared word-embedding matrix.
        gen.electra.embeddings = disc.electra.embeddings
        modules = [gen, disc]
    gen.generator_lm_head.weight = gen.electra.embeddings.word_embeddings.weight
    params = list({id(p): p for m in modules for p in m.parameters()}.values())
    for module in modules:
        module.train()
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
    t = {k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()
         if k != "masked_lm_weights"}
    weights = torch.from_numpy(batch["masked_lm_weights"])
    positions = t["masked_lm_positions"]
    inputs = dict(input_ids=t["input_ids"], attention_mask=t["input_mask"],
                  token_type_ids=t["segment_ids"])
    original = t["input_ids"].scatter(1, positions, t["masked_lm_ids"])
    mask = t["input_mask"].float()

    def step():
        if FLAGS.hf_full_logits:
            logits = gen(**inputs).logits
            logits = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))
        else:  # the MLM head on the masked positions only, as ours and the original
            hidden = gen.electra(**inputs).last_hidden_state
            hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
            logits = gen.generator_lm_head(gen.generator_predictions(hidden))
        losses = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), t["masked_lm_ids"].flatten(), reduction="none")
        loss = (losses * weights.flatten()).sum() / (weights.sum() + 1e-6)
        if disc is not None:
            with torch.no_grad():  # Gumbel-max sampling, no gradient through it
                uniform = torch.rand_like(logits)
                sampled = (logits - torch.log(-torch.log(uniform + 1e-9) + 1e-9)).argmax(-1)
                fake = t["input_ids"].scatter(1, positions, sampled)
                labels = (fake != original).float()
            rtd = disc(**dict(inputs, input_ids=fake)).logits
            disc_loss = torch.nn.functional.binary_cross_entropy_with_logits(
                rtd, labels, reduction="none")
            loss = loss + 50.0 * (disc_loss * mask).sum() / (mask.sum() + 1e-6)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(FLAGS.warmup_steps):
        step()
    return step, time.perf_counter() - start


def measure(run_ours, peer_step):
    """Alternates our executions with as many peer steps, so that load from other
    processes hits both alike: (ours s/step, peer s/step, other processes' cores)."""
    spe = FLAGS.steps_per_execution
    rounds = -(-FLAGS.steps // spe)
    ours = theirs = 0.0
    with CpuWatch() as watch:
        for _ in range(rounds):
            if run_ours is not None:
                ours += run_ours()
            if peer_step is not None:
                start = time.perf_counter()
                for _ in range(spe):
                    peer_step()
                theirs += time.perf_counter() - start
    steps = rounds * spe
    return (ours / steps if run_ours else None, theirs / steps if peer_step else None,
            watch.other_cores)


def _attempt(what, fn, *args):
    """fn(*args), or None after printing the failure in one line."""
    try:
        return fn(*args)
    except Exception as e:  # a failing variant is a result, not a crash
        message = str(e).strip().splitlines()
        print(f"  {what} FAILED: {type(e).__name__}: {message[0] if message else ''}"[:300],
              flush=True)
        return None


def main(argv):
    del argv
    from electra_tf.configs import get_config
    from electra_tf.flops import train_flops_per_step

    unknown = sorted(set(FLAGS.models) - set(MODELS)) + sorted(set(FLAGS.variants)
                                                               - set(VARIANTS))
    models = [m for m in MODELS if m in FLAGS.models]
    variants = [v for v in VARIANTS if v in FLAGS.variants]
    if unknown or not models or not variants:
        raise app.UsageError(f"unknown or empty --models/--variants: {unknown}")
    tokens = FLAGS.batch_size * SEQ_LEN
    started = time.perf_counter()

    with CpuWatch() as watch:
        peaks = measure_peak()
    fp32 = {k: v for k, v in peaks.items() if k.endswith("fp32")}
    peak_name = max(fp32, key=fp32.get)
    peak = fp32[peak_name]
    print("matmul 2048x2048 GFLOP/s: " + ", ".join(f"{k} {v / 1e9:.0f}"
                                                   for k, v in peaks.items())
          + f" (other processes: {watch.other_cores:.2f} cores)", flush=True)

    rows, peers, best = [], {}, None
    for model in models:
        config = get_config(model, "small")
        batch = synthetic_batch(FLAGS.batch_size, config.vocab_size, FLAGS.seed)
        flops_per_token = train_flops_per_step(config, FLAGS.batch_size, SEQ_LEN) / tokens
        peer_key = "bert" if model == "bert" else "electra"  # ALE's peer is ELECTRA's
        if peer_key not in peers:
            print(f"{model}: transformers peer: build, warm up ...", flush=True)
            peers[peer_key] = _attempt(f"{model} transformers", prepare_peer, config, batch)
        peer_step, peer_warmup = peers[peer_key] or (None, None)
        for variant in variants if model == "electra" or best is None else [best]:
            print(f"{model}: {variant}: build, compile, warm up, time ...", flush=True)
            prepared = _attempt(f"{model} {variant}", prepare_ours, config, batch, variant)
            if prepared is None:
                rows.append((model, variant, None, None, None))
                continue
            timed = _attempt(f"{model} {variant}", measure, prepared[0], peer_step)
            rows.append((model, variant, prepared[1], timed, flops_per_token))
            del prepared  # frees the Keras model before the next variant
        if model == "electra":
            timed = [(r[3][0], r[1]) for r in rows if r[0] == "electra" and r[3]]
            best = min(timed)[1] if timed else None

    names = {"electra": "ELECTRA-Small", "bert": "BERT-Small", "ale": "ALE-Small"}
    print(f"\n{os.cpu_count()} cores; batch {FLAGS.batch_size} x seq {SEQ_LEN}; "
          f"{FLAGS.warmup_steps} warm-up + {FLAGS.steps} timed steps; peak fp32 "
          f"{peak / 1e9:.0f} GFLOP/s ({peak_name} matmul)")
    header = (f"{'model':<14}{'variant':<10}{'tokens/s':>10}{'HF tokens/s':>13}"
              f"{'ours/HF':>9}{'MFU':>7}{'step s':>8}{'HF step s':>11}{'warm-up s':>11}"
              f"{'busy':>6}")
    print(header)
    print("-" * len(header))
    busiest = watch.other_cores
    for model, variant, warmup, timed, flops_per_token in rows:
        if timed is None:
            print(f"{names[model]:<14}{variant:<10}{'failed':>10}")
            continue
        ours, theirs, other = timed
        busiest = max(busiest, other)
        rate = tokens / ours
        peer_rate = tokens / theirs if theirs else float("nan")
        print(f"{names[model]:<14}{variant:<10}{rate:>10,.0f}{peer_rate:>13,.0f}"
              f"{rate / peer_rate:>8.2f}x{flops_per_token * rate / peak:>7.1%}{ours:>8.2f}"
              f"{theirs or float('nan'):>11.2f}{warmup:>11.1f}{other:>6.2f}")
    import torch

    print(f"MFU = train FLOPs per token (electra_tf.flops) x tokens/s / the fp32 peak. HF: "
          f"transformers {__import__('transformers').__version__}, torch {torch.__version__}"
          f" ({torch.get_num_threads()} threads), MLM head on "
          f"{'all' if FLAGS.hf_full_logits else 'masked'} positions; BERT-Small's peer is "
          "ElectraForMaskedLM alone (HF BERT has no factorized embedding), ALE-Small's the "
          "ELECTRA-Small pair (HF has no shared-layer ELECTRA). Ours and HF alternate step "
          "by step; busy = cores used by other processes meanwhile"
          + (f" (max {busiest:.2f}: timings perturbed)." if busiest > 0.2 else "."))
    print(f"Goals: >= 3.5x HF tokens/s, >= 65% MFU. Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    app.run(main)
