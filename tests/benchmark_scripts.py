"""The scripts in benchmarks/ imported as modules, for the tests of their logic."""

import contextlib
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(*names):
    """The modules `names` of benchmarks/. The folder is on sys.path only while they
    import (they import each other by name): left there, its data_prep.py would shadow
    the data_prep package in every process this one spawns later."""
    folder = os.path.join(ROOT, "benchmarks")
    sys.path.insert(0, folder)
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
