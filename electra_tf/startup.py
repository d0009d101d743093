"""How the package's commands start: Keras without the extras it imports eagerly.

When they are installed, Keras imports matplotlib.pyplot (for its image-gallery plots),
scikit-learn (for its scikit-learn estimator wrappers) and IPython (for notebook display
in its file editor) while it loads, whether or not they are used. The commands use none of
these Keras features, and on a 2-core CPU the three imports are ~1.3 s of the ~3.8 s a
process takes to import TensorFlow and Keras. :func:`skip_keras_extras` makes those
imports, when made by Keras' own modules, fail as if the package were absent, which Keras
handles (each is a guarded optional import). Every other importer, this package's
scorers and plots included, imports them as usual.

``electra_tf/__init__.py`` calls it in the processes of the package's commands (an
``electra-*`` script or ``python -m`` one of its modules; the workers they fork inherit
it), never in a process that imports the package as a library.
"""

from __future__ import annotations

import importlib.abc
import sys

KERAS_EXTRAS = frozenset({"matplotlib", "sklearn", "IPython"})
_IMPORT_MACHINERY = ("importlib", "_frozen_importlib")


class _KerasExtrasFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: an extra imported by a Keras module is not found."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in KERAS_EXTRAS:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(
                _IMPORT_MACHINERY):
            frame = frame.f_back
        importer = "" if frame is None else frame.f_globals.get("__name__", "")
        if importer == "keras" or importer.startswith("keras."):
            raise ModuleNotFoundError(f"No module named {name!r} (skipped for Keras)",
                                      name=name)
        return None


def skip_keras_extras() -> bool:
    """From now on, Keras' modules import none of :data:`KERAS_EXTRAS`; False (and nothing
    done) when Keras is imported already or the finder is in place."""
    if "keras" in sys.modules or any(isinstance(f, _KerasExtrasFinder)
                                     for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _KerasExtrasFinder())
    return True


def is_command_process(argv: list[str] | None = None) -> bool:
    """Whether this process runs one of the package's commands, by the interpreter's
    command line `argv` (default ``sys.orig_argv``): an ``electra-*`` console script, or
    ``python -m`` with a module of ``electra_tf`` or ``data_prep``."""
    argv = sys.orig_argv if argv is None else argv
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-W", "-X"):  # the interpreter's options that take a separate value
            next(args, None)
        elif arg == "-m":
            return next(args, "").startswith(("electra_tf.", "data_prep."))
        elif arg == "-c" or not arg.startswith("-"):  # a command string or the script
            return arg.replace("\\", "/").rsplit("/", 1)[-1].startswith("electra-")
    return False
