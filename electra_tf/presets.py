"""keras-hub presets: this package's encoders as ``keras_hub.models.ElectraBackbone``, both ways.

A preset is the folder ``ElectraBackbone.from_preset`` and ``ElectraTokenizer.from_preset``
read; the export has keras-hub's own ``save_to_preset`` write it:

* ``config.json`` (the backbone's Keras config), ``metadata.json``, ``model.weights.h5``;
* with a vocab, ``tokenizer.json`` and ``assets/tokenizer/vocabulary.txt``;
* ``electra_tf_config.json``: this package's ModelConfig, so the import rebuilds the exact
  model (its type, ALE sharing, GELU form); keras-hub ignores the file.

What keras-hub's ElectraBackbone computes differently from :class:`Encoder`, and how
each difference is handled:

* feed-forward activation: keras-hub always runs the tanh GELU; an encoder with
  ``hidden_act="gelu_approximate"`` exports exactly, one with exact ``"gelu"`` only with
  ``allow_tanh_gelu`` (its keras-hub outputs then differ slightly), ``"relu"`` never;
* layer-norm epsilon: keras-hub's is fixed at 1e-12; any other value is refused;
* pooler: keras-hub adds a tanh Dense over [CLS] that the original (and this package)
  has not: the export writes it freshly initialized (seeded), the import drops it;
* cross-layer sharing (ALE): keras-hub has one weight set per layer, so the export repeats
  each shared layer where it runs (the same function), and the import checks the copies;
* BERT encoders: the same computation as an ElectraBackbone (whose embedding projection,
  like this package's, exists only when embedding and hidden sizes differ), so they export
  as one; without ``electra_tf_config.json`` they import as model type "electra".

Weights are matched by structure (our token table <-> ``token_embedding``, depth i <->
``transformer_layer_<i>``, sub-weights by their names inside a layer), never by position.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping

import h5py
import keras
import numpy as np

from electra_tf import files
from electra_tf.checkpoints import (
    CONFIG_FILE,
    ConversionReport,
    VocabForExport,
    read_vocab_for_export,
)
from electra_tf.configs import ModelConfig
from electra_tf.modeling import ElectraPretrainer, Encoder, encoder_of

BACKBONE_CLASS = "keras_hub>ElectraBackbone"
PRESET_CONFIG = "config.json"
PRESET_METADATA = "metadata.json"
PRESET_WEIGHTS = "model.weights.h5"
PRESET_TOKENIZER = "tokenizer.json"
PRESET_VOCAB = "assets/tokenizer/vocabulary.txt"
PRESET_FILES = frozenset({PRESET_CONFIG, PRESET_METADATA, PRESET_WEIGHTS, PRESET_TOKENIZER,
                          PRESET_VOCAB, CONFIG_FILE})
# keras-hub's ElectraBackbone hard-codes both LayerNorm epsilons and the GELU form.
KERAS_HUB_LAYER_NORM_EPSILON = 1e-12
KERAS_HUB_ACTIVATION = "gelu_approximate"
# ModelConfig field -> ElectraBackbone argument.
_ARGUMENTS = {
    "vocab_size": "vocab_size", "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads", "hidden_size": "hidden_dim",
    "embedding_size": "embedding_dim", "intermediate_size": "intermediate_dim",
    "dropout_rate": "dropout", "max_position_embeddings": "max_sequence_length",
    "type_vocab_size": "num_segments",
}
# Keys of an ElectraBackbone config that carry no architecture.
_KERAS_KEYS = frozenset({"name", "trainable", "dtype"})
_POOLER = "pooled_dense"


# --------------------------------------------------------------------------- configs


def backbone_arguments(config: ModelConfig, allow_tanh_gelu: bool = False) -> dict:
    """ElectraBackbone's constructor arguments for `config`; a ValueError names what
    keras-hub's backbone cannot compute (see the module docstring)."""
    if config.hidden_act != KERAS_HUB_ACTIVATION and not (
            allow_tanh_gelu and config.hidden_act == "gelu"):
        hint = (" (pass allow_tanh_gelu / --allow_tanh_gelu to export it anyway: its "
                "keras-hub outputs then differ slightly)" if config.hidden_act == "gelu" else "")
        raise ValueError(f"hidden_act={config.hidden_act!r}: keras-hub's ElectraBackbone always "
                         f"uses the tanh GELU (hidden_act 'gelu_approximate'){hint}")
    if config.layer_norm_epsilon != KERAS_HUB_LAYER_NORM_EPSILON:
        raise ValueError(f"layer_norm_epsilon={config.layer_norm_epsilon!r}: keras-hub's "
                         f"ElectraBackbone fixes it at {KERAS_HUB_LAYER_NORM_EPSILON}")
    return {argument: getattr(config, field) for field, argument in _ARGUMENTS.items()}


