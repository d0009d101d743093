"""FLOP accounting with the semantics of the original ELECTRA ``flops_computation.py``.

Conventions (the original's, kept so the published numbers come out exactly):

* a matrix multiply of (m x n) by a vector costs 2*m*n; the backward pass costs the
  same as the forward pass, so training = 2 x forward;
* per activation: dropout 4, layer norm 5, GELU 8, softmax 5 operations;
* the attention-output layer norm is counted as 5 operations per attention multiply,
  not per hidden unit (a quirk of the original, kept);
* the input embedding is a dense one-hot matmul (2 * embedding_size * vocab_size per
  token), plus the projection to the hidden size when the embedding is factorized;
* the MLM output softmax runs on ``output_frac`` = 15.625% of the positions;
* ELECTRA = discriminator (with its per-token binary head) + generator (its own
  embedding pass and MLM head; with tied embeddings the head uses the embedding size).

Cross-layer sharing (ALE) changes parameter counts, not FLOPs; a factorized embedding
changes both. ``electra-flops`` (:mod:`electra_tf.run_flops`) prints the original's table and
the same accounting for this package's configs.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from electra_tf.configs import MODEL_TYPES, SIZES, ModelConfig, get_config

DROPOUT_FLOPS = 4  # random number, compare, mask multiply, rescale
LAYER_NORM_FLOPS = 5  # mean, variance (square + sum), scale, shift
ACTIVATION_FLOPS = 8  # tanh-approximated GELU
SOFTMAX_FLOPS = 5  # max-subtract, exp, sum, divide
DEFAULT_OUTPUT_FRAC = 0.15625  # 20 of 128 positions carry an MLM prediction


@dataclasses.dataclass(frozen=True)
class TransformerFlops:
    """FLOPs of one BERT-style transformer, per the original's TransformerHparams.

    h hidden size, l layers, s sequence length, v vocab size, e embedding size
    (default h), i FFN size (default 4h), heads (default max(1, h // 64)),
    head_size (default h / heads), output_frac fraction of positions with an MLM
    softmax, sparse_embed_lookup counts the input embedding as a gather (free),
    decoder adds encoder-decoder attention to every block.
    """

    h: int
    l: int  # noqa: E741 - the original's name
    s: int = 512
    v: int = 30522
    e: int | None = None
    i: int | None = None
    heads: int | None = None
    head_size: int | None = None
    output_frac: float = DEFAULT_OUTPUT_FRAC
    sparse_embed_lookup: bool = False
    decoder: bool = False

    @property
    def _e(self) -> int:
        return self.h if self.e is None else self.e

    @property
    def _i(self) -> int:
        return 4 * self.h if self.i is None else self.i

    @property
    def _heads(self) -> int:
        return max(1, self.h // 64) if self.heads is None else self.heads

    @property
    def _kqv(self) -> int:
        return self.h if self.head_size is None else self.head_size * self.heads

    def block_flops(self) -> float:
        """Forward FLOPs of one transformer block over the whole sequence."""
        h, s, i, kqv, heads = self.h, self.s, self._i, self._kqv, self._heads
        attn = 2 if self.decoder else 1
        per_token = (
            attn * (
                3 * 2 * h * kqv  # query, key, value projections
                + 3 * kqv  # their biases
                + 2 * kqv * s  # attention scores
                + SOFTMAX_FLOPS * s * heads
                + DROPOUT_FLOPS * s * heads
                + s * heads  # 1/sqrt(d) scaling
                + 2 * h * s  # weighted average of values
                + 2 * h * h  # attention output dense
                + h  # its bias
                + DROPOUT_FLOPS * h
                + h  # residual
                + LAYER_NORM_FLOPS  # the original's quirk: not * h
            )
            + 2 * h * i + i + ACTIVATION_FLOPS * i  # intermediate dense, bias, GELU
            + 2 * h * i + h  # output dense, bias
            + DROPOUT_FLOPS * h + h + LAYER_NORM_FLOPS * h  # dropout, residual, norm
        )
        return per_token * s

    def embedding_flops(self, output: bool = False) -> float:
        """Forward FLOPs of the input embedding or (output=True) the MLM output layer."""
        h, e, s, v = self.h, self._e, self.s, self.v
        total = 0.0
        if output or not self.sparse_embed_lookup:
            total += 2 * e * v  # one-hot matmul / tied output matmul
        if not output:
            total += (2 * e * (s + 2)  # token-type and position one-hot lookups
                      + 2 * e  # adding them
                      + LAYER_NORM_FLOPS * e + DROPOUT_FLOPS * e)
        if e != h or output:
            total += 2 * h * e + (e if output else h)  # projection / MLM hidden dense
            if output:
                total += (ACTIVATION_FLOPS * e + LAYER_NORM_FLOPS * e
                          + SOFTMAX_FLOPS * v + 2 * v)  # GELU, norm, softmax, target
                return self.output_frac * total * s
        return total * s

    def binary_classification_flops(self) -> float:
        """Forward FLOPs of ELECTRA's per-token replaced-token-detection head."""
        h = self.h
        return (2 * h * h + h + ACTIVATION_FLOPS * h + 2 * h) * self.s

    def forward_flops(self, discriminator: bool = False) -> float:
        head = (self.binary_classification_flops() if discriminator
                else self.embedding_flops(output=True))
        return self.l * self.block_flops() + self.embedding_flops(output=False) + head

    def train_flops(self, batch_size: float, train_steps: float,
                    discriminator: bool = False) -> float:
        """Pretraining FLOPs: 2 x forward (backward counted equal to forward)."""
        return 2 * batch_size * train_steps * self.forward_flops(discriminator)

    def infer_flops(self) -> float:
        """FLOPs of one forward pass for a sequence-classification task."""
        return (self.l * self.block_flops() + self.embedding_flops(output=False)
                + self.binary_classification_flops())


def electra_train_flops(h_d, l_d, h_g, l_g, batch_size, train_steps, tied_embeddings,
                        e=None, s=512, output_frac=DEFAULT_OUTPUT_FRAC) -> float:
    """Pretraining FLOPs of ELECTRA: discriminator + generator, as the original counts."""
    e = h_d if e is None else e
    disc = TransformerFlops(h_d, l_d, s=s, e=e, output_frac=output_frac)
    gen = TransformerFlops(h_g, l_g, s=s, e=e if tied_embeddings else None,
                           output_frac=output_frac)
    return (disc.train_flops(batch_size, train_steps, discriminator=True)
            + gen.train_flops(batch_size, train_steps))


def original_table() -> collections.OrderedDict[str, float]:
    """The original script's table of total pretraining FLOPs, same configs, same order."""
    return collections.OrderedDict([
        # measured with TensorFlow's profiler in the original, not with the formulas:
        # ELMo: 768,648,884 LM1B words, 10 epochs, batch 20 x 128, 568,093,262,680 FLOPs
        # per example; XLNet: 15,064,773,691,518 forward FLOPs per 32 examples.
        ("elmo", 2 * 10 * 768648884 * 568093262680 / (20.0 * 128)),
        ("xlnet", 2 * 500000 * 8192 * 15064773691518 / 32.0),
        ("gpt", TransformerFlops(768, 12, v=40000, output_frac=1.0).train_flops(128, 960800)),
        ("bert_small", TransformerFlops(256, 12, e=128, s=128).train_flops(128, 1.45e6)),
        ("bert_base", TransformerFlops(768, 12).train_flops(256, 1e6)),
        ("bert_large", TransformerFlops(1024, 24).train_flops(256, 1e6)),
        ("electra_small", electra_train_flops(256, 12, 64, 12, 128, 1e6, True, s=128, e=128)),
        ("electra_base", electra_train_flops(768, 12, 256, 12, 256, 766000, True)),
        ("electra_400k", electra_train_flops(1024, 24, 256, 24, 2048, 400000, True)),
        ("electra_1.75M", electra_train_flops(1024, 24, 256, 24, 2048, 1750000, True)),
        ("roberta", TransformerFlops(1024, 24, v=50265).train_flops(8000, 500000)),
        ("albert", TransformerFlops(4096, 12, v=30000, e=128).train_flops(4096, 1.5e6)),
        ("t5_11b",
         TransformerFlops(1024, 24, v=32000, i=65536, heads=128, head_size=128,
                          output_frac=0.0).train_flops(2048, 1e6)
         + TransformerFlops(1024, 24, v=32000, i=65536, heads=128, head_size=128,
                            output_frac=1.0, decoder=True).train_flops(2048, 1e6)),
    ])


def _transformer(config: ModelConfig, seq_len: int, output_frac: float) -> TransformerFlops:
    return TransformerFlops(
        h=config.hidden_size, l=config.num_hidden_layers, s=seq_len, v=config.vocab_size,
        e=config.embedding_size, i=config.intermediate_size,
        heads=config.num_attention_heads, output_frac=output_frac)


def train_flops_per_step(config: ModelConfig, batch_size: int, seq_len: int,
                         output_frac: float = DEFAULT_OUTPUT_FRAC) -> float:
    """Training FLOPs of one step of `config`'s pretraining model (BERT, ELECTRA, ALE)."""
    if not config.has_generator:
        return _transformer(config, seq_len, output_frac).train_flops(batch_size, 1)
    disc = _transformer(config, seq_len, output_frac).train_flops(
        batch_size, 1, discriminator=True)
    gen = _transformer(config.generator_config(), seq_len, output_frac).train_flops(
        batch_size, 1)
    return disc + gen


def inference_flops(config: ModelConfig, seq_len: int) -> float:
    """FLOPs of classifying one sequence with the (discriminator) encoder."""
    return _transformer(config, seq_len, DEFAULT_OUTPUT_FRAC).infer_flops()


def steps_for_budget(config: ModelConfig, flop_budget: float, batch_size: int, seq_len: int,
                     output_frac: float = DEFAULT_OUTPUT_FRAC) -> int:
    """Number of whole training steps that fit in `flop_budget` FLOPs.

    A budget smaller than one step is an error: training would exceed it.
    """
    if not flop_budget > 0:
        raise ValueError(f"flop_budget must be positive, got {flop_budget!r}")
    per_step = train_flops_per_step(config, batch_size, seq_len, output_frac)
    if flop_budget < per_step:
        raise ValueError(f"flop_budget {flop_budget:.4e} is smaller than one training step "
                         f"of {config.model_type}-{config.size} at batch {batch_size}, seq "
                         f"{seq_len} ({per_step:.4e} FLOPs)")
    return math.floor(flop_budget / per_step)


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Parameter counts by formula (no model is built): encoder, heads and total.

    "encoder" is the discriminator (or BERT) encoder: embeddings, projection and the
    distinct transformer layers, no heads, no pooler. The model tests check these
    formulas against the built Keras models.
    """
    def embeddings(c: ModelConfig) -> int:
        e = c.embedding_size
        return ((c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * e + 2 * e)

    def stack(c: ModelConfig) -> int:
        h, i = c.hidden_size, c.intermediate_size
        project = (c.embedding_size * h + h) if c.embedding_size != h else 0
        layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
        return project + c.num_groups * layer

    def mlm_head(c: ModelConfig) -> int:
        h, e = c.hidden_size, c.embedding_size
        return h * e + e + 2 * e + c.vocab_size  # dense, LayerNorm, output bias

    encoder = embeddings(config) + stack(config)
    counts = {"encoder": encoder}
    if config.has_generator:
        gen = config.generator_config()
        h = config.hidden_size
        counts["discriminator_head"] = h * h + h + h + 1
        counts["generator"] = stack(gen) + (
            embeddings(gen) if config.untied_generator_embeddings else 0)
        counts["generator_head"] = mlm_head(gen)
    else:
        counts["mlm_head"] = mlm_head(config)
    counts["total"] = sum(counts.values())
    return counts


def own_table(batch_size: int = 128, seq_len: int = 128):
    """Rows (model, size, encoder params, total params, train FLOPs/step, infer FLOPs)."""
    rows = []
    for model_type in MODEL_TYPES:
        for size in SIZES:
            config = get_config(model_type, size)
            params = count_parameters(config)
            rows.append((model_type, size, params["encoder"], params["total"],
                         train_flops_per_step(config, batch_size, seq_len),
                         inference_flops(config, seq_len)))
    return rows


def format_tables(batch_size: int = 128, seq_len: int = 128) -> str:
    lines = ["Original flops_computation.py table (total pretraining FLOPs):"]
    for name, value in original_table().items():
        lines.append(f"  {name:<14} {value!r}")
    lines.append("")
    lines.append(f"This package's configs (train FLOPs per step at batch {batch_size}, "
                 f"seq {seq_len}; inference FLOPs per sequence of {seq_len}):")
    header = f"  {'model':<8}{'size':<7}{'encoder params':>16}{'total params':>15}" \
             f"{'train FLOPs/step':>19}{'infer FLOPs':>14}"
    lines.append(header)
    for model_type, size, enc, total, train, infer in own_table(batch_size, seq_len):
        lines.append(f"  {model_type:<8}{size:<7}{enc:>16,}{total:>15,}"
                     f"{train:>19.4e}{infer:>14.4e}")
    return "\n".join(lines)
