"""Parameter and inference-latency table of "To Pretrain or Not to Pretrain" (Table 3).

Wang, Khabsa and Ma (2020) compare pretrained encoders with BiLSTMs trained from scratch
by their parameter count without the embedding table and by inference latency (ms per
batch at batch sizes 128 / 256 / 384). This module names the models of that table,
counts their parameters, times a compiled inference function, and formats the table.

Model names (case-insensitive; :func:`parse_model_name` gives the canonical spelling):

- ``ELECTRA-<Size>``: this package's :class:`~electra_tf.modeling.Encoder` at a size of
  :data:`electra_tf.configs.SIZES` (``ELECTRA-Small``, ``ELECTRA-Base``, ...), random
  weights (latency does not depend on their values). Timed is the encoder alone (its
  ``sequence_output`` and [CLS] vector); a classifier on [CLS] adds a
  (hidden x labels) matmul per sequence, nothing measurable.
- ``LSTM-<n>-<k>``: :class:`~electra_tf.modeling.BiLstmClassifier` with n BiLSTM layers
  of k units, a 128-wide token table trained from scratch, 2 labels (the paper's binary
  tasks), ELECTRA's 30,522-token vocab.
- ``LSTM-<n>-<k>+emb<W>``: the same with a frozen pretrained token table W wide, as
  :func:`~electra_tf.modeling.embeddings_from_encoder` gives it, fed straight into the
  first LSTM as in the paper. ``+emb768`` is ELECTRA-Base's table (the default rows,
  the paper's ``+Base``: the first layer reads 768 features instead of 128, which is
  what the variant adds, in parameters and time); ``+emb128`` is ELECTRA-Small's table,
  as wide as the scratch one, so its row equals the from-scratch one (only
  trainability differs) and it is not in the default list.

"Parameters without embeddings" leaves out the token table (vocab x width) only, the
part whose size follows the vocabulary. An encoder's position and segment tables
(514 x width) and embedding LayerNorm are counted: they are few (66K for Small, 396K for
Base) and are kept in the result (``position_segment_embeddings``) so a reader can
subtract them. Factorized encoders (Small) count their embedding projection.

Lower precision: :func:`with_policy` rebuilds a model under a Keras dtype policy
(``mixed_bfloat16``) with the same weights, and :func:`precision_agreement` measures how
far that copy's outputs are from the float32 model's on given (real) text.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from electra_tf.configs import SIZES, get_config
from electra_tf.flops import count_parameters
from electra_tf.masking import MaskingConfig, mask_batch, max_predictions_per_seq
from electra_tf.modeling.lstm import LSTM_INPUTS, BiLstmClassifier, lstm_parameter_count
from electra_tf.modeling.models import ENCODER_INPUTS, ElectraPretrainer, Encoder
from electra_tf.tokenization import SpecialIds
from electra_tf.training.precision import dtype_policy

VOCAB_SIZE = 30522  # ELECTRA's (uncased BERT) vocab, for the encoders and the LSTMs
LSTM_EMBEDDING_SIZE = 128  # the paper's width of a token table trained from scratch
LSTM_NUM_LABELS = 2
BATCH_SIZES = (128, 256, 384)  # the paper's columns
DEFAULT_MODELS = ("ELECTRA-Small", "ELECTRA-Base", "LSTM-2-256", "LSTM-4-256", "LSTM-4-512",
                  "LSTM-2-256+emb768", "LSTM-4-256+emb768", "LSTM-4-512+emb768")

_ENCODER_NAME = re.compile(r"electra-([a-z]+)", re.IGNORECASE)
_LSTM_NAME = re.compile(r"lstm-(\d+)-(\d+)(?:\+emb(\d+))?", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class LatencyModel:
    """One row of the table: an encoder size, or an LSTM-n-k with an optional frozen
    pretrained table `pretrained_width` wide. Make one with :func:`parse_model_name`."""

    name: str
    size: str | None = None  # encoders
    num_layers: int | None = None  # LSTMs
    units: int | None = None
    pretrained_width: int | None = None

    @property
    def is_encoder(self) -> bool:
        return self.size is not None

    @property
    def input_names(self) -> tuple[str, ...]:
        return ENCODER_INPUTS if self.is_encoder else LSTM_INPUTS

    @property
    def max_seq_len(self) -> int | None:
        """Longest sequence the model reads (an encoder's position table); None: any."""
        return get_config("electra", self.size).max_position_embeddings if self.is_encoder \
            else None

    def build(self) -> keras.Model:
        """The Keras model, random weights (a frozen table for ``+emb`` LSTMs)."""
        # TensorFlow name scopes do not allow "+".
        name = self.name.replace("+", "_")
        if self.is_encoder:
            return Encoder(get_config("electra", self.size, {"vocab_size": VOCAB_SIZE}),
                           name=name)
        return BiLstmClassifier(VOCAB_SIZE, LSTM_NUM_LABELS, self.num_layers, self.units,
                                embedding_size=LSTM_EMBEDDING_SIZE,
                                pretrained_width=self.pretrained_width, name=name)

    def parameter_counts(self) -> dict[str, int]:
        """By formula: "without_embeddings" (what the table reports), "token_embeddings",
        "total", and for encoders "position_segment_embeddings" (part of the first)."""
        if self.is_encoder:
            config = get_config("electra", self.size, {"vocab_size": VOCAB_SIZE})
            total = count_parameters(config)["encoder"]
            token = config.vocab_size * config.embedding_size
            e = config.embedding_size
            return {"without_embeddings": total - token, "token_embeddings": token,
                    "total": total, "position_segment_embeddings":
                    (config.max_position_embeddings + config.type_vocab_size) * e + 2 * e}
        counts = lstm_parameter_count(self.num_layers, self.units, LSTM_EMBEDDING_SIZE,
                                      LSTM_NUM_LABELS, VOCAB_SIZE, self.pretrained_width)
        return {"without_embeddings": counts["without_embeddings"],
                "token_embeddings": counts["embeddings"], "total": counts["total"]}


def parse_model_name(name: str) -> LatencyModel:
    """The :class:`LatencyModel` named `name` (see the module docstring); a ValueError
    says what is allowed."""
    text = name.strip()
    match = _ENCODER_NAME.fullmatch(text)
    if match and match.group(1).lower() in SIZES:
        size = match.group(1).lower()
        return LatencyModel(name=f"ELECTRA-{size.capitalize()}", size=size)
    match = _LSTM_NAME.fullmatch(text)
    if match:
        layers, units = int(match.group(1)), int(match.group(2))
        width = int(match.group(3)) if match.group(3) else None
        if layers >= 1 and units >= 1 and (width is None or width >= 1):
            suffix = f"+emb{width}" if width else ""
            return LatencyModel(name=f"LSTM-{layers}-{units}{suffix}", num_layers=layers,
                                units=units, pretrained_width=width)
    sizes = "/".join(s.capitalize() for s in SIZES)
    raise ValueError(f"unknown model {name!r}; allowed: ELECTRA-<{sizes}>, LSTM-<layers>-"
                     f"<units> or LSTM-<layers>-<units>+emb<pretrained width>, all "
                     f"numbers >= 1 (e.g. {', '.join(DEFAULT_MODELS[:3])}, LSTM-2-256+emb768)")


def keras_parameter_counts(model: keras.Model) -> dict[str, int]:
    """The built model's own count: "total" (all weights, the frozen table too),
    "token_embeddings" (its token table) and "without_embeddings" (the difference)."""
    if isinstance(model, Encoder):
        table = model.embeddings.word_embeddings.embeddings
    elif isinstance(model, BiLstmClassifier):
        table = model.word_embeddings.embeddings
    else:
        raise TypeError(f"{type(model).__name__} is neither an Encoder nor a "
                        f"BiLstmClassifier")
    total = int(model.count_params())
    token = int(np.prod(table.shape))
    return {"total": total, "token_embeddings": token, "without_embeddings": total - token}


def check_shape(batch_size: int, seq_len: int, max_seq_len: int | None = None) -> None:
    """A ValueError unless both are integers >= 1 and seq_len <= max_seq_len (if given)."""
    for what, value in (("batch size", batch_size), ("sequence length", seq_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    if max_seq_len is not None and seq_len > max_seq_len:
        raise ValueError(f"sequence length {seq_len} is longer than the encoder's "
                         f"{max_seq_len} positions")


def random_inputs(input_names: Sequence[str], batch_size: int, seq_len: int,
                  vocab_size: int = VOCAB_SIZE, seed: int = 0) -> dict[str, np.ndarray]:
    """int32 (batch, seq_len) inputs: uniform token ids, every position real (mask 1),
    one segment (ids 0). Full rows are the worst case the table measures."""
    check_shape(batch_size, seq_len)
    rng = np.random.default_rng(seed)
    values = {"input_ids": rng.integers(0, vocab_size, (batch_size, seq_len)),
              "input_mask": np.ones((batch_size, seq_len)),
              "segment_ids": np.zeros((batch_size, seq_len))}
    unknown = sorted(set(input_names) - set(values))
    if unknown:
        raise ValueError(f"no random values for inputs {unknown}")
    return {name: values[name].astype("int32") for name in input_names}


def inference_function(model: keras.Model, input_names: Sequence[str], batch_size: int,
                       seq_len: int, xla: bool = False):
    """`model`'s forward pass (training=False) as a tf.function traced for exactly
    (batch_size, seq_len) int32 inputs: a fixed signature, so one graph is built and
    optimized for the shapes measured; `xla` compiles it with XLA (jit_compile)."""
    check_shape(batch_size, seq_len)
    signature = [{name: tf.TensorSpec((batch_size, seq_len), tf.int32, name=name)
                  for name in input_names}]

    @tf.function(input_signature=signature, jit_compile=xla)
    def infer(inputs):
        return model(inputs, training=False)

    return infer


def _as_model(model: keras.Model | str | LatencyModel, batch_size: int,
              seq_len: int) -> tuple[keras.Model, tuple]:
    """(the model, its input names), the shape checked against it before any build."""
    if isinstance(model, str):
        model = parse_model_name(model)
    if isinstance(model, LatencyModel):
        check_shape(batch_size, seq_len, model.max_seq_len)
        return model.build(), model.input_names
    if isinstance(model, Encoder):
        check_shape(batch_size, seq_len, model.model_config.max_position_embeddings)
        return model, ENCODER_INPUTS
    if isinstance(model, BiLstmClassifier):
        check_shape(batch_size, seq_len)
        return model, LSTM_INPUTS
    raise TypeError(f"expected a model name, LatencyModel, Encoder or BiLstmClassifier; got "
                    f"{type(model).__name__}")


class InferenceTimer:
    """A model's compiled inference at one (batch, seq_len) on fixed random inputs.

    Construction traces the function (``trace_s``); :meth:`run` executes it once and
    returns the seconds from the call until every output is on the host as numpy (the
    copy is part of inference, and on a GPU it is what waits for the device).
    """

    def __init__(self, model: keras.Model | str | LatencyModel, batch_size: int,
                 seq_len: int, xla: bool = False, seed: int = 0):
        self.model, names = _as_model(model, batch_size, seq_len)
        vocab = (self.model.model_config.vocab_size if isinstance(self.model, Encoder)
                 else self.model.vocab_size)
        self.inputs = {k: tf.constant(v) for k, v in
                       random_inputs(names, batch_size, seq_len, vocab, seed).items()}
        self.function = inference_function(self.model, names, batch_size, seq_len, xla)
        start = time.perf_counter()
        self.function.get_concrete_function()
        self.trace_s = time.perf_counter() - start

    def run(self) -> float:
        start = time.perf_counter()
        outputs = self.function(self.inputs)
        for tensor in tf.nest.flatten(outputs):
            tensor.numpy()
        return time.perf_counter() - start


def time_inference(model: keras.Model | str | LatencyModel, batch_size: int, seq_len: int,
                   num_runs: int = 5, warmup: int = 1, xla: bool = False,
                   seed: int = 0) -> dict[str, Any]:
    """Latency of `model` (a model, a :class:`LatencyModel` or its name) per batch.

    Traces the compiled inference function, runs it `warmup` times untimed (graph
    optimization, XLA compilation, thread pools and allocator warm up on the first
    calls), then `num_runs` timed times. Returns a JSON-able dict: batch_size, seq_len,
    mean_ms, std_ms (population std; 0 for one run), runs_ms (each run), trace_s and
    warmup_s (the untimed parts, in seconds).
    """
    if isinstance(num_runs, bool) or not isinstance(num_runs, int) or num_runs < 1:
        raise ValueError(f"num_runs must be an integer >= 1, got {num_runs!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    timer = InferenceTimer(model, batch_size, seq_len, xla, seed)
    warmup_s = sum(timer.run() for _ in range(warmup))
    runs_ms = [1000.0 * timer.run() for _ in range(num_runs)]
    return {"batch_size": int(batch_size), "seq_len": int(seq_len),
            "mean_ms": float(np.mean(runs_ms)), "std_ms": float(np.std(runs_ms)),
            "runs_ms": runs_ms, "trace_s": timer.trace_s, "warmup_s": warmup_s}


def cpu_threads() -> int:
    """Threads TensorFlow runs one op on: the configured intra-op count, or by default
    one per CPU this process may use."""
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    return configured or len(os.sched_getaffinity(0))


def latency_table(models: Sequence[str] = DEFAULT_MODELS,
                  batch_sizes: Sequence[int] = BATCH_SIZES, seq_len: int = 128,
                  num_runs: int = 5, warmup: int = 1, xla: bool = False,
                  device: str = "CPU", seed: int = 0, progress=None) -> dict[str, Any]:
    """Measures the table for one sequence length on one device ("CPU" or "GPU").

    Every name and shape is checked before anything is built. Each model is built once
    (on `device`), its Keras parameter count checked against the formula, and timed at
    each batch size. `progress`, if given, is called with one line per finished cell.

    Returns a JSON-able dict: device, threads (CPU only), seq_len, batch_sizes,
    num_runs, warmup, xla, and rows: [{model, params_without_embeddings,
    token_embeddings, total_params, latency: {str(batch_size): time_inference dict}}].
    """
    specs = [parse_model_name(name) for name in models]
    if not specs:
        raise ValueError("no models to measure")
    if not batch_sizes:
        raise ValueError("no batch sizes to measure")
    for spec in specs:
        for batch_size in batch_sizes:
            check_shape(batch_size, seq_len, spec.max_seq_len)
    if device not in ("CPU", "GPU"):
        raise ValueError(f"device must be 'CPU' or 'GPU', got {device!r}")
    if device == "GPU" and not tf.config.list_physical_devices("GPU"):
        raise ValueError("device 'GPU' asked for, but TensorFlow sees no GPU")
    rows = []
    for spec in specs:
        with tf.device(f"/{device}:0"):
            model = spec.build()
            counts = spec.parameter_counts()
            built = keras_parameter_counts(model)
            if {k: counts[k] for k in built} != built:
                raise RuntimeError(f"{spec.name}: parameter formula {counts} disagrees with "
                                   f"the built Keras model's {built}")
            latency = {}
            for batch_size in batch_sizes:
                latency[str(batch_size)] = cell = time_inference(
                    model, batch_size, seq_len, num_runs, warmup, xla, seed)
                if progress:
                    progress(f"{spec.name} batch {batch_size} seq {seq_len}: "
                             f"{cell['mean_ms']:,.1f} ± {cell['std_ms']:,.1f} ms")
        rows.append({"model": spec.name,
                     "params_without_embeddings": counts["without_embeddings"],
                     "token_embeddings": counts["token_embeddings"],
                     "total_params": counts["total"], "latency": latency})
        del model
        keras.utils.clear_session()
    return {"device": device, "threads": cpu_threads() if device == "CPU" else None,
            "seq_len": int(seq_len), "batch_sizes": [int(b) for b in batch_sizes],
            "num_runs": num_runs, "warmup": warmup, "xla": xla, "rows": rows}


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count < 1e8 else f"{count / 1e6:.0f}M"


def _ms(cell: dict) -> str:
    mean, std = cell["mean_ms"], cell["std_ms"]
    digits = 1 if mean < 100 else 0
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def format_table(table: dict[str, Any]) -> str:
    """Markdown in the layout of the paper's Table 3: one row per model; columns: the
    parameters without the token table, then ms per batch (mean ± std) at each batch
    size; a caption line above says device, sequence length, runs and compilation."""
    batch_sizes = [str(b) for b in table["batch_sizes"]]
    device = table["device"]
    if table.get("threads"):
        device += f", {table['threads']} threads"
    caption = (f"Inference latency on {device}, sequence length {table['seq_len']}: ms per "
               f"batch, mean ± std of {table['num_runs']} runs after {table['warmup']} "
               f"warm-up; tf.function{' + XLA' if table['xla'] else ''}, training=False.")
    lines = [caption, "",
             "| Model | Params w/o embeddings | "
             + " | ".join(f"batch {b} (ms)" for b in batch_sizes) + " |",
             "|---|---:|" + "---:|" * len(batch_sizes)]
    for row in table["rows"]:
        cells = [_ms(row["latency"][b]) if b in row["latency"] else "-" for b in batch_sizes]
        lines.append(f"| {row['model']} | {_millions(row['params_without_embeddings'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_ratio(table: dict[str, Any], slower: str, faster: str,
                  batch_size: int | None = None) -> float:
    """Mean latency of `slower` over that of `faster` (a speed-up: > 1 when `faster` is
    faster) at `batch_size` (default: the table's first), or NaN when either is absent."""
    key = str(batch_size if batch_size is not None else table["batch_sizes"][0])
    rows = {row["model"]: row["latency"] for row in table["rows"]}
    names = [parse_model_name(slower).name, parse_model_name(faster).name]
    if any(name not in rows or key not in rows[name] for name in names):
        return math.nan
    return rows[names[0]][key]["mean_ms"] / rows[names[1]][key]["mean_ms"]


# ------------------------------------------------------------------ lower precision


def with_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of `model` (an Encoder or pretrainer of this package) built under the Keras
    dtype policy `policy` (e.g. "mixed_bfloat16": bfloat16 compute, float32 weights),
    holding the same weights."""
    with dtype_policy(policy):
        twin = type(model).from_config(model.get_config())
    weights = model.get_weights()
    shapes = [w.shape for w in weights], [tuple(v.shape) for v in twin.weights]
    if shapes[0] != shapes[1]:
        raise ValueError(f"{model.name}: the copy under {policy!r} has other weights")
    twin.set_weights(weights)
    return twin


def masked_sentences(token_ids: Sequence[Sequence[int]], special: SpecialIds,
                     vocab_size: int, seq_len: int = 128, seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """One row per tokenized sentence, ``[CLS] tokens [SEP]`` (cut to `seq_len`, padded),
    masked as ELECTRA pretraining masks (15%, 85% of them [MASK]; electra_tf.masking):
    the pretraining features as numpy arrays."""
    check_shape(len(token_ids), seq_len)
    if seq_len < 3:
        raise ValueError(f"sequence length must be >= 3 for [CLS] x [SEP], got {seq_len}")
    ids = np.full((len(token_ids), seq_len), special.pad, np.int32)
    for row, tokens in enumerate(token_ids):
        tokens = [special.cls] + list(tokens)[:seq_len - 2] + [special.sep]
        ids[row, :len(tokens)] = tokens
    features = {"input_ids": ids, "input_mask": (ids != special.pad).astype(np.int32),
                "segment_ids": np.zeros_like(ids)}
    config = MaskingConfig(special, vocab_size, max_predictions_per_seq(0.15, seq_len))
    masked = mask_batch(features, config, tf.constant([seed, 0], tf.int32))
    return {name: value.numpy() for name, value in masked.items()}


def _float32(tensor) -> np.ndarray:
    return np.asarray(tf.cast(tensor, tf.float32))


def _generator_logits(model: ElectraPretrainer, inputs: dict) -> np.ndarray:
    """The generator's MLM logits at the masked positions."""
    return _float32(model.generator_logits({name: inputs[name] for name in ENCODER_INPUTS},
                                           inputs["masked_lm_positions"], training=False))


def _discriminator_outputs(model: ElectraPretrainer, inputs: dict, fake_ids) -> tuple:
    """(hidden states, replaced-token logits) of the discriminator on `fake_ids`."""
    encoder_inputs = {name: inputs[name] for name in ENCODER_INPUTS}
    hidden = model.discriminator(dict(encoder_inputs, input_ids=fake_ids),
                                 training=False)["sequence_output"]
    return _float32(hidden), _float32(model.discriminator_head(hidden))


def precision_agreement(pretrainer: keras.Model, features: dict[str, np.ndarray],
                        policy: str = "mixed_bfloat16", batch_size: int = 32,
                        seed: int = 0) -> dict[str, Any]:
    """How far an ELECTRA pretrainer's outputs under `policy` are from its float32 ones.

    `features` are masked pretraining features (:func:`masked_sentences`). Compared:
    the generator's MLM logits at the masked positions (and its predictions, the
    argmax); then, on the same corrupted input for both (the masked positions replaced
    by Gumbel-max samples of the float32 generator, as pretraining corrupts them), the
    discriminator's hidden states and its replaced-token logits (prediction: logit > 0)
    at the real tokens. Returns a JSON-able dict: sentences, tokens (real ones),
    masked, and for "mlm" / "rtd" / "hidden": max_abs_diff, max_abs (the float32
    values' largest magnitude, for scale), and for mlm / rtd agreement (the share of
    identical predictions) and accuracy {"float32": ..., policy: ...} against the
    original tokens / the true replaced labels.
    """
    if not isinstance(pretrainer, ElectraPretrainer):
        raise TypeError(f"precision_agreement needs an ELECTRA (or ALE) pretrainer, got "
                        f"{type(pretrainer).__name__}")
    twin = with_policy(pretrainer, policy)
    rng = np.random.default_rng(seed)
    sums = {"mlm": [0.0, 0.0, 0, 0, 0, 0], "rtd": [0.0, 0.0, 0, 0, 0, 0]}
    hidden_diff = hidden_max = 0.0
    total = len(features["input_ids"])
    for start in range(0, total, batch_size):
        chunk = {k: v[start:start + batch_size] for k, v in features.items()}
        weights = chunk["masked_lm_weights"] > 0
        real = chunk["input_mask"] > 0
        logits = _generator_logits(pretrainer, chunk)
        # Gumbel-max: a sample of the float32 generator, the same input for both.
        gumbel = -np.log(-np.log(rng.uniform(1e-9, 1.0, logits.shape)))
        sampled = np.where(weights, np.argmax(logits + gumbel, -1), chunk["masked_lm_ids"])
        fake = chunk["input_ids"].copy()
        np.put_along_axis(fake, chunk["masked_lm_positions"], sampled.astype(np.int32), 1)
        original = chunk["input_ids"].copy()
        np.put_along_axis(original, chunk["masked_lm_positions"], chunk["masked_lm_ids"], 1)
        replaced = fake != original
        ours = (logits, *_discriminator_outputs(pretrainer, chunk, fake))
        theirs = (_generator_logits(twin, chunk), *_discriminator_outputs(twin, chunk, fake))
        for key, a, b, where, truth, predict in (
                ("mlm", ours[0], theirs[0], weights, chunk["masked_lm_ids"],
                 lambda x: np.argmax(x, -1)),
                ("rtd", ours[2], theirs[2], real, replaced, lambda x: x > 0)):
            pa, pb = predict(a), predict(b)
            s = sums[key]
            s[0] = max(s[0], float(np.abs(a - b)[where].max(initial=0.0)))
            s[1] = max(s[1], float(np.abs(a)[where].max(initial=0.0)))
            s[2] += int((pa == pb)[where].sum())
            s[3] += int(where.sum())
            s[4] += int((pa == truth)[where].sum())
            s[5] += int((pb == truth)[where].sum())
        hidden_diff = max(hidden_diff, float(np.abs(ours[1] - theirs[1])[real].max()))
        hidden_max = max(hidden_max, float(np.abs(ours[1])[real].max()))
    result = {"policy": policy, "sentences": total,
              "tokens": int(features["input_mask"].sum()),
              "masked": int((features["masked_lm_weights"] > 0).sum()),
              "hidden": {"max_abs_diff": hidden_diff, "max_abs": hidden_max}}
    for key, (diff, scale, same, count, right_a, right_b) in sums.items():
        result[key] = {"max_abs_diff": diff, "max_abs": scale,
                       "agreement": same / count if count else math.nan,
                       "accuracy": {"float32": right_a / count if count else math.nan,
                                    policy: right_b / count if count else math.nan}}
    return result
