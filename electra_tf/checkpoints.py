"""Checkpoint interop: original TF1 checkpoints and Hugging Face weights, both ways.

Every variable of a model gets one *original name* — the name the original
ELECTRA/BERT TF1 code gives it (``electra/encoder/layer_3/attention/self/query/kernel``,
``generator_predictions/output_bias``, ``cls/predictions/transform/dense/kernel``) —
found by walking the model's layers, not its variable paths. Hugging Face names follow
from the original names by the same rules ``transformers`` uses (``layer_3`` ->
``layer.3``, ``kernel`` -> transposed ``weight``, ``gamma``/``beta`` -> ``weight``/``bias``).

Layouts:

* TF1: one name-keyed checkpoint (``model.ckpt-N.index`` + data), read with
  ``tf.train.load_checkpoint``; optimizer slots and ``global_step`` are skipped.
* Hugging Face: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``).
  An ELECTRA pretrainer is two models, as Google published them:
  ``<dir>/discriminator`` (ElectraForPreTraining) and ``<dir>/generator``
  (ElectraForMaskedLM). An encoder is an ElectraModel / BertModel, a BERT pretrainer a
  BertForMaskedLM.
* ALE's shared layers are ``layer_<group>`` in TF1 names; Hugging Face has no sharing,
  so the export repeats each group's weights in every layer that runs it (the HF model
  computes the same function), and the import checks those copies are equal.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import posixpath
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from electra_tf import files
from electra_tf.configs import ModelConfig, get_config
from electra_tf.modeling import BertPretrainer, ElectraPretrainer, Encoder, build_pretrainer
from electra_tf.tokenization import load_vocab

# keras-hub TransformerEncoder weight (path suffix) -> original name inside layer_<i>.
_LAYER_NAMES = {
    "self_attention_layer/query/kernel": "attention/self/query/kernel",
    "self_attention_layer/query/bias": "attention/self/query/bias",
    "self_attention_layer/key/kernel": "attention/self/key/kernel",
    "self_attention_layer/key/bias": "attention/self/key/bias",
    "self_attention_layer/value/kernel": "attention/self/value/kernel",
    "self_attention_layer/value/bias": "attention/self/value/bias",
    "self_attention_layer/attention_output/kernel": "attention/output/dense/kernel",
    "self_attention_layer/attention_output/bias": "attention/output/dense/bias",
    "self_attention_layer_norm/gamma": "attention/output/LayerNorm/gamma",
    "self_attention_layer_norm/beta": "attention/output/LayerNorm/beta",
    "feedforward_intermediate_dense/kernel": "intermediate/dense/kernel",
    "feedforward_intermediate_dense/bias": "intermediate/dense/bias",
    "feedforward_output_dense/kernel": "output/dense/kernel",
    "feedforward_output_dense/bias": "output/dense/bias",
    "feedforward_layer_norm/gamma": "output/LayerNorm/gamma",
    "feedforward_layer_norm/beta": "output/LayerNorm/beta",
}
_EMBEDDING_NAMES = {
    "word_embeddings/embeddings": "word_embeddings",
    "position_embeddings/embeddings": "position_embeddings",
    "token_type_embeddings/embeddings": "token_type_embeddings",
    "LayerNorm/gamma": "LayerNorm/gamma",
    "LayerNorm/beta": "LayerNorm/beta",
}
_ELECTRA_MLM_NAMES = {
    "dense/kernel": "dense/kernel", "dense/bias": "dense/bias",
    "LayerNorm/gamma": "LayerNorm/gamma", "LayerNorm/beta": "LayerNorm/beta",
    "output_bias": "output_bias",
}
_BERT_MLM_NAMES = {
    "dense/kernel": "transform/dense/kernel", "dense/bias": "transform/dense/bias",
    "LayerNorm/gamma": "transform/LayerNorm/gamma", "LayerNorm/beta": "transform/LayerNorm/beta",
    "output_bias": "output_bias",
}
_RTD_NAMES = {"dense/kernel": "dense/kernel", "dense/bias": "dense/bias",
              "dense_1/kernel": "dense_1/kernel", "dense_1/bias": "dense_1/bias"}
HEAD_SCOPES = ("generator_predictions", "discriminator_predictions", "cls")

# In original checkpoints but with no counterpart here: optimizer state, BERT's pooler
# and next-sentence head.
_BOOKKEEPING = re.compile(r"(^|/)(global_step|adam_[mv]|Adam(_\d+)?|beta[12]_power|"
                          r"Momentum|ExponentialMovingAverage)$")
_NO_COUNTERPART = re.compile(r"^(bert|electra)/pooler/|^cls/seq_relationship/")

HF_ACTS = {"gelu_approximate": "gelu_new", "gelu": "gelu", "relu": "relu"}
_FROM_HF_ACTS = {"gelu": "gelu", "gelu_new": "gelu_approximate",
                 "gelu_pytorch_tanh": "gelu_approximate", "gelu_fast": "gelu_approximate",
                 "relu": "relu"}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or misshapen variables."""


