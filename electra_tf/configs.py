"""Model configurations: the original ELECTRA size table, generator sizing, ALE sharing.

One :class:`ModelConfig` describes a whole pretraining model: the encoder (field names
follow the original ``bert_config.json``), the generator as a fraction of it (as the
original's ``generator_hidden_size`` / ``generator_layers``), and for ALE the number of
cross-layer sharing groups. Build one with :func:`get_config`::

    config = get_config("electra", "small", {"hidden_size": 512})

The overrides dict plays the role of the original's ``model_hparam_overrides``; an unknown
key is an error naming the key and the allowed ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

MODEL_TYPES = ("bert", "electra", "ale")
HIDDEN_ACTS = ("gelu", "gelu_approximate", "relu")

# Encoder sizes. small/base/large are the original's table (ELECTRA paper, Table 6,
# including its generator sizes: 1/4 of the discriminator, 1/3 for base); debug and
# tiny exist so tests and CPU demos train in seconds, and are factorized
# (embedding_size < hidden_size) like small, so they exercise the projection.
SIZES: dict[str, dict[str, Any]] = {
    "debug": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128, embedding_size=16),
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2,
                 intermediate_size=512, embedding_size=64),
    "small": dict(hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                  intermediate_size=1024, embedding_size=128),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, embedding_size=768, generator_hidden_size=1 / 3),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, embedding_size=1024),
}

# ALE ("A Lite ELECTRA") takes ALBERT's two changes: a 128-wide factorized embedding
# and every layer sharing one set of weights.
ALE_EMBEDDING_SIZE = 128
ALE_LAYER_GROUPS = 1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a BERT, ELECTRA or ALE pretraining model.

    Attributes:
      model_type: "bert" (one MLM encoder), "electra" (generator + discriminator) or
        "ale" (ELECTRA with ALBERT-style factorized embeddings and shared layers).
      size: name of the size this config came from (informational).
      vocab_size, embedding_size, hidden_size, num_hidden_layers, num_attention_heads,
      intermediate_size, max_position_embeddings, type_vocab_size, initializer_range:
        as in the original ``bert_config.json``.
      hidden_act: "gelu" (exact erf GELU: the original ELECTRA's, and Hugging Face's
        "gelu"), "gelu_approximate" (the tanh form of later BERT code, HF "gelu_new")
        or "relu".
      dropout_rate: dropout on embeddings, attention probabilities and sublayer outputs
        (the original's hidden_dropout_prob == attention_probs_dropout_prob).
      layer_norm_epsilon: 1e-12 as in the original.
      num_layer_groups: None = every layer has its own weights; k = layers are split
        into k consecutive groups and each group shares one set of weights (ALBERT's
        num_hidden_groups; 1 = all layers share).
      generator_hidden_size: generator width as a fraction of hidden_size (0.25 is the
        original's default).
      generator_layers: generator depth as a fraction of num_hidden_layers.
      untied_generator_embeddings: give the generator its own embedding module instead
        of sharing the discriminator's (the original's flag of the same name).
    """

    model_type: str = "electra"
    size: str = "small"
    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    dropout_rate: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-12
    num_layer_groups: int | None = None
    generator_hidden_size: float = 0.25
    generator_layers: float = 1.0
    untied_generator_embeddings: bool = False

    def __post_init__(self):
        problems = []
        if self.model_type not in MODEL_TYPES:
            problems.append(f"model_type={self.model_type!r} (allowed: {', '.join(MODEL_TYPES)})")
        if self.hidden_act not in HIDDEN_ACTS:
            problems.append(f"hidden_act={self.hidden_act!r} (allowed: {', '.join(HIDDEN_ACTS)})")
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                     "num_attention_heads", "intermediate_size", "max_position_embeddings",
                     "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name}={value!r} (must be a positive integer)")
        if not problems and self.hidden_size % self.num_attention_heads:
            problems.append(f"hidden_size={self.hidden_size} is not divisible by "
                            f"num_attention_heads={self.num_attention_heads}")
        groups = self.num_layer_groups
        if groups is not None and (not isinstance(groups, int) or groups < 1
                                   or (isinstance(self.num_hidden_layers, int)
                                       and self.num_hidden_layers % groups)):
            problems.append(f"num_layer_groups={groups!r} (must be a positive divisor of "
                            f"num_hidden_layers={self.num_hidden_layers}, or None)")
        if not 0.0 <= self.dropout_rate < 1.0:
            problems.append(f"dropout_rate={self.dropout_rate!r} (must be in [0, 1))")
        for name in ("generator_hidden_size", "generator_layers"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                problems.append(f"{name}={value!r} (a fraction of the discriminator, in (0, 1])")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def has_generator(self) -> bool:
        return self.model_type in ("electra", "ale")

    @property
    def num_groups(self) -> int:
        """Number of distinct transformer layers that hold weights."""
        return self.num_hidden_layers if self.num_layer_groups is None else self.num_layer_groups

    def generator_config(self) -> ModelConfig:
        """The generator's encoder config, sized from the fractions as the original does.

        hidden = round(hidden_size * generator_hidden_size), heads = max(1, hidden // 64),
        FFN = 4 * hidden, layers = round(num_hidden_layers * generator_layers), sharing
        groups = gcd(num_layer_groups, layers). With tied
        embeddings the generator reads the discriminator's embedding table, so its
        embedding size is the discriminator's; untied, it is the generator's hidden size.
        """
        hidden = int(round(self.hidden_size * self.generator_hidden_size))
        layers = max(1, int(round(self.num_hidden_layers * self.generator_layers)))
        groups = self.num_layer_groups
        if groups is not None:
            # As many sharing groups as divide both depths: 1 stays 1 (ALE), 12 groups
            # over a 6-layer generator become 6.
            groups = math.gcd(groups, layers)
        return dataclasses.replace(
            self,
            size=f"{self.size}-generator",
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
            embedding_size=hidden if self.untied_generator_embeddings else self.embedding_size,
            num_layer_groups=groups,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        _check_keys(values, "config")
        return cls(**values)

    def replace(self, **overrides) -> ModelConfig:
        """A copy with some fields changed; an unknown field is a clear error."""
        _check_keys(overrides, "overrides")
        return dataclasses.replace(self, **overrides)


def _check_keys(values: Mapping[str, Any], what: str) -> None:
    allowed = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown model hyperparameter(s) {', '.join(map(repr, unknown))} in "
                         f"{what}; allowed keys: {', '.join(allowed)}")


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object in `text` ("" is {}); `what` names it in the error."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {text!r}")
    return value