def config_from_backbone(arguments: Mapping, path: str) -> ModelConfig:
    """The ModelConfig of an ElectraBackbone config (config.json's ``config``): model
    type "electra", tanh GELU, no sharing. `path` names the file in errors."""
    unknown = sorted(set(arguments) - set(_ARGUMENTS.values()) - _KERAS_KEYS)
    if unknown:
        raise ValueError(f"{path}: ElectraBackbone setting(s) {', '.join(unknown)} this "
                         f"package does not map (written by a newer keras-hub?); known: "
                         f"{', '.join(_ARGUMENTS.values())}")
    missing = [a for a in _ARGUMENTS.values() if a not in arguments]
    if missing:
        raise ValueError(f"{path}: lacks ElectraBackbone setting(s) {', '.join(missing)}")
    values = {field: arguments[argument] for field, argument in _ARGUMENTS.items()}
    return ModelConfig(model_type="electra", size="from-keras-hub",
                       hidden_act=KERAS_HUB_ACTIVATION,
                       layer_norm_epsilon=KERAS_HUB_LAYER_NORM_EPSILON, num_layer_groups=None,
                       **values)


def _new_backbone(arguments: Mapping):
    import keras_hub

    # float32 weights whatever the global policy: a preset stores full-precision weights.
    return keras_hub.models.ElectraBackbone(**arguments, dtype="float32")


# --------------------------------------------------------------------------- weights


def _relative_name(variable, layer) -> str:
    """`variable`'s name inside `layer` (``self_attention_layer/query/kernel``)."""
    parts = variable.path.split("/")
    if layer.name not in parts:
        raise RuntimeError(f"internal: {variable.path} is not under layer {layer.name}")
    # The last occurrence: an enclosing scope may carry the same name.
    start = len(parts) - parts[::-1].index(layer.name)
    return "/".join(parts[start:])


def _weight_pairs(encoder: Encoder, backbone) -> list[tuple]:
    """(our variable, keras-hub variable) for every weight the two share, matched by the
    layers' roles and the weights' names inside them; shared (ALE) layers appear once per
    depth that runs them."""
    embeddings, stack = encoder.embeddings, encoder.transformer
    layers = [(embeddings.word_embeddings, backbone.token_embedding),
              (embeddings.position_embeddings, backbone.position_embedding),
              (embeddings.token_type_embeddings, backbone.segment_embedding),
              (embeddings.layer_norm, backbone.embeddings_layer_norm)]
    projected = hasattr(backbone, "embeddings_projection")
    if (stack.embeddings_project is not None) != projected:
        raise RuntimeError("internal: the embedding projections do not correspond")
    if projected:
        layers.append((stack.embeddings_project, backbone.embeddings_projection))
    layers += [(stack.layer_for(depth), backbone.transformer_layers[depth])
               for depth in range(stack.num_hidden_layers)]
    pairs = []
    for ours, theirs in layers:
        mine = {_relative_name(v, ours): v for v in ours.weights}
        their = {_relative_name(v, theirs): v for v in theirs.weights}
        if set(mine) != set(their):
            raise RuntimeError(f"internal: {ours.name} has weights {sorted(mine)}, keras-hub's "
                               f"{theirs.name} {sorted(their)} (a keras-hub version this "
                               f"package does not know?)")
        pairs += [(mine[name], their[name]) for name in sorted(mine)]
    if {id(v) for v, _ in pairs} != {id(v) for v in encoder.weights}:
        raise RuntimeError("internal: the pairing does not cover the encoder's weights")
    paired = {id(t) for _, t in pairs}
    rest = [t.path for t in backbone.weights if id(t) not in paired]
    if sorted(rest) != sorted(f"{_POOLER}/{n}" for n in ("kernel", "bias")):
        raise RuntimeError(f"internal: keras-hub weights without a counterpart: {rest}")
    return pairs


