"""Real crashes for the crash tests: a command run as ``python -m <module>`` in its own
process, SIGKILLed the moment a file appears (or a line is printed), never after a timer.

The kill goes to the command's process alone, as the kernel's OOM killer or ``kill -9``
would send it; its worker processes must then die with it and write nothing more:
:func:`kill_when` freezes them (SIGSTOP) just before the kill, so none can write after
it, and fails the test when one outlives the command or the watched folder changes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_SECONDS = 0.02

# Names a write in progress goes under: files.atomic_write's and the shard writers'
# ".tmp-" prefix, the feature cache's and TensorFlow's ".tmp"-and-hex suffix,
# build_tlm_index's ".partial" folder, files.replace_tree's ".staging-", TensorFlow's
# "<prefix>_temp/" checkpoint parts and ".tempstate" files, and the hidden work folders
# (".work", ".worker-<id>") that a finished run deletes.
TEMP_NAME = re.compile(r"(^|/)\.(tmp-|staging-|work/|worker-)|\.tmp-?[0-9a-f]{32}$"
                       r"|\.partial(/|$)|_temp/|\.tempstate|\.tmp$")


@dataclass
class Killed:
    """What the kill hit: the trigger that fired, when, and the command's output."""

    trigger: str  # the path that appeared (relative to the watched folder), or the line
    seconds: float  # from the start to the kill
    output: str  # stdout and stderr up to the kill


def _command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _environment() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def kill_when(module: str, args: list[str], watch: str, appears: str | list[str] = (),
              printed: str | None = None, timeout: float = 600.0) -> Killed:
    """Run ``python -m module *args`` (cwd: the repo) and SIGKILL it as soon as a file
    matching one of the `appears` globs exists under folder `watch` (``**`` spans
    folders) or its output holds `printed`, polling every 20 ms.

    Fails the test when the command ends before that (with the end of its output), when
    `timeout` passes first, when one of its child processes is still alive afterwards
    (waited for up to a minute) or when anything under `watch` changed after the kill.
    """
    patterns = [appears] if isinstance(appears, str) else list(appears)
    assert patterns or printed, "nothing to wait for"
    with tempfile.TemporaryDirectory(prefix="crash-") as logs:
        log_path = os.path.join(logs, "output.txt")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(_command(module, *args), cwd=ROOT, env=_environment(),
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        workers: set[int] = set()
        try:
            started = time.monotonic()
            while True:
                fired = _matching(watch, patterns) or _printed(log_path, printed)
                if fired:
                    break
                if process.poll() is not None:
                    pytest.fail(f"{module} ended (exit {process.returncode}) before "
                                f"{patterns or printed!r} appeared: the kill never happened; "
                                f"its output ends with:\n{_tail(log_path)}")
                if time.monotonic() - started > timeout:
                    pytest.fail(f"{module}: {patterns or printed!r} did not appear in "
                                f"{timeout:.0f} s; its output ends with:\n{_tail(log_path)}")
                time.sleep(POLL_SECONDS)
            workers = _descendants(process.pid)
            # Frozen first, so that no worker can write between the kill and the snapshot
            # below: killed with the command they die frozen; left alive, they stay
            # frozen and _wait_gone fails. Not multiprocessing's resource tracker, which
            # ends by itself when the command's end closes its pipe.
            for pid in workers - _resource_trackers(workers):
                _signal(pid, signal.SIGSTOP)
            process.send_signal(signal.SIGKILL)
            seconds = time.monotonic() - started
            process.wait()
            after_kill = _snapshot(watch)
            _wait_gone(workers, module)
            assert _snapshot(watch) == after_kill, (
                f"{module}'s workers wrote under {watch} after it was killed")
            with open(log_path, encoding="utf-8", errors="replace") as f:
                output = f.read()
        finally:  # after a failure: what is left of what this test started
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: its group
                process.wait()
            for pid in _alive(workers):
                _signal(pid, signal.SIGKILL)
    return Killed(fired, seconds, output)


def glob_pattern(pattern: str) -> re.Pattern:
    """`pattern` as glob reads it: ``*`` and ``?`` within one name, ``**/`` any folders."""
    parts = re.split(r"(\*\*/|\*|\?)", pattern)
    wild = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts) + r"\Z")


def _paths(folder: str):
    """Paths under `folder`, relative and '/'-separated, folders with a final '/'."""
    for root, dirs, names in os.walk(folder):
        relative = os.path.relpath(root, folder).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        yield from (prefix + name + "/" for name in dirs)
        yield from (prefix + name for name in names)


def _matching(folder: str, patterns: list[str]) -> str | None:
    """The first path under `folder` that a pattern matches."""
    compiled = [glob_pattern(p) for p in patterns]
    for path in _paths(folder) if compiled else ():
        if any(p.match(path.rstrip("/")) for p in compiled):
            return path.rstrip("/")
    return None


def _printed(log_path: str, text: str | None) -> str | None:
    if text is None:
        return None
    with open(log_path, "rb") as f:
        return text if text.encode() in f.read() else None


def _tail(log_path: str, lines: int = 25) -> str:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return "\n".join(f.read().splitlines()[-lines:])


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (Linux /proc)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        found[int(name)] = (int(fields[1]), fields[0])
    return found


def _descendants(pid: int) -> set[int]:
    processes = _processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _) in processes.items()
                    if parent in frontier} - found
        found |= frontier
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # ended meanwhile
        pass


def _resource_trackers(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resource_tracker" in f.read():
                    found.add(pid)
        except OSError:
            continue
    return found


def _alive(pids: set[int]) -> set[int]:
    processes = _processes()
    return {pid for pid in pids if pid in processes and processes[pid][1] not in "ZX"}


def _wait_gone(pids: set[int], module: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while _alive(pids):
        if time.monotonic() > deadline:
            pytest.fail(f"{module}: worker processes {sorted(_alive(pids))} outlived the "
                        f"killed command by {limit:.0f} s")
        time.sleep(POLL_SECONDS)


def _snapshot(folder: str) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


def temporaries(folder: str) -> list[str]:
    """Paths under `folder` (relative, '/'-separated) named as a write in progress."""
    return sorted(p for p in _paths(folder) if TEMP_NAME.search(p))


def final_files(folder: str) -> list[str]:
    """Files under `folder` (relative paths) not named as a write in progress."""
    return sorted(p for p in _paths(folder) if not p.endswith("/") and not TEMP_NAME.search(p))


def cut_json(folder: str) -> list[str]:
    """Final-named ``.json`` files under `folder` that do not parse (a write cut short)."""
    cut = []
    for name in final_files(folder):
        if name.endswith(".json"):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    json.load(f)
            except ValueError:
                cut.append(name)
    return cut