@dataclasses.dataclass
class Slot:
    """One model variable and its original name.

    ``depths`` lists the layer indices a shared transformer layer runs at (ALE), so the
    Hugging Face layout can repeat it; None for everything else.
    """

    variable: keras.Variable
    name: str
    depths: tuple[int, ...] | None = None

    @property
    def is_head(self) -> bool:
        return self.name.split("/", 1)[0] in HEAD_SCOPES


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did, for the CLI's summary and for tests."""

    assigned: list[str] = dataclasses.field(default_factory=list)
    missing_heads: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f"assigned {len(self.assigned)} variables"]
        if self.missing_heads:
            lines.append(f"left {len(self.missing_heads)} head variables at their "
                         f"initialization (--allow_missing): {', '.join(self.missing_heads)}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} checkpoint entries with no "
                         f"counterpart here (optimizer state, pooler, NSP head, parts "
                         f"this model does not have)")
        lines.extend(self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- names


def _match(layer, table: Mapping[str, str], prefix: str, skip: Iterable = ()) -> list[Slot]:
    skip_ids = {id(v) for v in skip}
    slots = []
    for variable in layer.weights:
        if id(variable) in skip_ids:
            continue
        suffixes = [s for s in table if variable.path == s or variable.path.endswith("/" + s)]
        if len(suffixes) != 1:
            raise RuntimeError(f"cannot name variable {variable.path} of {layer.name}")
        slots.append(Slot(variable, f"{prefix}/{table[suffixes[0]]}"))
    return slots


def _encoder_slots(encoder: Encoder, scope: str, embeddings_scope: str | None = None,
                   include_embeddings: bool = True) -> list[Slot]:
    slots = []
    if include_embeddings:
        slots += _match(encoder.embeddings, _EMBEDDING_NAMES,
                        f"{embeddings_scope or scope}/embeddings")
    stack = encoder.transformer
    if stack.embeddings_project is not None:
        slots += _match(stack.embeddings_project, {"kernel": "kernel", "bias": "bias"},
                        f"{scope}/embeddings_project")
    for group, layer in enumerate(stack.transformer_layers):
        depths = tuple(d for d in range(stack.num_hidden_layers) if stack.layer_for(d) is layer)
        for slot in _match(layer, _LAYER_NAMES, f"{scope}/encoder/layer_{group}"):
            slot.depths = depths
            slots.append(slot)
    return slots


def model_slots(model: keras.Model) -> list[Slot]:
    """All variables of `model` with their original names, each exactly once."""
    if isinstance(model, ElectraPretrainer):
        tied = model.generator.embeddings is model.discriminator.embeddings
        slots = _encoder_slots(model.discriminator, "electra")
        slots += _encoder_slots(model.generator, "generator", include_embeddings=not tied)
        slots += _match(model.generator_head, _ELECTRA_MLM_NAMES, "generator_predictions",
                        skip=model.generator_head.token_embedding.weights)
        slots += _match(model.discriminator_head, _RTD_NAMES, "discriminator_predictions")
    elif isinstance(model, BertPretrainer):
        slots = _encoder_slots(model.encoder, "bert")
        slots += _match(model.mlm_head, _BERT_MLM_NAMES, "cls/predictions",
                        skip=model.mlm_head.token_embedding.weights)
    elif isinstance(model, Encoder):
        slots = _encoder_slots(model, _scope(model.model_config))
    else:
        raise TypeError(f"cannot convert a {type(model).__name__}; expected an Encoder, "
                        f"BertPretrainer or ElectraPretrainer")
    names = [s.name for s in slots]
    assert len(names) == len(set(names)), "two variables share an original name"
    if {id(s.variable) for s in slots} != {id(w) for w in model.weights}:
        raise RuntimeError("internal: the name table does not cover the model's variables")
    return slots


def _scope(config: ModelConfig) -> str:
    return "bert" if config.model_type == "bert" else "electra"


def _model_kind(model: keras.Model) -> str:
    if isinstance(model, ElectraPretrainer):
        return "electra_pretrainer"
    if isinstance(model, BertPretrainer):
        return "bert_pretrainer"
    return "encoder"


def _to_model_layout(array: np.ndarray, variable, name: str, source_shape=None) -> np.ndarray:
    """Reshape an original-layout array (2-D kernels) to the variable's shape."""
    shape = tuple(variable.shape)
    if int(np.prod(array.shape)) != int(np.prod(shape)) or (
            array.ndim == len(shape) and array.shape != shape):
        raise CheckpointMismatchError(
            f"shape mismatch for {name}: checkpoint has {tuple(source_shape or array.shape)}, "
            f"the model expects {shape} (check --model_size / overrides)")
    return array.reshape(shape)


def _original_layout(slot: Slot) -> np.ndarray:
    """The variable's value in the original layout (attention kernels as 2-D)."""
    value = keras.ops.convert_to_numpy(slot.variable)
    if slot.name.endswith("/kernel") and value.ndim == 3:
        if "attention/output" in slot.name:  # (heads, head_size, hidden)
            return value.reshape(-1, value.shape[-1])
        return value.reshape(value.shape[0], -1)  # (hidden, heads, head_size)
    if slot.name.endswith("/bias") and value.ndim == 2:
        return value.reshape(-1)
    return value


def _assign(slot: Slot, array: np.ndarray, source_name: str, source_shape=None) -> None:
    value = _to_model_layout(np.asarray(array), slot.variable, source_name, source_shape)
    slot.variable.assign(value.astype(slot.variable.dtype))


def _progress(items, desc: str, quiet: bool):
    if quiet:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit="var", leave=False)


# --------------------------------------------------------------------------- TF1


_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', re.M)


def _state_file_prefix(directory: str) -> str | None:
    """The prefix a directory's ``checkpoint`` state file names (relative names resolved
    against `directory`), or None when there is no readable state file."""
    state = files.join(directory, "checkpoint")
    if not files.isfile(state):
        return None
    try:
        match = _STATE_LINE.search(files.read_text(state))
    except (OSError, ValueError):
        return None
    if not match:
        return None
    # A text-format proto string: C escapes, non-ASCII bytes as octal escapes.
    name = codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8", "replace")
    if os.path.isabs(name) or not files.is_local(name):
        return name
    return files.join(directory, name)


def _checkpoint_prefix(path: str) -> str:
    if path.endswith(".index"):
        path = path[:-len(".index")]
    if files.exists(path + ".index"):
        return path
    if files.isdir(path):
        latest = _state_file_prefix(path)
        if latest is None or not files.exists(latest + ".index"):
            # No usable 'checkpoint' file (or one pointing elsewhere): the newest index.
            indexes = [f[:-len(".index")] for f in files.listdir(path) if f.endswith(".index")]
            if not indexes:
                raise FileNotFoundError(f"{path}: no TF checkpoint in this directory (no "
                                        f"*.index file)")
            step = lambda name: int(m.group(1)) if (m := re.search(r"-(\d+)$", name)) else -1  # noqa: E731
            latest = files.join(path, max(indexes, key=lambda n: (step(n), n)))
        return latest
    raise FileNotFoundError(f"{path}: not a TF checkpoint prefix ({path}.index not found)")


def _checkpoint_reader(prefix: str):
    """A name-keyed reader of checkpoint `prefix`; an unreadable one is a ValueError naming
    it. (``tf.train.load_checkpoint`` would first ask whether `prefix` is a directory, which
    object stores answer yes for any prefix of a file name.)"""
    try:
        return tf.compat.v1.train.NewCheckpointReader(prefix)
    except tf.errors.OpError as e:
        detail = (e.message or "").strip().splitlines()
        raise ValueError(f"{prefix}: not a readable TF checkpoint"
                         + (f" ({detail[0]})" if detail else " (corrupt .index file?)")) from None


