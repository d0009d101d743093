"""What the absl commands share: flags from a table, a config from flags + ``--hparams``,
and one-line errors instead of tracebacks."""

from __future__ import annotations

import dataclasses
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Sequence

from absl import app, flags, logging


def define_flags(table: Sequence[tuple], flag_values: flags.FlagValues,
                 required: Sequence[str] = ()) -> flags.FlagValues:
    """Define `table`'s (type, name, default, help) flags on `flag_values` (in a function,
    so CLIs sharing a process, such as the tests, do not collide)."""
    for kind, name, default, help_text in table:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)
    if required:
        flags.mark_flags_as_required(list(required), flag_values=flag_values)
    return flag_values


def config_from_flags(config_class, flag_values: flags.FlagValues,
                      json_flags: Sequence[str] = (), list_flags: Sequence[str] = ()):
    """`config_class` (a :class:`~electra_tf.configs.RunConfig` dataclass) from the parsed
    flags that match its fields and the ``--hparams`` JSON object; a field given both ways
    must agree."""
    from electra_tf.configs import parse_json_object, parse_overrides

    values = {}
    for field in dataclasses.fields(config_class):
        name = field.name
        if name in flag_values and flag_values[name].value is not None:
            value = flag_values[name].value
            if name in json_flags:
                value = parse_overrides(value)
            elif name in list_flags:
                value = list(value)
            values[name] = value
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
    package (wherever it is installed) or outside any library (a script of the user's)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return True
    filename = os.path.abspath(frames[-1].filename)
    if filename.startswith(_OWN_DIRS):
        return True
    paths = sysconfig.get_paths()
    library = (paths["stdlib"], paths["purelib"], paths["platlib"])
    return not (filename.startswith(library) or "site-packages" in filename)


def error_line(error: BaseException, expected: tuple = ()) -> str | None:
    """The one line that reports `error` as bad input, or None when it is an internal
    failure (a bug) whose traceback must be shown. Bad input: an OSError/ValueError (or
    one of `expected`) raised by the package's own checks, or a TensorFlow error about a
    file, its data or access to it. ``ELECTRA_TF_TRACEBACK=1`` shows every traceback."""
    if os.environ.get("ELECTRA_TF_TRACEBACK"):
        return None
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
    after a line saying so."""

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
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
            sys.exit(1)

    return _main
