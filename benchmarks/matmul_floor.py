"""A model's matmuls alone: every matrix product of one forward pass (inference) or of
one pretraining step (each forward product and its two backward ones), each timed on its
own at its own shape, in TensorFlow (ours) and in torch (in the peer's process).

Their sum is what a pass would take if everything between the matmuls cost nothing,
with the matmul kernels each framework brings to this machine. The benchmarks print it
next to the measured pass: a speed target that the matmuls alone exceed cannot be met
with those kernels, and "matmuls / pass" says how much of a pass is matmul time. The
products are laid out as a fused implementation runs them (the query, key and value
projections as one (tokens, h) x (h, 3h) product), so the same list serves both sides,
but for the MLM logits: ours sums them in float32, as the original does (in a bf16 pass
XLA's dot of the bf16 values with a float32 result; their gradient in the pass's
precision), the peer under autocast in bf16. The operands stay
in cache from one repetition to the next, so the times are on the fast side.

No TensorFlow or torch import at module level: the peer's process imports this module
and must never import TensorFlow.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import subprocess
import sys
import time

Product = collections.namedtuple(
    "Product", "batch m k n transpose_a transpose_b count fp32",
    defaults=(False, False, 1, False))
Product.__doc__ = ("(m x k) @ (k x n), `count` times; `batch` > 0: that many such products "
                   "in one batched matmul (0: a 2-D matmul). The transposes say how the "
                   "operands are stored, as TensorFlow's matmul attributes do; `fp32`: "
                   "summed into float32 whatever the pass's precision.")


def flops(products) -> float:
    """Multiply-adds x 2 of all the products."""
    return sum(2.0 * max(p.batch, 1) * p.m * p.k * p.n * p.count for p in products)


def encoder_products(*, hidden, layers, intermediate, heads, embedding, batch,
                     seq) -> list[Product]:
    """The forward products of a post-LN transformer encoder over (batch, seq) tokens:
    the factorized embedding's projection (when `embedding` != `hidden`), then per layer
    the fused query/key/value projection, the attention scores and weighted values
    (batched over batch x heads), the attention output and the two feed-forward denses."""
    tokens, size = batch * seq, hidden // heads
    products = [Product(0, tokens, embedding, hidden)] if embedding != hidden else []
    per_layer = [
        Product(0, tokens, hidden, 3 * hidden),
        Product(batch * heads, seq, size, seq, transpose_b=True),  # q k^T
        Product(batch * heads, seq, seq, size),  # probabilities @ v
        Product(0, tokens, hidden, hidden),
        Product(0, tokens, hidden, intermediate),
        Product(0, tokens, intermediate, hidden),
    ]
    return products + [p._replace(count=layers) for p in per_layer]


def mlm_head_products(*, hidden, embedding, vocab, predictions,
                      logits_fp32=False) -> list[Product]:
    """The masked-LM head on `predictions` positions: a dense to the embedding size,
    then the logits against the (tied, stored vocab x embedding) token table."""
    return [Product(0, predictions, hidden, embedding),
            Product(0, predictions, embedding, vocab, transpose_b=True, fp32=logits_fp32)]


def backward(product: Product) -> list[Product]:
    """The two products of a matmul's gradient: d(left) = d(out) @ right^T and
    d(right) = left^T @ d(out), each in the stored layout of its operand (a left
    operand stored transposed does not occur in these models)."""
    p = product
    if p.transpose_a:
        raise ValueError(f"{p}: a transposed left operand is not supported")
    d_left = p._replace(k=p.n, n=p.k, transpose_b=not p.transpose_b)
    d_right = (p._replace(m=p.n, k=p.m, n=p.k, transpose_a=True, transpose_b=False)
               if p.transpose_b else
               p._replace(m=p.k, k=p.m, transpose_a=True))
    return [d_left, d_right]


def training(forward) -> list[Product]:
    """Each forward product and its two backward ones; those of a float32 product in the
    pass's precision, as ours runs the MLM logits' gradient (fused.output_logits)."""
    return [q for p in forward for q in [p, *(b._replace(fp32=False) for b in backward(p))]]


def _encoder(config, batch, seq) -> list[Product]:
    return encoder_products(hidden=config.hidden_size, layers=config.num_hidden_layers,
                            intermediate=config.intermediate_size,
                            heads=config.num_attention_heads,
                            embedding=config.embedding_size, batch=batch, seq=seq)


def inference_products(config, batch, seq) -> list[Product]:
    """The products of `config`'s encoder classifying (batch, seq) tokens (no head)."""
    return _encoder(config, batch, seq)