def _check_shape(ours, theirs, where: str) -> None:
    if tuple(ours.shape) != tuple(theirs.shape):
        raise ValueError(f"{where}: shape mismatch for {theirs.path}: keras-hub "
                         f"{tuple(theirs.shape)}, this package's {ours.path} {tuple(ours.shape)}")


# --------------------------------------------------------------------------- export


def _encoder(model: keras.Model) -> tuple[Encoder, list[str]]:
    if isinstance(model, Encoder):
        return model, []
    try:
        encoder = encoder_of(model)
    except TypeError:
        raise TypeError(f"cannot export a {type(model).__name__} as a keras-hub preset; "
                        f"expected an Encoder or a pretrainer") from None
    which = "discriminator" if isinstance(model, ElectraPretrainer) else "BERT"
    return encoder, [f"note: a keras-hub preset holds one encoder: exported the {which} "
                     f"encoder of the {type(model).__name__}"]


def save_keras_hub_preset(encoder_or_pretrainer: keras.Model, directory: str,
                          vocab_file: str | None = None, do_lower_case: bool | None = None,
                          allow_tanh_gelu: bool = False) -> ConversionReport:
    """Write `encoder_or_pretrainer`'s encoder (a pretrainer's discriminator) as a keras-hub
    ElectraBackbone preset folder at `directory` (local or remote).

    With `vocab_file`, the preset also holds an ElectraTokenizer that tokenizes as
    :class:`electra_tf.tokenization.WordPieceTokenizer` (`do_lower_case` as in
    :func:`electra_tf.checkpoints.read_vocab_for_export`; accents stripped with it).
    A ValueError names what keras-hub cannot compute: see :func:`backbone_arguments`.
    Only an empty folder or an earlier export is replaced, and never half-written.
    """
    encoder, notes = _encoder(encoder_or_pretrainer)
    config = encoder.model_config
    arguments = backbone_arguments(config, allow_tanh_gelu)
    vocab = _vocab_for_export(vocab_file, do_lower_case) if vocab_file else None
    if vocab is not None and len(vocab.tokens) > config.vocab_size:
        raise ValueError(f"{vocab_file}: {len(vocab.tokens)} tokens, but the model has only "
                         f"{config.vocab_size} embeddings (not this model's vocab?)")
    _check_destination(directory)

    backbone = _new_backbone(arguments)
    report = ConversionReport(notes=notes)
    for ours, theirs in _weight_pairs(encoder, backbone):
        _check_shape(ours, theirs, directory)
        theirs.assign(ours)
        report.assigned.append(theirs.path)
    # Seeded, so the same encoder gives the same preset; keras-hub's own initializer.
    pooler = backbone.get_layer(_POOLER)
    pooler.kernel.assign(keras.initializers.TruncatedNormal(stddev=0.02, seed=0)(
        tuple(pooler.kernel.shape)))
    pooler.bias.assign(np.zeros(tuple(pooler.bias.shape), "float32"))
    report.notes.append("note: keras-hub's tanh pooler (pooled_output) has no counterpart "
                        "here: written freshly initialized; sequence_output is the encoder's")
    if config.hidden_act != KERAS_HUB_ACTIVATION:
        report.notes.append(f"note: hidden_act {config.hidden_act!r} exported as keras-hub's "
                            f"tanh GELU (allow_tanh_gelu): its outputs differ slightly")
    if config.num_groups != config.num_hidden_layers:
        report.notes.append(f"note: keras-hub has no cross-layer sharing; each of the "
                            f"{config.num_groups} shared layer group(s) is repeated in the "
                            f"layers that run it")
    if config.model_type == "bert":
        report.notes.append("note: a BERT encoder, written as an ElectraBackbone (the same "
                            "computation)")

    with tempfile.TemporaryDirectory(prefix="electra-tf-") as local:
        staged = os.path.join(local, "preset")
        backbone.save_to_preset(staged)
        if vocab is not None:
            import keras_hub

            tokenizer = keras_hub.models.ElectraTokenizer(
                vocabulary=list(vocab.tokens), lowercase=vocab.do_lower_case,
                strip_accents=vocab.do_lower_case)
            tokenizer.save_to_preset(staged)
            report.notes.append(f"tokenizer: {vocab.path} ({len(vocab.tokens)} tokens), "
                                f"do_lower_case={vocab.do_lower_case} (from the "
                                f"{vocab.casing_source})")
        files.atomic_write(os.path.join(staged, CONFIG_FILE), config.to_json())
        files.publish_tree(staged, directory, last=PRESET_CONFIG)
    return report