def load_tf1_checkpoint(model: keras.Model, path: str, allow_missing: bool = False,
                        quiet: bool = True) -> ConversionReport:
    """Assign `model`'s variables from an original-layout TF1 checkpoint.

    `path` is a checkpoint prefix (``.../model.ckpt-1000000``) or a directory. Every
    model variable is assigned exactly once. Missing variables, variables under the
    model's scopes that it has no place for, and shape mismatches raise
    :class:`CheckpointMismatchError` listing the names; ``allow_missing`` lets head
    variables (``*_predictions``, ``cls/``) keep their initialization.
    """
    prefix = _checkpoint_prefix(path)
    reader = _checkpoint_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    slots = model_slots(model)
    report = ConversionReport()
    wanted = {s.name: s for s in slots}
    owned_scopes = {name.split("/", 1)[0] for name in wanted}

    missing = sorted(n for n in wanted if n not in shapes)
    blocking = [n for n in missing if not (allow_missing and wanted[n].is_head)]
    unexpected = []
    for name in sorted(shapes):
        if name in wanted:
            continue
        if _BOOKKEEPING.search(name) or _NO_COUNTERPART.search(name):
            report.skipped.append(name)
        elif name.split("/", 1)[0] in owned_scopes:
            unexpected.append(name)
        else:
            report.skipped.append(name)  # e.g. the generator when loading an encoder
    if blocking or unexpected:
        problems = []
        if blocking:
            problems.append(f"missing from {prefix}: {', '.join(blocking)}"
                            + ("" if allow_missing or not any(wanted[n].is_head for n in blocking)
                               else " (head variables can be left out with --allow_missing)"))
        if unexpected:
            problems.append(f"in {prefix} but not in the model (a different architecture?): "
                            f"{', '.join(unexpected)}")
        raise CheckpointMismatchError("; ".join(problems))
    mismatched = []
    for slot in slots:
        size = int(np.prod(slot.variable.shape))
        if slot.name in shapes and int(np.prod(shapes[slot.name])) != size:
            mismatched.append(f"{slot.name} {tuple(shapes[slot.name])} vs model "
                              f"{tuple(slot.variable.shape)}")
    if mismatched:
        raise CheckpointMismatchError(f"shape mismatch between {prefix} and the model: "
                                      + "; ".join(mismatched))
    arrays = {}
    for slot in _progress(slots, "reading tf1", quiet):
        if slot.name in shapes:
            try:
                arrays[slot.name] = reader.get_tensor(slot.name)
            except tf.errors.OpError as e:
                raise CheckpointMismatchError(f"{prefix}: cannot read {slot.name} "
                                              f"({e.message})") from None
    for slot in slots:  # assign only once everything was read: never half-loaded
        if slot.name in arrays:
            _assign(slot, arrays[slot.name], slot.name)
            report.assigned.append(slot.name)
        else:
            report.missing_heads.append(slot.name)
    return report


CONFIG_FILE = "electra_tf_config.json"


def _basename(path: str) -> str:
    return os.path.basename(path) if files.is_local(path) else posixpath.basename(path)


def save_tf1_checkpoint(model: keras.Model, prefix: str, quiet: bool = True) -> ConversionReport:
    """Write `model` as an original-layout, name-keyed TF1 checkpoint at `prefix`.

    The original code (and :func:`load_tf1_checkpoint`) can read it. Written under a
    temporary prefix and renamed when complete.
    """
    slots = model_slots(model)
    report = ConversionReport()
    directory = files.parent(prefix)
    name = _basename(prefix)
    tmp = files.join(directory, f".tmp-{name}-{os.getpid()}")
    files.makedirs(tmp)
    try:
        names, tensors = [], []
        for slot in _progress(slots, "keras -> tf1", quiet):
            names.append(slot.name)
            tensors.append(tf.constant(_original_layout(slot)))
            report.assigned.append(slot.name)
        tmp_prefix = files.join(tmp, "ckpt")
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
        # The data first, the .index (what readers look for) last.
        produced = sorted(files.listdir(tmp), key=lambda f: (f.endswith(".index"), f))
        for part in produced:
            files.rename(files.join(tmp, part), prefix + part[len("ckpt"):])
    finally:
        files.rmtree(tmp)
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')  # a text-format proto string
    files.atomic_write(files.join(directory, "checkpoint"),
                       f'model_checkpoint_path: "{quoted}"\n')
    # The original layout has no config; this lets the import rebuild the exact model
    # (ALE sharing and head counts are not visible in the shapes).
    files.atomic_write(files.join(directory, CONFIG_FILE), model.model_config.to_json())
    return report


def config_from_tf1(path: str, model_type: str | None = None) -> ModelConfig:
    """The config of a TF1 checkpoint: from ``electra_tf_config.json`` beside it when this
    package wrote it, else inferred from the shapes with heads = hidden // 64 (the
    original's sizes). Sharing (ALE) cannot be inferred: pass --model_size / overrides.
    """
    prefix = _checkpoint_prefix(path)
    saved = files.join(files.parent(prefix), CONFIG_FILE)
    if files.isfile(saved):
        return ModelConfig.from_dict(files.read_json(saved))
    shapes = _checkpoint_reader(prefix).get_variable_to_shape_map()
    scope = "bert" if "bert/embeddings/word_embeddings" in shapes else "electra"
    if f"{scope}/embeddings/word_embeddings" not in shapes:
        raise CheckpointMismatchError(f"{path}: no bert/ or electra/ embeddings; not an "
                                      f"original BERT/ELECTRA checkpoint")
    model_type = model_type or ("bert" if scope == "bert" else "electra")
    vocab, embedding = shapes[f"{scope}/embeddings/word_embeddings"]

    def stack(prefix):
        layers = {int(m.group(1)) for n in shapes
                  for m in [re.match(rf"{prefix}/encoder/layer_(\d+)/", n)] if m}
        if not layers:
            return None
        hidden = shapes[f"{prefix}/encoder/layer_0/attention/self/query/kernel"][1]
        inter = shapes[f"{prefix}/encoder/layer_0/intermediate/dense/kernel"][1]
        return max(layers) + 1, hidden, inter

    layers, hidden, inter = stack(scope)
    values = dict(
        vocab_size=vocab, embedding_size=embedding, hidden_size=hidden,
        num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
        intermediate_size=inter,
        max_position_embeddings=shapes[f"{scope}/embeddings/position_embeddings"][0],
        type_vocab_size=shapes[f"{scope}/embeddings/token_type_embeddings"][0])
    generator = stack("generator")
    if generator and model_type != "bert":
        values["generator_hidden_size"] = generator[1] / hidden
        values["generator_layers"] = generator[0] / layers
        values["untied_generator_embeddings"] = "generator/embeddings/word_embeddings" in shapes
    return dataclasses.replace(get_config(model_type, "base"), size="from-checkpoint",
                               num_layer_groups=None, **values)


# --------------------------------------------------------------------------- Hugging Face