def pretraining_products(config, batch, seq, predictions,
                         logits_fp32=False) -> list[Product]:
    """The products of one pretraining step of `config` (an electra_tf ModelConfig) on
    (batch, seq) tokens with `predictions` MLM positions in all (the masked ones, or
    every token for a head on all positions): BERT's encoder and MLM head; ELECTRA's
    (and ALE's) generator with its MLM head, then the discriminator with its per-token
    head (dense, then one logit)."""
    if not config.has_generator:
        forward = _encoder(config, batch, seq) + mlm_head_products(
            hidden=config.hidden_size, embedding=config.embedding_size,
            vocab=config.vocab_size, predictions=predictions, logits_fp32=logits_fp32)
        return training(forward)
    generator, tokens = config.generator_config(), batch * seq
    forward = (_encoder(generator, batch, seq)
               + mlm_head_products(hidden=generator.hidden_size,
                                   embedding=generator.embedding_size,
                                   vocab=generator.vocab_size, predictions=predictions,
                                   logits_fp32=logits_fp32)
               + _encoder(config, batch, seq)
               + [Product(0, tokens, config.hidden_size, config.hidden_size),
                  Product(0, tokens, config.hidden_size, 1)])
    return training(forward)


def merged(products) -> dict[Product, int]:
    """{shape (count 1): total count}: each distinct product is timed once."""
    totals = collections.Counter()
    for p in products:
        totals[p._replace(count=1)] += p.count
    return dict(totals)


def _shape(p: Product, left: bool) -> tuple:
    rows, cols = (p.m, p.k) if left else (p.k, p.n)
    if (p.transpose_a if left else p.transpose_b):
        rows, cols = cols, rows
    return ((p.batch,) if p.batch else ()) + (rows, cols)


def time_tensorflow(products, precision, device="CPU", chain=8, rounds=3) -> float:
    """Seconds that TensorFlow's matmuls take for `products` ("fp32", "bf16" or
    "fp16"): each distinct product run `chain` times one after the other, eagerly (no
    function to trace per shape; an op's dispatch costs tens of microseconds, as in a
    graph), best of `rounds` rounds after one. An `fp32` product in a bf16 or fp16 pass
    runs as the fused kernels run it (the package's default): one compiled call."""
    import tensorflow as tf

    dtypes = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
    total = 0.0
    with tf.device(f"/{device}:0"):
        for p, count in merged(products).items():
            left = tf.cast(tf.random.normal(_shape(p, True), seed=1), dtypes[precision])
            right = tf.cast(tf.random.normal(_shape(p, False), seed=2), dtypes[precision])
            matmul = functools.partial(tf.linalg.matmul, transpose_a=p.transpose_a,
                                       transpose_b=p.transpose_b)
            if p.fp32 and precision != "fp32":
                # As the fused MLM head runs it (fused.output_logits): XLA's dot of the
                # pass's values with float32 sums, one compiled call.
                matmul = tf.function(functools.partial(matmul, output_type=tf.float32),
                                     jit_compile=True)

            def run(a=left, b=right, matmul=matmul):
                for _ in range(chain):
                    out = matmul(a, b)
                return float(out[..., 0, 0].numpy().sum())  # waits for a GPU's queue

            run()
            best = min(_seconds(run) for _ in range(rounds))
            total += best / chain * count
    return total


def time_torch(products, precision, device="cpu", chain=8, rounds=3) -> float:
    """The same for torch (in the peer's process): `chain` matmuls per timed round."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    generator = torch.Generator().manual_seed(1)
    total = 0.0
    for p, count in merged(products).items():
        dtype = dtypes["fp32" if p.fp32 else precision]
        left, right = (torch.randn(_shape(p, side), generator=generator).to(device, dtype)
                       for side in (True, False))
        a = left.transpose(-1, -2) if p.transpose_a else left  # views: strides, no copy
        b = right.transpose(-1, -2) if p.transpose_b else right

        def run(a=a, b=b):
            for _ in range(chain):
                out = torch.matmul(a, b)
            return float(out[..., 0, 0].sum())  # waits for a GPU's queue

        run()
        best = min(_seconds(run) for _ in range(rounds))
        total += best / chain * count
    return total


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tensorflow_onednn_version() -> str | None:
    """The oneDNN version TensorFlow runs on this machine (its verbose mode's first line,
    from a short child process), or None when it uses none (no oneDNN build, a GPU)."""
    code = ("import tensorflow as tf; "
            "tf.linalg.matmul(tf.ones([2, 2]), tf.ones([2, 2])).numpy()")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "ONEDNN_VERBOSE": "1"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return onednn_version(done.stdout + done.stderr)


def onednn_version(text: str) -> str | None:
    """"3.7.3" from a oneDNN banner in `text` (its verbose output, torch's build
    configuration), or None."""
    found = re.search(r"(?:oneDNN|MKL-DNN) v(\d+\.\d+(?:\.\d+)?)", text)
    return found.group(1) if found else None

