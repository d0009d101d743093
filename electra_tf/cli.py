"""What the absl commands share: flags from a table or from a run config's fields, a
config from flags + ``--hparams``, and one-line errors instead of tracebacks."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import sysconfig
import traceback
import types
import typing
from collections.abc import Callable, Sequence

from absl import app, flags, logging

from electra_tf.configs import RunConfig, parse_json_object


def define_flags(table: Sequence[tuple], flag_values: flags.FlagValues,
                 required: Sequence[str] = ()) -> flags.FlagValues:
    """Define `table`'s (type, name, default, help) flags on `flag_values` (in a function,
    so CLIs sharing a process, such as the tests, do not collide)."""
    for kind, name, default, help_text in table:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)
    if required:
        flags.mark_flags_as_required(list(required), flag_values=flag_values)
    return flag_values


# The absl kind of a field's flag, by the field's type; a dict is given as a JSON object.
_FLAG_KINDS = {str: "string", int: "integer", float: "float", bool: "bool", list: "list",
               dict: "string"}


def _field_type(annotation) -> type:
    """`annotation` with ``| None`` dropped and ``list[...]`` as ``list``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) or annotation


def config_flags(config_class) -> list[tuple[dataclasses.Field, type]]:
    """(field, type) for each field of `config_class` that has a flag."""
    hints = typing.get_type_hints(config_class)
    shared = {f.name for f in dataclasses.fields(RunConfig)}  # last: the command's own
    fields = sorted(dataclasses.fields(config_class), key=lambda f: f.name in shared)
    return [(field, _field_type(hints[field.name])) for field in fields
            if field.metadata.get("flag", True) is not False]


def format_default(value) -> str:
    """A default as help texts and docs show it: in flag syntax (a list comma-separated,
    a dict as JSON), ``none`` for None or an empty list."""
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value and not 1e-3 <= abs(value) < 1e6:  # 5e-4 rather than 0.0005
            mantissa, exponent = f"{value:e}".split("e")
            return f"{float(mantissa):g}e{int(exponent)}"
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(format_default, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value) if value != "" else "''"


def define_config_flags(config_class, flag_values: flags.FlagValues, extra: Sequence[tuple] = (),
                        required: Sequence[str] = ()) -> flags.FlagValues:
    """Define one flag per field of `config_class` (a :class:`~electra_tf.configs.RunConfig`
    dataclass), ``--hparams`` (the original's JSON of fields), then `extra`'s (type, name,
    default, help) flags, on `flag_values`.

    A field's flag has the type of its annotation (``X | None`` as X, a dict as a JSON
    string) and the field's help with the config's default appended (a required flag's
    default is never used: none is shown). Its default is None: a flag not given leaves
    the config's default or the ``--hparams`` value.
    """
    table = []
    for field, kind in config_flags(config_class):
        if "help" not in field.metadata:
            raise TypeError(f"{config_class.__name__}.{field.name} has no help: declare it "
                            f"with electra_tf.configs.setting")
        help_text = field.metadata["help"]
        if field.name not in required:
            default = (field.default if field.default is not dataclasses.MISSING
                       else field.default_factory())
            shown = field.metadata["shown_default"] or format_default(default)
            help_text += f" (default: {shown})"
        flag = field.metadata["flag"]
        table.append((flag if isinstance(flag, str) else _FLAG_KINDS[kind], field.name, None,
                      help_text))
    table.append(("string", "hparams", "{}", f"JSON object of {config_class.__name__} "
                  f"fields, as the original's --hparams; a field also given as a flag must "
                  f"agree."))
    return define_flags([*table, *extra], flag_values, required)


# The flags of the commands that train under a tf.distribute strategy.
STRATEGY_FLAGS = (
    ("string", "strategy", "default", "default (CPU / one GPU), mirrored (all local GPUs), "
     "multi_worker (TF_CONFIG) or tpu."),
    ("string", "tpu", None, "TPU name or address for the cluster resolver; 'local' on Colab "
     "or a TPU VM. Implies --strategy=tpu."),
)


def config_from_flags(config_class, flag_values: flags.FlagValues):
    """`config_class` (a :class:`~electra_tf.configs.RunConfig` dataclass) from its flags
    (:func:`define_config_flags`) and the ``--hparams`` JSON object; a field given both
    ways must agree."""
    values = {}
    for field, kind in config_flags(config_class):
        value = flag_values[field.name].value
        if value is None:
            continue
        if kind is dict:
            value = parse_json_object(value, f"--{field.name}")
        elif kind is list:
            value = list(value)
        values[field.name] = value
    hparams = parse_json_object(flag_values.hparams, "--hparams")
    clashes = [f"{k} (--{k}={values[k]!r}, --hparams {hparams[k]!r})"
               for k in hparams if k in values and values[k] != hparams[k]]
    if clashes:
        raise ValueError(f"given twice with different values: {'; '.join(clashes)}")
    values.update(hparams)
    return config_class.from_dict(values)