def _hf_name(original: str, depth: int | None = None) -> tuple[str, bool]:
    """Hugging Face name (inside one HF model, without its base prefix) of an original
    name, and whether the value is a transposed kernel."""
    name = original.split("/", 1)[1] if original.split("/", 1)[0] in (
        "electra", "generator", "bert") else original
    name = name.replace("discriminator_predictions/dense_1/", "discriminator_predictions/"
                        "dense_prediction/")
    name = name.replace("generator_predictions/output_bias", "generator_lm_head/bias")
    name = name.replace("cls/predictions/output_bias", "cls/predictions/bias")
    if depth is not None:
        name = re.sub(r"layer_\d+/", f"layer_{depth}/", name)
    parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in name.split("/")]
    last = parts[-1]
    transposed = last == "kernel"
    if last in ("kernel", "gamma"):
        parts[-1] = "weight"
    elif last == "beta":
        parts[-1] = "bias"
    elif last.endswith("_embeddings"):
        parts.append("weight")
    return ".".join(parts), transposed


def _hf_models(model: keras.Model) -> dict[str, dict]:
    """The Hugging Face models `model` becomes: {subdir: {architecture, prefix, role}}."""
    config = model.model_config
    if isinstance(model, ElectraPretrainer):
        return {"discriminator": dict(architecture="ElectraForPreTraining", prefix="electra.",
                                      role="discriminator"),
                "generator": dict(architecture="ElectraForMaskedLM", prefix="electra.",
                                  role="generator")}
    if isinstance(model, BertPretrainer):
        return {"": dict(architecture="BertForMaskedLM", prefix="bert.", role="bert")}
    architecture = "BertModel" if config.model_type == "bert" else "ElectraModel"
    return {"": dict(architecture=architecture, prefix="", role="encoder")}


def _slot_role(slot: Slot, kind: str, tied: bool = True) -> tuple[str, ...]:
    """Which of the exported HF models hold this slot (first: the one to read from)."""
    if kind != "electra_pretrainer":
        return ("",)
    if slot.name.split("/", 1)[0] in ("generator", "generator_predictions"):
        return ("generator",)
    if tied and slot.name.startswith("electra/embeddings/"):
        # The shared module: each HF model carries a copy.
        return ("discriminator", "generator")
    return ("discriminator",)


def _tied(model: keras.Model) -> bool:
    return isinstance(model, ElectraPretrainer) and \
        model.generator.embeddings is model.discriminator.embeddings


def hf_config(model: keras.Model, role: str, architecture: str) -> dict:
    """config.json for one exported Hugging Face model."""
    config = model.model_config
    part = config.generator_config() if role == "generator" else config
    if config.model_type == "bert" and part.embedding_size != part.hidden_size:
        raise ValueError("a BERT with a factorized embedding has no Hugging Face BertModel "
                         "counterpart (embedding_size must equal hidden_size)")
    hf = dict(
        architectures=[architecture], model_type="bert" if config.model_type == "bert"
        else "electra",
        vocab_size=part.vocab_size, hidden_size=part.hidden_size,
        num_hidden_layers=part.num_hidden_layers, num_attention_heads=part.num_attention_heads,
        intermediate_size=part.intermediate_size, hidden_act=HF_ACTS[part.hidden_act],
        hidden_dropout_prob=part.dropout_rate, attention_probs_dropout_prob=part.dropout_rate,
        max_position_embeddings=part.max_position_embeddings,
        type_vocab_size=part.type_vocab_size, initializer_range=part.initializer_range,
        layer_norm_eps=part.layer_norm_epsilon, pad_token_id=0,
        position_embedding_type="absolute", tie_word_embeddings=True,
        # Lets this package re-import the exact config (ALE sharing, GELU form, sizes).
        electra_tf=dict(config=config.to_dict(), role=role),
    )
    if config.model_type != "bert":
        hf["embedding_size"] = part.embedding_size
    return hf


# The files transformers' AutoTokenizer reads, beside config.json.
HF_TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_EXPORT_FILES = frozenset({"config.json", "model.safetensors", *HF_TOKENIZER_FILES})
_SPECIAL_TOKEN_KEYS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                       "cls_token": "[CLS]", "mask_token": "[MASK]"}


@dataclasses.dataclass(frozen=True)
class VocabForExport:
    """The WordPiece vocab an export carries, and whether its tokenizer lower-cases."""

    path: str
    tokens: tuple[str, ...]
    do_lower_case: bool
    casing_source: str  # "flag", "tokenizer_config.json" or "vocab"


def vocab_is_uncased(tokens: Iterable[str]) -> bool:
    """True when lower-casing changes no token but the bracketed specials ([CLS],
    [unused7]): what an uncased (lower-casing) WordPiece vocab looks like. (Letters such
    as "ℝ" count as upper case but have no lower case; BERT's uncased vocab holds them.)"""
    return all(token == token.lower() for token in tokens
               if not (token.startswith("[") and token.endswith("]")))


def read_vocab_for_export(vocab_file: str, do_lower_case: bool | None = None
                          ) -> VocabForExport:
    """The vocab at `vocab_file`, checked as :func:`electra_tf.tokenization.load_vocab`
    checks it, with its casing: `do_lower_case` when given, else a ``tokenizer_config.json``
    beside the vocab (a Hugging Face folder's), else :func:`vocab_is_uncased`."""
    if not files.isfile(vocab_file):
        raise FileNotFoundError(f"{vocab_file}: no such vocab file")
    tokens = load_vocab(vocab_file)  # through electra_tf.files: local or remote
    source = "flag"
    if do_lower_case is None:
        beside = files.join(files.parent(vocab_file), "tokenizer_config.json")
        saved = files.read_json(beside) if files.isfile(beside) else None
        if isinstance(saved, dict) and isinstance(saved.get("do_lower_case"), bool):
            do_lower_case, source = saved["do_lower_case"], "tokenizer_config.json"
        else:
            do_lower_case, source = vocab_is_uncased(tokens), "vocab"
    return VocabForExport(vocab_file, tuple(tokens), do_lower_case, source)


