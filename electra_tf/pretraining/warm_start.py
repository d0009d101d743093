"""Continued pretraining: a new run that starts from another model's weights.

``--init_checkpoint`` names the model to start from, in any of the layouts this package
reads:

* a checkpoint of the original TF1 code (a ``model.ckpt-N`` prefix or its folder), the
  released ELECTRA and BERT checkpoints included, generator and all;
* a Hugging Face export: an ELECTRA ``discriminator/`` + ``generator/`` pair, or one
  ``BertForMaskedLM`` folder;
* a pretraining run of this package: its model dir (the newest checkpoint), one of its
  ``model.ckpt-N`` or its ``pretrainer.keras``.

The new run's architecture is the source's (sizes are read from it; the released
ELECTRA-Small, for instance, has a generator as wide as its discriminator), with
``model_hparam_overrides`` on top and the vocab size of the run's vocab file. Every
variable is matched by its original name (:func:`electra_tf.checkpoints.model_slots`):
one that the source lacks, or holds in another shape, stops the run with its name,
unless ``init_skip_mismatched`` lets it keep its fresh initialization (a new vocab:
the word embeddings and the MLM output bias). The optimizer starts afresh at step 0.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from electra_tf import checkpoints, files
from electra_tf.checkpoints import CheckpointMismatchError, model_slots
from electra_tf.configs import ModelConfig
from electra_tf.modeling import BertPretrainer, ElectraPretrainer, build_pretrainer
from electra_tf.pretraining.config import MODEL_CONFIG_FILE, SETTINGS_FILE, PretrainingConfig
from electra_tf.tokenization import load_vocab
from electra_tf.training.checkpointing import (
    CHECKPOINT_NAME,
    complete_checkpoints,
    name_list,
    restore,
    stored_weights,
)
from electra_tf.training.export import PRETRAINER_FILE


@dataclasses.dataclass
class WarmStart:
    """What a warm start did: the source, the variables copied and those left fresh."""

    source: str
    assigned: int
    skipped: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_checkpoint(path: str) -> str | None:
    """The checkpoint prefix of this package that `path` names: a run's model dir (its
    newest complete checkpoint) or a ``model.ckpt-N`` prefix beside a settings file."""
    if files.isdir(path) and files.isfile(files.join(path, SETTINGS_FILE)):
        found = complete_checkpoints(path, CHECKPOINT_NAME)
        return found[-1] if found else None
    prefix = path[:-len(".index")] if path.endswith(".index") else path
    if files.isfile(prefix + ".index") and files.isfile(
            files.join(files.parent(prefix), SETTINGS_FILE)):
        return prefix
    return None


def _run_model_config(model_dir: str, prefix: str) -> ModelConfig:
    """The pretrainer config of the run in `model_dir`: as it recorded it, or (a run that
    predates the record) from its settings, the vocab size read from the checkpoint."""
    recorded = files.join(model_dir, MODEL_CONFIG_FILE)
    if files.isfile(recorded):
        return ModelConfig.from_dict(files.read_json(recorded))
    settings = files.read_json(files.join(model_dir, SETTINGS_FILE))
    fields = {f.name for f in dataclasses.fields(PretrainingConfig)}
    run = PretrainingConfig(**{k: v for k, v in settings.items() if k in fields})
    words = [shape for path, shape in (stored_weights(prefix) or {}).items()
             if path.endswith("/word_embeddings/embeddings")]
    if words:
        return run.model_config(words[0][0])
    # The earlier checkpoint layout does not name the embeddings: the run's vocab.
    vocab = files.join(model_dir, "vocab.txt")
    return run.model_config(len(load_vocab(vocab if files.isfile(vocab) else run.vocab_path)))


def load_source(path: str) -> keras.Model:
    """The pretrainer `path` holds (see the module doc for the layouts), with its weights."""
    if path.endswith(".keras") or (files.isdir(path)
                                   and files.isfile(files.join(path, PRETRAINER_FILE))
                                   and run_checkpoint(path) is None):
        model = checkpoints.load_keras(path if path.endswith(".keras")
                                       else files.join(path, PRETRAINER_FILE))
        if not isinstance(model, (BertPretrainer, ElectraPretrainer)):
            raise ValueError(f"{path}: holds a {type(model).__name__}, not a pretrainer "
                             f"(pretrainer.keras of a pretraining run)")
        return model
    prefix = run_checkpoint(path)
    if prefix is not None:
        model = build_pretrainer(_run_model_config(files.parent(prefix), prefix))
        restore(model, prefix)
        return model
    if files.isdir(path) and (files.isfile(files.join(path, "config.json"))
                              or files.isfile(files.join(path, "discriminator", "config.json"))):
        model, _ = checkpoints.model_from_hf(path, "pretrainer")
        return model
    if files.isdir(path) and files.isfile(files.join(path, SETTINGS_FILE)):
        raise ValueError(f"{path}: a pretraining run with no complete checkpoint yet")
    config = checkpoints.config_from_tf1(path)
    model = build_pretrainer(config)
    checkpoints.load_tf1_checkpoint(model, path)
    return model


def run_model_config(config: PretrainingConfig, source: keras.Model,
                     vocab_size: int) -> ModelConfig:
    """The new run's model: the source's architecture with the run's
    ``model_hparam_overrides`` on top. Its vocab size stays the source's when the run's
    vocab (`vocab_size` tokens) fits in it, and is the vocab's otherwise (then the
    embeddings do not fit: see ``init_skip_mismatched``)."""
    source_type = source.model_config.model_type
    if config.objective != source_type:
        raise ValueError(f"--init_checkpoint={config.init_checkpoint} holds a pretrainer "
                         f"of objective {source_type}, not --objective={config.objective}")
    return config.model_config(vocab_size, base=source.model_config)


def source_vocab_file(path: str) -> str | None:
    """The vocab file of the model `path` names: beside it (a TF1 checkpoint's folder, a
    Hugging Face folder, a run's model dir, a .keras file's folder) or in a run's
    settings; None when there is none."""
    # Not isdir(): object stores call any prefix of a file name a folder.
    is_file = path.endswith((".keras", ".index")) or files.exists(path + ".index")
    folder = files.parent(path) if is_file else path
    candidates = [files.join(folder, "vocab.txt"),
                  files.join(folder, "discriminator", "vocab.txt")]
    settings = files.join(folder, SETTINGS_FILE)
    if files.isfile(settings):
        saved = files.read_json(settings)
        candidates.append(saved.get("vocab_file") or files.join(saved.get("data_dir", ""),
                                                                 "vocab.txt"))
    return next((c for c in candidates if c and files.isfile(c)), None)


def vocab_difference(source_vocab: str | None, ours: list[str]) -> str | None:
    """How the run's vocab differs from the one in file `source_vocab` (None: the same,
    or the source has no vocab to compare)."""
    theirs = load_vocab(source_vocab) if source_vocab else None
    if theirs is None or theirs == ours:
        return None
    if len(theirs) != len(ours):
        return f"the run's vocab has {len(ours)} tokens, the source's {len(theirs)}"
    index = next(i for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b)
    return (f"the run's vocab differs from the source's (token {index}: {ours[index]!r}, "
            f"the source's {theirs[index]!r})")


# Variables indexed by token id: they belong to one vocab.
_PER_TOKEN = ("/word_embeddings", "/output_bias")


def warm_start(model: keras.Model, source: keras.Model, source_name: str,
               skip_mismatched: bool = False, vocab_change: str | None = None) -> WarmStart:
    """Copy every variable of `source` into `model` by original name. A variable of
    `model` with no counterpart of the same shape, or one of `source` with no place in
    `model`, is a :class:`CheckpointMismatchError` naming it, unless `skip_mismatched`
    (then `model`'s keeps its initialization; `source`'s extra ones are dropped). With
    `vocab_change` (see :func:`vocab_difference`), the variables indexed by token id do
    not match either."""
    theirs = {slot.name: slot for slot in model_slots(source)}
    ours = model_slots(model)
    pending, skipped = [], []
    for slot in ours:
        other = theirs.pop(slot.name, None)
        if other is None:
            skipped.append(f"{slot.name} (not in the source)")
        elif vocab_change and slot.name.endswith(_PER_TOKEN):
            skipped.append(f"{slot.name} ({vocab_change})")
        elif tuple(other.variable.shape) != tuple(slot.variable.shape):
            skipped.append(f"{slot.name} (source {tuple(other.variable.shape)}, "
                           f"model {tuple(slot.variable.shape)})")
        else:
            pending.append((slot, other))
    skipped += [f"{name} (not in the model)" for name in sorted(theirs)]
    if skipped and not skip_mismatched:
        raise CheckpointMismatchError(
            f"--init_checkpoint={source_name} does not fit the model: {name_list(skipped, '; ')} "
            f"(--init_skip_mismatched keeps those at their initialization, e.g. for a new "
            f"vocab)")
    for slot, other in pending:
        slot.variable.assign(np.asarray(keras.ops.convert_to_numpy(other.variable),
                                        slot.variable.dtype))
    return WarmStart(source_name, len(pending), skipped)
