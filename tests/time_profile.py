"""Where the suite's time goes: a pytest plugin that samples each test process's main
thread every few milliseconds and sorts the samples by what the thread was doing
(tracing ``tf.function``s, executing them, waiting on a child process, ...).

Usage: ``make test-profile``, which runs::

    PYTHONPATH=tests python -m pytest -n 2 --dist=loadfile -p time_profile
    python tests/time_profile.py        # the table, from data/time_profile/

Each process writes ``data/time_profile/<worker>.json`` (``ELECTRA_TF_TIME_PROFILE``
names another folder) when its tests end. Sampling costs about a tenth of the run's time.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERVAL = 0.005  # seconds between samples (plus the time a sample takes)

# (category, substrings of "file:function" that put a sample in it); the first category
# whose substring appears anywhere in the sample's stack wins.
CATEGORIES = (
    ("waiting on child processes", ("subprocess.py:communicate", "subprocess.py:wait",
                                    "subprocess.py:_wait", "popen_fork", "nbclient",
                                    "crash.py:kill_when", "base_events.py:run_until_complete")),
    ("tracing tf.functions", ("_create_concrete_function", "func_graph_from_py_func")),
    ("TensorFlow checkpoints", ("checkpoint.py:",)),
    ("Keras .keras save/load", ("saving_lib.py", "saving_api.py")),
    ("executing functions and ops", ("quick_execute", "TFE_Py_Execute", ":call_function")),
    ("importing", ("<frozen importlib",)),
    ("data prep (Python)", ("data_prep/",)),
    ("building models, eager calls (Python)", ("layer.py:__call__", "build")),
)
OTHER = "other"


def category(stack: list[str]) -> str:
    """The category of one sample: its stack as "file:function" strings, outermost first."""
    joined = "\n".join(stack)
    for name, markers in CATEGORIES:
        if any(marker in joined for marker in markers):
            return name
    return OTHER


class _Sampler:
    def __init__(self):
        self.main = threading.main_thread().ident
        self.test = "(outside tests)"
        self.seconds = collections.defaultdict(lambda: collections.Counter())
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _stack(self) -> list[str]:
        """The test thread's stack, outermost first. Walking another thread's live frames
        can meet one just freed and reused (seen once in a whole run): the caller drops
        such a sample."""
        frame = sys._current_frames().get(self.main)
        stack = []
        while frame is not None:
            stack.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
            frame = frame.f_back
        return stack[::-1]

    def _run(self):
        last = time.perf_counter()
        while not self.stopped.is_set():
            try:
                stack = self._stack()
            except Exception:  # noqa: BLE001  a frame freed while the test thread ran on
                stack = None
            now = time.perf_counter()
            if stack is not None:  # a dropped sample's time goes to the next one
                self.seconds[self.test][category(stack)] += now - last
                last = now
            time.sleep(INTERVAL)


_sampler: _Sampler | None = None


def _out_dir() -> str:
    return os.environ.get("ELECTRA_TF_TIME_PROFILE", os.path.join(ROOT, "data", "time_profile"))


def pytest_configure(config):
    global _sampler
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # the xdist controller runs no tests
    _sampler = _Sampler()
    _sampler.thread.start()


def pytest_runtest_logstart(nodeid, location):
    if _sampler is not None:
        _sampler.test = nodeid


def pytest_unconfigure(config):
    if _sampler is None:
        return
    _sampler.stopped.set()
    _sampler.thread.join()
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    os.makedirs(_out_dir(), exist_ok=True)
    path = os.path.join(_out_dir(), f"{worker}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({test: dict(counts) for test, counts in _sampler.seconds.items()}, f)
    os.replace(path + ".tmp", path)


def table(folder: str) -> list[str]:
    """Seconds and shares per category over every process's file in `folder`, then the
    ten tests that took longest."""
    totals, per_test = collections.Counter(), collections.Counter()
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            for test, counts in json.load(f).items():
                totals.update(counts)
                per_test[test] += sum(counts.values())
    if not totals:
        raise SystemExit(f"{folder}: no profile (run pytest with -p time_profile first)")
    whole = sum(totals.values())
    lines = [f"{whole:8.0f} s  in all (test-process seconds)"]
    lines += [f"{seconds:8.0f} s  {seconds / whole:4.0%}  {name}"
              for name, seconds in totals.most_common()]
    lines += ["", "slowest tests:"]
    lines += [f"{seconds:8.1f} s  {test}" for test, seconds in per_test.most_common(10)]
    return lines


if __name__ == "__main__":
    print("\n".join(table(sys.argv[1] if len(sys.argv) > 1 else _out_dir())))