def hf_tokenizer_files(vocab: VocabForExport, config: ModelConfig) -> dict[str, str]:
    """vocab.txt, tokenizer_config.json and special_tokens_map.json for one exported model,
    so ``AutoTokenizer.from_pretrained`` gives the tokenizer of
    :class:`electra_tf.tokenization.WordPieceTokenizer` (BERT's basic tokenization and
    WordPiece; accents stripped when lower-casing, as in the original)."""
    tokenizer_class = "BertTokenizer" if config.model_type == "bert" else "ElectraTokenizer"
    tokenizer_config = dict(
        _SPECIAL_TOKEN_KEYS, tokenizer_class=tokenizer_class,
        do_lower_case=vocab.do_lower_case, strip_accents=None, tokenize_chinese_chars=True,
        do_basic_tokenize=True, model_max_length=config.max_position_embeddings,
        clean_up_tokenization_spaces=True)
    return {
        "vocab.txt": "".join(token + "\n" for token in vocab.tokens),
        "tokenizer_config.json": files.json_text(tokenizer_config),
        "special_tokens_map.json": files.json_text(_SPECIAL_TOKEN_KEYS),
    }


def save_hf(model: keras.Model, directory: str, quiet: bool = True,
            vocab_file: str | None = None, do_lower_case: bool | None = None
            ) -> ConversionReport:
    """Export `model` as Hugging Face model folder(s) (config.json + model.safetensors).

    Encoder -> ElectraModel / BertModel; BertPretrainer -> BertForMaskedLM;
    ElectraPretrainer -> ``discriminator/`` (ElectraForPreTraining) and ``generator/``
    (ElectraForMaskedLM). With `vocab_file`, every folder also gets the tokenizer
    (:func:`hf_tokenizer_files`; `do_lower_case` as in :func:`read_vocab_for_export`).

    `directory` may be local or remote (``gs://``). Locally the export is written in a
    temporary folder that replaces `directory` whole when complete. On object stores,
    which cannot rename folders, the earlier export is deleted and each file written whole,
    each folder's ``config.json`` (what makes it a model folder) last.
    """
    from safetensors.numpy import save as safetensors_bytes

    kind = _model_kind(model)
    models = _hf_models(model)
    config = model.model_config
    vocab = read_vocab_for_export(vocab_file, do_lower_case) if vocab_file else None
    if vocab is not None and len(vocab.tokens) > config.vocab_size:
        raise ValueError(f"{vocab_file}: {len(vocab.tokens)} tokens, but the model has only "
                         f"{config.vocab_size} embeddings (not this model's vocab?)")
    _check_destination(directory)
    report = ConversionReport()
    tensors = _hf_tensors(model, models, report, quiet)
    if kind == "electra_pretrainer" and config.hidden_act != "gelu":
        report.notes.append(
            f"note: Hugging Face's ElectraForMaskedLM always uses exact GELU in its "
            f"generator head; this model's head uses {config.hidden_act!r}, so the exported "
            f"generator's logits differ slightly (the discriminator is exact)")
    if config.num_groups != config.num_hidden_layers:
        report.notes.append(f"note: Hugging Face has no cross-layer sharing; each of the "
                            f"{config.num_groups} shared layer group(s) is repeated in the "
                            f"layers that run it")
    outputs: dict[str, bytes | str] = {}  # path inside `directory` -> content
    for sub, spec in models.items():
        part = config.generator_config() if spec["role"] == "generator" else config
        folder = f"{sub}/" if sub else ""
        outputs[folder + "model.safetensors"] = safetensors_bytes(
            tensors.pop(sub), metadata={"format": "pt"})
        if vocab is not None:
            for name, text in hf_tokenizer_files(vocab, part).items():
                outputs[folder + name] = text
        outputs[folder + "config.json"] = files.json_text(
            hf_config(model, spec["role"], spec["architecture"]))
    if vocab is not None:
        report.notes.append(
            f"tokenizer: {vocab.path} ({len(vocab.tokens)} tokens), do_lower_case="
            f"{vocab.do_lower_case} (from the {vocab.casing_source})")
    _write_export(outputs, directory)
    return report


