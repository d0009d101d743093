"""What the absl commands share: flags from a table, a config from flags + ``--hparams``,
and one-line errors instead of tracebacks."""

from __future__ import annotations

import dataclasses
import sys
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


def run_main(prog: str, run: Callable[[], str]) -> Callable:
    """An absl main that prints `run()`'s closing line, and any bad-input error as one
    ``<prog>: error: ...`` line (exit 1); TensorFlow op errors print their cause line."""

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        logging.set_verbosity(logging.WARNING)  # TF's per-checkpoint INFO lines
        try:
            print(run(), flush=True)
        except (OSError, ValueError) as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(1)
        except Exception as e:
            import tensorflow as tf

            if isinstance(e, tf.errors.OpError):
                lines = [line.strip() for line in e.message.splitlines() if line.strip()
                         and not line.strip().startswith(("[[", "File ", "Detected at"))]
                print(f"{prog}: error: {lines[-1] if lines else type(e).__name__}",
                      file=sys.stderr)
                sys.exit(1)
            raise

    return _main