def _vocab_for_export(vocab_file: str, do_lower_case: bool | None) -> VocabForExport:
    """:func:`read_vocab_for_export`, the casing also read from a preset's tokenizer.json
    when `vocab_file` is a preset's vocabulary."""
    folder = files.parent(files.parent(files.parent(vocab_file)))
    if do_lower_case is None and vocab_file == preset_vocab(folder):
        lowercase = preset_lowercase(folder)
        if lowercase is not None:
            vocab = read_vocab_for_export(vocab_file, lowercase)
            return dataclasses.replace(vocab, casing_source=PRESET_TOKENIZER)
    return read_vocab_for_export(vocab_file, do_lower_case)


def _is_preset_export(directory: str) -> bool:
    """An earlier export of ours (remote: also what an interrupted one left, our files
    without config.json, which is written last)."""
    if files.isfile(files.join(directory, CONFIG_FILE)) and is_keras_hub_preset(directory):
        return set(files.relative_files(directory)) <= PRESET_FILES
    return (not files.is_local(directory) and not files.exists(files.join(directory, PRESET_CONFIG))
            and set(files.relative_files(directory)) <= PRESET_FILES)


def _check_destination(directory: str) -> None:
    """Only an empty folder or an earlier export of this package may be replaced."""
    files.check_replaceable(directory, _is_preset_export, "an electra-tf keras-hub export")


# --------------------------------------------------------------------------- import


def is_keras_hub_preset(path: str) -> bool:
    """Whether `path` is a folder holding a keras-hub preset: metadata.json and a
    config.json naming a keras_hub class (an ElectraBackbone or another)."""
    config_path = files.join(path, PRESET_CONFIG)
    if not (files.isdir(path) and files.isfile(files.join(path, PRESET_METADATA))
            and files.isfile(config_path)):
        return False
    try:
        config = files.read_json(config_path)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and str(config.get("registered_name", "")).startswith(
        "keras_hub>")


def preset_lowercase(directory: str) -> bool | None:
    """Whether the preset's tokenizer lower-cases (None when it has no tokenizer.json)."""
    path = files.join(directory, PRESET_TOKENIZER)
    if not files.isfile(path):
        return None
    lowercase = (files.read_json(path).get("config") or {}).get("lowercase")
    return lowercase if isinstance(lowercase, bool) else None


def read_preset_config(directory: str) -> tuple[ModelConfig, dict]:
    """(this package's config, ElectraBackbone arguments) of the preset at `directory`:
    from ``electra_tf_config.json`` when this package wrote it (checked against
    config.json), else mapped from config.json."""
    config_path = files.join(directory, PRESET_CONFIG)
    if not files.isfile(config_path):
        raise FileNotFoundError(f"{config_path}: no such file (not a keras-hub preset)")
    saved = files.read_json(config_path)
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ValueError(f"{config_path}: not a Keras object config")
    name = saved.get("registered_name") or saved.get("class_name")
    if name not in (BACKBONE_CLASS, "ElectraBackbone"):
        raise ValueError(f"{config_path}: a {name}, not a keras-hub ElectraBackbone")
    mapped = config_from_backbone(saved["config"], config_path)
    arguments = {a: saved["config"][a] for a in _ARGUMENTS.values()}
    ours_path = files.join(directory, CONFIG_FILE)
    if not files.isfile(ours_path):
        return mapped, arguments
    config = ModelConfig.from_dict(files.read_json(ours_path))
    try:
        backbone_arguments(config, allow_tanh_gelu=True)
    except ValueError as e:
        raise ValueError(f"{ours_path}: {e}") from None
    differ = [f"{field} {getattr(config, field)} vs {argument} {arguments[argument]}"
              for field, argument in _ARGUMENTS.items()
              if getattr(config, field) != arguments[argument]]
    if differ:
        raise ValueError(f"{ours_path} describes another model than {config_path} ("
                         f"{'; '.join(differ)}); delete it to import config.json as it is")
    return config, arguments