def _hf_tensors(model: keras.Model, models: Mapping[str, dict], report: ConversionReport,
                quiet: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """{sub-folder: {Hugging Face name: array}} of `model`'s variables, for the HF
    models `models` (see :func:`_hf_models`)."""
    kind = _model_kind(model)
    tensors: dict[str, dict[str, np.ndarray]] = {sub: {} for sub in models}
    for slot in _progress(model_slots(model), "keras -> hf", quiet):
        value = _original_layout(slot)
        for sub in _slot_role(slot, kind, _tied(model)):
            for depth in slot.depths or (None,):
                name, transposed = _hf_name(slot.name, depth)
                tensors[sub][models[sub]["prefix"] * (not slot.is_head) + name] = \
                    np.ascontiguousarray(value.T if transposed else value)
        report.assigned.append(slot.name)
    return tensors


# --------------------------------------------------------------------------- finetuned


_HF_TASK_CLASSES = {"classification": "ForSequenceClassification",
                    "regression": "ForSequenceClassification",
                    "tagging": "ForTokenClassification",
                    "multiple_choice": "ForMultipleChoice"}
# tanh(z) = z (1 - z^2 / 3 + ...): |z| <= this keeps the relative error under 1e-7.
_TANH_LINEAR = 5.4e-4


def _final_hidden_bound(encoder: keras.Model) -> np.ndarray:
    """A bound on |hidden_i| of the encoder's output, for every input: the last layer
    norm gives gamma_i * n_i + beta_i with |n_i| <= sqrt(hidden - 1)."""
    last = encoder.transformer.layer_for(encoder.model_config.num_hidden_layers - 1)
    norm = last._feedforward_layer_norm
    gamma = keras.ops.convert_to_numpy(norm.gamma).astype(np.float64)
    beta = keras.ops.convert_to_numpy(norm.beta).astype(np.float64)
    return np.abs(gamma) * np.sqrt(encoder.model_config.hidden_size - 1) + np.abs(beta)


def _through_activation(kernel: np.ndarray, bias: np.ndarray, activation: str,
                        bound: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Weights of a transformers head dense -> activation -> linear (hidden -> hidden ->
    labels) that computes this package's (the original's) linear head
    ``x @ kernel + bias``.

    GELU (ELECTRA's classification head), exactly: GELU(u) - GELU(-u) = u for every u,
    so the dense layer puts out u_j = x . k_j and -u_j for each label j, and the output
    layer takes their difference (needs 2 * labels <= hidden). tanh (BERT's pooler): the
    dense layer scales each u_j into tanh's linear range, |s_j u_j| <= 5.4e-4 given the
    encoder's output `bound` (relative error under 1e-7), and the output layer scales
    back (needs labels <= hidden).
    """
    hidden, labels = kernel.shape
    kernel, bias = kernel.astype(np.float64), bias.astype(np.float64)
    first_w, first_b = np.zeros((hidden, hidden)), np.zeros(hidden)
    out_w, out_b = np.zeros((hidden, labels)), bias
    if activation == "gelu":
        if 2 * labels > hidden:
            raise ValueError(f"{labels} labels: the export needs 2 * labels <= hidden "
                             f"({hidden})")
        first_w[:, :labels], first_w[:, labels:2 * labels] = kernel, -kernel
        out_w[:labels], out_w[labels:2 * labels] = np.eye(labels), -np.eye(labels)
    else:
        if labels > hidden:
            raise ValueError(f"{labels} labels: the export needs labels <= hidden ({hidden})")
        scale = _TANH_LINEAR / np.maximum(np.abs(kernel).T @ bound, 1e-12)
        first_w[:, :labels] = kernel * scale
        out_w[:labels] = np.diag(1.0 / scale)
    return {"first.weight": first_w.T, "first.bias": first_b,
            "out.weight": out_w.T, "out.bias": out_b}


def save_hf_finetuned(model: keras.Model, directory: str, quiet: bool = True
                      ) -> ConversionReport:
    """Export a finetuned model (:class:`electra_tf.finetuning.model.FinetuningModel`)
    as Hugging Face ``Electra``/``Bert`` ``ForSequenceClassification`` (classification,
    regression), ``ForTokenClassification`` (tagging; softmax heads) or
    ``ForMultipleChoice`` folder(s) with ``id2label`` and the tokenizer, so
    ``AutoTokenizer`` and ``AutoModelFor...`` load them as-is. One head: `directory`
    is that model; several: one sub-folder per task.

    The original's heads are one dense layer on the [CLS] vector. Some of transformers'
    heads have a hidden layer first (ELECTRA's sentence classification: dense + GELU;
    BERT's pooler: dense + tanh), which the export sets to pass that linear head through
    (see :func:`_through_activation`); the others map one to one. Regression outputs
    are in the task's label range. Token classification gives logits at every
    WordPiece: the package's tag for a word is the one at its first WordPiece.
    """
    from safetensors.numpy import save as safetensors_bytes

    encoder = model.encoder
    config = encoder.model_config
    heads = list(model.tasks)
    if model.use_crf and any(h.kind == "tagging" for h in heads):
        raise ValueError("a CRF tagging head has no transformers counterpart (its decoding "
                         "is a Viterbi search over tag transitions); export this model with "
                         "--format=saved_model, or finetune with --nouse_crf")
    preprocessing = model.preprocessing or {}
    if "vocab" not in preprocessing:
        raise ValueError("the model carries no vocab (finetuned before models kept their "
                         "tokenizer); it cannot be exported with a tokenizer")
    vocab = VocabForExport("the finetuned model's vocab", tuple(preprocessing["vocab"]),
                           bool(preprocessing["do_lower_case"]), "finetuned model")
    _check_destination(directory)
    report = ConversionReport()
    family = "Bert" if config.model_type == "bert" else "Electra"
    base = "bert." if family == "Bert" else "electra."
    encoder_state = _hf_tensors(encoder, {"": {"prefix": base}}, report, quiet)[""]
    bound = _final_hidden_bound(encoder)
    outputs: dict[str, bytes | str] = {}
    for head in heads:
        layer = model.heads[head.name]
        kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float64)
        bias = keras.ops.convert_to_numpy(layer.bias).astype(np.float64)
        if head.kind == "regression":  # the head learns (y - low) / (high - low)
            low, high = head.label_range or (0.0, 1.0)
            kernel, bias = kernel * (high - low), bias * (high - low) + low
        state = dict(encoder_state)
        architecture = family + _HF_TASK_CLASSES[head.kind]
        extra: dict = {"problem_type": "regression"} if head.kind == "regression" else {}
        # Where transformers puts a hidden layer before the output (BERT's pooler on
        # [CLS]; ELECTRA's sentence-classification head), it is set to pass the
        # original's linear head through exactly; elsewhere the layer maps one to one.
        hidden_layer = ({"first": "bert.pooler.dense", "out": "classifier"}
                        if family == "Bert" and head.kind != "tagging" else
                        {"first": "classifier.dense", "out": "classifier.out_proj"}
                        if head.kind in ("classification", "regression") else None)
        if hidden_layer:
            parts = _through_activation(kernel, bias, "tanh" if family == "Bert" else "gelu",
                                        bound)
            for key, value in parts.items():
                which, _, leaf = key.partition(".")
                state[f"{hidden_layer[which]}.{leaf}"] = value
        else:
            state["classifier.weight"], state["classifier.bias"] = kernel.T, bias
            if head.kind == "multiple_choice" and family == "Electra":
                # The summary is the plain [CLS] vector: no projection, no activation.
                extra.update(summary_type="first", summary_use_proj=False,
                             summary_activation="", summary_last_dropout=0.0)
        labels = head.labels if head.kind in ("classification", "tagging") else None
        hf = hf_config(encoder, "encoder", architecture)
        hf.update(num_labels=head.num_outputs if head.kind != "multiple_choice" else 1,
                  **extra)
        if labels is not None:
            hf["id2label"] = {str(i): label for i, label in enumerate(labels)}
            hf["label2id"] = {label: i for i, label in enumerate(labels)}
        hf["electra_tf"]["task"] = {"name": head.name, "kind": head.kind}
        folder = f"{head.name}/" if len(heads) > 1 else ""
        outputs[folder + "model.safetensors"] = safetensors_bytes(
            {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()},
            metadata={"format": "pt"})
        for name, text in hf_tokenizer_files(vocab, config).items():
            outputs[folder + name] = text
        outputs[folder + "config.json"] = files.json_text(hf)
        report.notes.append(f"{head.name}: {architecture}"
                            + (f" ({len(labels)} labels)" if labels else ""))
    _write_export(outputs, directory)
    return report


def _write_export(outputs: Mapping[str, bytes | str], directory: str) -> None:
    """Write `outputs` ({path inside the folder: content}) as folder `directory`, never
    leaving a half-written model folder under that name."""
    with tempfile.TemporaryDirectory(prefix="electra-tf-") as local:
        staged = os.path.join(local, "export")
        for inside, data in outputs.items():
            path = os.path.join(staged, *inside.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:  # a local staging file
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        files.publish_tree(staged, directory, last="config.json")


def _is_export(directory: str) -> bool:
    """Whether `directory` holds only exports of this package: model folders (itself,
    or sub-folders such as discriminator/ + generator/ or one per task) of our file
    names whose config.json says electra_tf. Remote, a folder may lack its config.json
    still: what an interrupted export left (its config.json is written last)."""
    inside = [p.split("/") for p in files.relative_files(directory)]
    if not inside or any(len(p) > 2 or p[-1] not in _EXPORT_FILES for p in inside):
        return False
    for folder in {tuple(p[:-1]) for p in inside}:
        config = files.join(directory, *folder, "config.json")
        if not files.isfile(config):
            if files.is_local(directory):
                return False  # local exports are renamed into place whole
            continue
        try:
            ours = files.read_json(config)
        except (OSError, ValueError):
            return False
        if not (isinstance(ours, dict) and "electra_tf" in ours):
            return False
    return True


def _check_destination(directory: str) -> None:
    """Only an empty folder or an earlier export of this package may be replaced."""
    files.check_replaceable(directory, _is_export, "an electra-tf export")


def read_hf_folder(directory: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(config.json, state dict as numpy) of one Hugging Face model folder."""
    config_path = files.join(directory, "config.json")
    if not files.isfile(config_path):
        raise FileNotFoundError(f"{directory}: no config.json (not a save_pretrained folder)")
    config = files.read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: not a JSON object")
    safetensors_path = files.join(directory, "model.safetensors")
    bin_path = files.join(directory, "pytorch_model.bin")
    if files.isfile(safetensors_path):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        with files.local_copy(safetensors_path) as local:
            try:
                state = load_file(local)
            except (SafetensorError, ValueError, TypeError) as e:
                raise ValueError(f"{safetensors_path}: not a readable safetensors file "
                                 f"({e})") from None
    elif files.isfile(bin_path):
        try:
            import torch
        except ImportError:
            raise ImportError(f"{bin_path}: reading PyTorch .bin weights needs torch "
                              f"(pip install -e '.[interop]')") from None
        with files.local_copy(bin_path) as local:  # torch reads local files only
            try:
                loaded = torch.load(local, map_location="cpu", weights_only=True)
            except Exception as e:  # zip, pickle and torch errors alike
                raise ValueError(f"{bin_path}: not a readable PyTorch state dict "
                                 f"({type(e).__name__}: {e})") from None
        if not isinstance(loaded, Mapping) or not all(
                isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ValueError(f"{bin_path}: not a state dict (name -> tensor)")
        state = {k: v.float().numpy() for k, v in loaded.items()}
    else:
        raise FileNotFoundError(f"{directory}: neither model.safetensors nor "
                                f"pytorch_model.bin (sharded checkpoints: merge them first)")
    # Older checkpoints name LayerNorm parameters gamma/beta.
    state = {re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight",
                    re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k)): v
             for k, v in state.items()}
    return config, state


def _hf_act(hf: Mapping, path: str) -> str:
    act = hf.get("hidden_act", "gelu")
    if act not in _FROM_HF_ACTS:
        raise ValueError(f"{path}: hidden_act {act!r} is not supported "
                         f"(supported: {', '.join(_FROM_HF_ACTS)})")
    return _FROM_HF_ACTS[act]


def config_from_hf(hf: Mapping, path: str, generator: Mapping | None = None,
                   untied: bool | None = None) -> ModelConfig:
    """A ModelConfig from Hugging Face config.json(s) (and a generator's, for ELECTRA).

    `untied`: whether the generator's embeddings differ from the discriminator's
    (decided from the weights by the caller); by default, from their sizes.
    """
    if "electra_tf" in hf:
        config = ModelConfig.from_dict(hf["electra_tf"]["config"])
        if hf["electra_tf"].get("role") == "generator" and generator is None:
            return config.generator_config()
        return config
    model_type = hf.get("model_type")
    if model_type not in ("electra", "bert"):
        raise ValueError(f"{path}: model_type {model_type!r}; expected 'electra' or 'bert'")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{path}: position_embedding_type "
                         f"{hf['position_embedding_type']!r}; only 'absolute' is supported")
    values = dict(
        model_type=model_type, size="from-hf", vocab_size=hf["vocab_size"],
        embedding_size=hf.get("embedding_size", hf["hidden_size"]),
        hidden_size=hf["hidden_size"], num_hidden_layers=hf["num_hidden_layers"],
        num_attention_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"], hidden_act=_hf_act(hf, path),
        dropout_rate=hf.get("hidden_dropout_prob", 0.1),
        max_position_embeddings=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2),
        initializer_range=hf.get("initializer_range", 0.02),
        layer_norm_epsilon=hf.get("layer_norm_eps", 1e-12), num_layer_groups=None)
    if generator is not None:
        g = generator
        gen_hidden, gen_layers = g["hidden_size"], g["num_hidden_layers"]
        expected_heads = max(1, gen_hidden // 64)
        if g["num_attention_heads"] != expected_heads or g["intermediate_size"] != 4 * gen_hidden:
            raise ValueError(
                f"generator config: {g['num_attention_heads']} heads / FFN "
                f"{g['intermediate_size']}; this package sizes generators as "
                f"heads = hidden // 64 = {expected_heads} and FFN = 4 * hidden = {4 * gen_hidden}")
        values.update(generator_hidden_size=gen_hidden / hf["hidden_size"],
                      generator_layers=gen_layers / hf["num_hidden_layers"],
                      untied_generator_embeddings=untied if untied is not None else
                      g.get("embedding_size", gen_hidden) != values["embedding_size"])
    return ModelConfig(**values)


def _hf_parts(path: str) -> dict[str, str]:
    """Sub-folders of an export: {"discriminator": ..., "generator": ...} or {"": path}."""
    parts = {sub: files.join(path, sub) for sub in ("discriminator", "generator")
             if files.isfile(files.join(path, sub, "config.json"))}
    if parts:
        if len(parts) != 2:
            raise FileNotFoundError(f"{path}: has {', '.join(parts)}/ but an ELECTRA "
                                    f"pretrainer needs both discriminator/ and generator/")
        return parts
    return {"": path}


def load_hf(model: keras.Model, path: str | Mapping[str, str], allow_missing: bool = False,
            quiet: bool = True) -> ConversionReport:
    """Assign `model`'s variables from Hugging Face folder(s) saved by save_pretrained.

    `path` is one folder (encoder, BERT pretrainer, or an ELECTRA pretrainer exported as
    discriminator/ + generator/), or a mapping {"discriminator": dir, "generator": dir}.
    Errors as in :func:`load_tf1_checkpoint`.
    """
    kind = _model_kind(model)
    parts = dict(path) if isinstance(path, Mapping) else _hf_parts(path)
    wanted_parts = _hf_models(model)
    if set(parts) != set(wanted_parts):
        raise ValueError(f"{path}: this model needs Hugging Face folder(s) "
                         f"{sorted(wanted_parts) or ['.']}, found {sorted(parts)}")
    states = {sub: read_hf_folder(d)[1] for sub, d in parts.items()}
    report = ConversionReport()
    used: dict[str, set[str]] = {sub: set() for sub in states}
    missing, mismatched, pending = [], [], []
    for slot in model_slots(model):
        sub = _slot_role(slot, kind, _tied(model))[0]
        state = states[sub]
        prefix = wanted_parts[sub]["prefix"]
        values = []
        for depth in slot.depths or (None,):
            name, transposed = _hf_name(slot.name, depth)
            candidates = [name] if slot.is_head else list(dict.fromkeys(
                [prefix + name, name, "electra." + name, "bert." + name]))
            key = next((c for c in candidates if c in state), None)
            if key is None:
                values.append((candidates[0], None, transposed))
            else:
                used[sub].add(key)
                values.append((key, state[key], transposed))
        if any(v is None for _, v, _ in values):
            names = [k for k, v, _ in values if v is None]
            if allow_missing and slot.is_head:
                report.missing_heads.append(slot.name)
            else:
                missing.extend(f"{parts[sub]}: {n}" for n in names)
            continue
        arrays = [v.T if t else v for _, v, t in values]
        for (key, _, _), array in zip(values[1:], arrays[1:], strict=True):
            if array.shape != arrays[0].shape or not np.array_equal(array, arrays[0]):
                mismatched.append(f"{key} differs from {values[0][0]}, but the model shares "
                                  f"them (num_layer_groups={model.model_config.num_layer_groups})")
        if arrays[0].size != int(np.prod(slot.variable.shape)):
            mismatched.append(f"{values[0][0]} {tuple(arrays[0].shape)} vs model "
                              f"{tuple(slot.variable.shape)}")
            continue
        pending.append((slot, arrays[0], values[0][0]))
    # The generator's copy of the shared embeddings, and tied output matrices.
    if kind == "electra_pretrainer" and "generator" in states and _tied(model):
        shared = [s for s in model_slots(model)
                  if _slot_role(s, kind) == ("discriminator", "generator")]
        for slot in shared:
            name, _ = _hf_name(slot.name)
            key = "electra." + name
            gen_state = states["generator"]
            if key in gen_state:
                used["generator"].add(key)
                disc = states["discriminator"].get(key)
                if disc is not None and not np.array_equal(disc, gen_state[key]):
                    mismatched.append(f"{parts['generator']}: {key} differs from the "
                                      f"discriminator's, but this model ties them (set "
                                      f"untied_generator_embeddings)")
    tied_outputs = ("generator_lm_head.weight", "cls.predictions.decoder.weight",
                    "cls.predictions.decoder.bias")
    unexpected = []
    for sub, state in states.items():
        for key in sorted(set(state) - used[sub]):
            base = re.sub(r"^(electra|bert)\.", "", key)
            if (key.endswith("position_ids") or key in tied_outputs
                    or base.startswith("pooler.") or key.startswith("cls.seq_relationship")):
                report.skipped.append(key)  # buffers, tied copies, pooler, NSP head
            elif kind == "encoder" and not base.startswith(("embeddings", "encoder.")):
                report.skipped.append(key)  # heads, when only the encoder is wanted
            else:
                unexpected.append(f"{parts[sub]}: {key}")
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append("missing: " + ", ".join(missing) + (
                "" if allow_missing else " (head variables can be left out with "
                                         "--allow_missing)"))
        if unexpected:
            problems.append("not in the model (a different architecture?): "
                            + ", ".join(unexpected))
        if mismatched:
            problems.append("mismatched: " + "; ".join(mismatched))
        raise CheckpointMismatchError("; ".join(problems))
    for slot, array, key in _progress(pending, "hf -> keras", quiet):
        _assign(slot, array, key)
        report.assigned.append(slot.name)
    return report


# --------------------------------------------------------------------------- whole models


def model_from_hf(path: str, target: str = "pretrainer", allow_missing: bool = False,
                  quiet: bool = True) -> tuple[keras.Model, ConversionReport]:
    """Build this package's model from Hugging Face folder(s) and load the weights.

    target "pretrainer" gives a BertPretrainer / ElectraPretrainer (an ELECTRA one needs
    the discriminator/ + generator/ pair); "encoder" gives the Encoder.
    """
    parts = _hf_parts(path)
    if "discriminator" in parts:
        disc_config, disc_state = read_hf_folder(parts["discriminator"])
        gen_config, gen_state = read_hf_folder(parts["generator"])
        key = "electra.embeddings.word_embeddings.weight"
        untied = None
        if key in disc_state and key in gen_state:
            untied = (disc_state[key].shape != gen_state[key].shape
                      or not np.array_equal(disc_state[key], gen_state[key]))
        config = config_from_hf(disc_config, parts["discriminator"], gen_config, untied)
    else:
        hf, _ = read_hf_folder(path)
        config = config_from_hf(hf, path)
        if target == "pretrainer" and config.has_generator:
            raise ValueError(f"{path}: one ELECTRA model; an ElectraPretrainer needs a folder "
                             f"with discriminator/ and generator/ (or use --target=encoder)")
    if target == "encoder":
        model = Encoder(config)
        source = parts.get("discriminator", path)
        return model, load_hf(model, source, allow_missing=allow_missing, quiet=quiet)
    model = build_pretrainer(config)
    return model, load_hf(model, parts if "discriminator" in parts else path,
                          allow_missing=allow_missing, quiet=quiet)


def save_keras(model: keras.Model, path: str) -> None:
    """``model.save`` at `path`, local or remote: Keras writes a local file, which is moved
    to `path` when complete (nothing is left there on an error)."""
    with files.staged_output(path) as staged:
        # Keras insists on the .keras suffix; `path` may lack it (--output_format=keras).
        local = staged if staged.endswith(".keras") else staged + ".keras"
        model.save(local)
        if local != staged:
            os.replace(local, staged)  # both in the local staging folder


def load_keras(path: str) -> keras.Model:
    """``keras.models.load_model`` of a local or remote ``.keras`` file; a missing or
    unreadable file is an error naming `path`."""
    if not files.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with files.local_copy(path) as local:  # Keras reads local files only
        if not zipfile.is_zipfile(local):
            raise ValueError(f"{path}: not a .keras file (no zip archive); expected a model "
                             f"saved by this package, such as the finetuned.keras that "
                             f"electra-finetune writes")
        try:
            return keras.models.load_model(local)
        except (ValueError, OSError) as e:
            message = str(e).replace(local, path)
            raise ValueError(message if path in message else f"{path}: {message}") from None


LOADERS: dict[str, Callable] = {"tf1": load_tf1_checkpoint, "hf": load_hf}