def parse_overrides(text: str) -> dict[str, Any]:
    """A JSON object of overrides (the original's --model_hparam_overrides); "" is {}."""
    return parse_json_object(text, "model overrides")


# -- what the run configs share; TensorFlow-free, so the commands' flags (defined from
# the configs) are ready before TensorFlow loads

MIXED_PRECISION = {"": "float32", "fp32": "float32", "bf16": "mixed_bfloat16",
                   "fp16": "mixed_float16"}
# electra_tf.optimization.OPTIMIZERS' names (a test keeps the two equal): the configs
# check a name without importing TensorFlow.
OPTIMIZER_NAMES = ("lamb", "adamw", "adamw_hf")


def join(path: str, *parts: str) -> str:
    """:func:`electra_tf.files.join` for the configs' paths; imports TensorFlow (through
    files) only when called."""
    from electra_tf import files

    return files.join(path, *parts)


def one_of(name: str, value, allowed) -> None:
    """Refuse `value` unless it is in `allowed`, naming `name` and the allowed values."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: "
                         f"{', '.join(repr(a) if a == '' else str(a) for a in allowed)}")


def setting(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING,
            flag: bool | str = True, shown_default: str | None = None,
            kw_only: bool = False):
    """A run config field with its help, the one source of its command-line flag and docs.

    `help` must not restate the default: the flag's help gets " (default: ...)" appended,
    `shown_default` when the value alone does not say it (e.g. None meaning
    ``<data_dir>/vocab.txt``). `flag`: False for no flag; an absl kind ("multi_string")
    to override the one the annotation gives.
    """
    return dataclasses.field(default=default, default_factory=default_factory,
                             kw_only=kw_only, metadata={"help": help, "flag": flag,
                                       "shown_default": shown_default})


@dataclasses.dataclass
class RunConfig:
    """JSON round trip for the run configs (dataclasses): ``from_dict`` refuses unknown
    keys, listing the allowed ones, as the original's ``--hparams`` should have.

    ``MAY_CHANGE``: the fields a re-run of the same run folder may change (see
    :class:`electra_tf.training.run_dir.RunDir`); every other one must match, unless the
    re-run names it in ``change_settings``. ``FIXED``: fields not even that may change
    (the model's shape, what the step count means). ``ADDED_DEFAULTS``: for a field
    added after runs were saved, what those runs did, as a function of their saved
    settings; a field added without an entry makes such runs stop and name it."""

    MAY_CHANGE: ClassVar[tuple[str, ...]] = ()
    FIXED: ClassVar[tuple[str, ...]] = ()
    ADDED_DEFAULTS: ClassVar[dict[str, Callable[[dict], Any]]] = {}
    # Fields of every run config that describe the command, not the run: never saved.
    COMMAND_ONLY: ClassVar[tuple[str, ...]] = ("change_settings",)

    change_settings: list[str] = setting(
        default_factory=list, kw_only=True,
        help="Settings this re-run of an existing run changes knowingly (comma-separated "
        "names, e.g. learning_rate,mask_prob). Each change is recorded, with the steps "
        "reached, in the run folder's settings_history.json. Without it, a re-run whose "
        "settings differ stops and names each changed setting.")

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in self.COMMAND_ONLY:
            values.pop(name)
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def setting_changes(self, saved: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """{field: (saved value, value now)} for each setting that differs from `saved`
        (this class's JSON, as a run folder keeps it). A field `saved` lacks (the run
        predates it) counts as its ``ADDED_DEFAULTS`` value: what the code that saved the
        run did; without one it is :data:`NOT_RECORDED`, which differs from any value."""
        now = json.loads(self.to_json())
        changes = {}
        for key in sorted(now):
            if key in saved:
                before = saved[key]
            elif key in self.ADDED_DEFAULTS:
                before = _json_value(self.ADDED_DEFAULTS[key](saved))
            else:
                before = NOT_RECORDED
            if before != now[key]:
                changes[key] = (before, now[key])
        return changes

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        allowed = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown --hparams key(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(allowed)}")
        return cls(**values)


class _NotRecorded:
    """The saved value of a setting the saved run predates."""

    def __repr__(self) -> str:
        return "not recorded"


NOT_RECORDED = _NotRecorded()


def _json_value(value):
    return json.loads(json.dumps(value))


def get_config(model_type: str = "electra", size: str = "small",
               overrides: Mapping[str, Any] | str | None = None) -> ModelConfig:
    """Config for `model_type` at `size`, with `overrides` (a dict or a JSON string).

    ALE differs from ELECTRA only by defaults: a 128-wide embedding and all layers in one
    sharing group; both can still be overridden.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; allowed: {', '.join(MODEL_TYPES)}")
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; allowed: {', '.join(SIZES)}")
    values: dict[str, Any] = dict(SIZES[size], model_type=model_type, size=size)
    if model_type == "ale":
        values["embedding_size"] = min(values["embedding_size"], ALE_EMBEDDING_SIZE)
        values["num_layer_groups"] = ALE_LAYER_GROUPS
    if isinstance(overrides, str):
        overrides = parse_overrides(overrides)
    if overrides:
        _check_keys(overrides, "overrides")
        values.update(overrides)
    return ModelConfig(**values)