# TensorFlow errors about the user's files, credentials or data: one line, like OSError.
# NotFound and AlreadyExists also name kernels, resources and collective keys: they count
# as input only when they name a path.
_INPUT_OP_ERRORS = ("PermissionDeniedError", "DataLossError", "UnauthenticatedError")
_PATH_OP_ERRORS = ("NotFoundError", "AlreadyExistsError")
_OWN_DIRS = tuple(os.path.dirname(os.path.abspath(__import__(name).__file__)) + os.sep
                  for name in ("electra_tf", "data_prep"))


def _raised_here(error: BaseException) -> bool:
    """True when the package's own code raised `error`: its innermost frame is in the
    package (wherever it is installed) or outside any library (a script of the user's).
    A ValueError must come from a ``raise`` statement there, a check of the input; one
    the interpreter raised (unpacking, ``int("x")``) is a bug."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return True
    filename = os.path.abspath(frames[-1].filename)
    paths = sysconfig.get_paths()
    library = (paths["stdlib"], paths["purelib"], paths["platlib"])
    if not filename.startswith(_OWN_DIRS) and (filename.startswith(library)
                                               or "site-packages" in filename):
        return False
    line = (frames[-1].line or "").lstrip()
    return not isinstance(error, ValueError) or line.startswith("raise")


def debugging() -> bool:
    """Whether every error shows its traceback: absl's ``--verbosity`` (``-v``) at 1 or
    more, or ``ELECTRA_TF_TRACEBACK=1``."""
    return (bool(os.environ.get("ELECTRA_TF_TRACEBACK"))
            or flags.FLAGS["verbosity"].value >= 1)


def error_line(error: BaseException, expected: tuple = ()) -> str | None:
    """The one line that reports `error` as bad input, or None when it is an internal
    failure (a bug) whose traceback must be shown. Bad input: an OSError/ValueError (or
    one of `expected`) raised by the package's own checks, or a TensorFlow error about a
    file, its data or access to it."""
    kind = type(error).__name__
    if kind in _INPUT_OP_ERRORS + _PATH_OP_ERRORS and hasattr(error, "message"):
        lines = [line.strip() for line in error.message.splitlines() if line.strip()
                 and not line.strip().startswith(("[[", "File ", "Detected at"))]
        line = lines[-1] if lines else kind
        if kind in _INPUT_OP_ERRORS or "/" in line:
            return line
    if isinstance(error, (OSError, ValueError, *expected)) and _raised_here(error):
        return str(error)
    return None


def run_main(prog: str, run: Callable[[], str], expected: tuple = ()) -> Callable:
    """An absl main that prints `run()`'s closing line, and bad input as one
    ``<prog>: error: ...`` line (exit 1). Anything else is a bug: its traceback is shown,
    after a line saying so. With ``--verbosity=1`` (or ``-v 1``) every error shows its
    traceback, and TensorFlow's INFO logs stay on."""

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        debug = debugging()
        if not debug:
            logging.set_verbosity(logging.WARNING)  # TF's per-checkpoint INFO lines
        try:
            print(run(), flush=True)
        except Exception as e:
            line = error_line(e, expected)
            if line is None:
                print(f"{prog}: internal error ({type(e).__name__}); this is a bug, not "
                      f"your input; the traceback follows", file=sys.stderr)
                raise
            print(f"{prog}: error: {line}", file=sys.stderr)
            if debug:
                raise
            sys.exit(1)

    return _main


def parse_flags(prog: str, flag_values: flags.FlagValues = flags.FLAGS
                ) -> Callable[[list[str]], list[str]]:
    """An absl ``flags_parser`` whose errors (an unknown flag, a bad value, a missing
    required flag or flagfile) are one ``<prog>: error: ...`` line, exit 1."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flag_values(argv)
        except flags.Error as e:
            message = str(e).removeprefix("ERROR:: ").rstrip(".")
            print(f"{prog}: error: {message}; see {prog} --helpshort", file=sys.stderr)
            sys.exit(1)

    return parse


def run_command(prog: str, run: Callable[[], str], expected: tuple = ()) -> None:
    """Parse the command line and run :func:`run_main`'s main: the body of a command's
    ``main()``."""
    app.run(run_main(prog, run, expected), flags_parser=parse_flags(prog))