def _stored_shapes(h5_path: str) -> dict[str, tuple]:
    """{``layer/path:index``: shape} of a Keras ``.weights.h5``, the layer paths built
    from the layer names Keras stores beside each layer's variables ({} when absent)."""
    found = {}

    def visit(group, names):
        own = group.get("vars")
        if isinstance(own, h5py.Group):
            name = own.attrs.get("name")
            if isinstance(name, bytes):
                name = name.decode("utf-8")
            if name:
                names = names + [str(name)]
                for key, dataset in own.items():
                    found[f"{'/'.join(names)}:{key}"] = tuple(dataset.shape)
        for key, child in group.items():
            if key != "vars" and isinstance(child, h5py.Group):
                visit(child, names)

    with h5py.File(h5_path, "r") as f:
        if isinstance(f.get("layers"), h5py.Group):
            visit(f["layers"], [])
    return found


def _weights_file_problems(h5_path: str, backbone) -> list[str]:
    """The backbone's weights missing from `h5_path` or stored with another shape."""
    stored = _stored_shapes(h5_path)
    if not stored:
        return []
    problems, index = [], {}
    for variable in backbone.weights:
        # A layer's own variables are stored by their order in the layer, the layer's
        # variables being the ones directly under its path.
        layer_path = variable.path.rpartition("/")[0]
        position = index[layer_path] = index.get(layer_path, -1) + 1
        shape = stored.get(f"{layer_path}:{position}")
        if shape is None:
            problems.append(f"missing {variable.path}")
        elif shape != tuple(variable.shape):
            problems.append(f"{variable.path} has shape {shape}, config.json says "
                            f"{tuple(variable.shape)}")
    return problems


def read_keras_hub_preset(directory: str) -> tuple[Encoder, ConversionReport]:
    """:func:`load_keras_hub_preset`, with the report of what was read."""
    config, arguments = read_preset_config(directory)
    weights_path = files.join(directory, PRESET_WEIGHTS)
    if not files.isfile(weights_path):
        sharded = files.isfile(files.join(directory, "model.weights.json"))
        raise FileNotFoundError(f"{weights_path}: no such file" + (
            " (sharded presets are not supported: load it in keras-hub and save it with "
            "max_shard_size=None)" if sharded else ""))
    backbone = _new_backbone(arguments)
    with files.local_copy(weights_path) as local:  # Keras and h5py read local files only
        if not h5py.is_hdf5(local):
            raise ValueError(f"{weights_path}: not an HDF5 file (a Keras .weights.h5)")
        try:
            backbone.load_weights(local)
        except (ValueError, OSError) as e:
            detail = "; ".join(_weights_file_problems(local, backbone)) or \
                (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(f"{weights_path}: does not fit {files.join(directory, PRESET_CONFIG)}"
                             f": {detail}") from None
    encoder = Encoder(config)
    report = ConversionReport(skipped=[f"{_POOLER}/kernel", f"{_POOLER}/bias"])
    values: dict[int, tuple] = {}
    for ours, theirs in _weight_pairs(encoder, backbone):
        _check_shape(ours, theirs, weights_path)
        value = keras.ops.convert_to_numpy(theirs)
        if id(ours) in values:  # a shared (ALE) layer: every copy must be the same
            first, first_name = values[id(ours)]
            if not np.array_equal(first, value):
                raise ValueError(f"{weights_path}: {theirs.path} differs from {first_name}, "
                                 f"but {CONFIG_FILE} shares them (num_layer_groups="
                                 f"{config.num_layer_groups})")
            continue
        values[id(ours)] = (value, theirs.path)
    for ours in encoder.weights:
        ours.assign(values[id(ours)][0])
        report.assigned.append(ours.path)
    report.notes.append("note: keras-hub's tanh pooler has no counterpart here: dropped "
                        "(pooled_output is the [CLS] vector, as in the original)")
    return encoder, report


def load_keras_hub_preset(directory: str) -> Encoder:
    """This package's :class:`Encoder` from a keras-hub ElectraBackbone preset folder
    (local or remote), its weights copied by structure; keras-hub's pooler is dropped.

    A missing file, a weight missing from ``model.weights.h5`` or stored with another
    shape than config.json says is an error naming the weight and the file.
    """
    return read_keras_hub_preset(directory)[0]


def preset_vocab(directory: str) -> str | None:
    """The preset's vocabulary file, if it has one."""
    path = files.join(directory, *PRESET_VOCAB.split("/"))
    return path if files.isfile(path) else None
