"""What the benchmarks share: the peer in its own process, and the CPU other processes
use during a measurement window.

The peer (PyTorch / transformers) runs in a spawned process, so TensorFlow is never
imported there and the two runtimes cannot disturb each other (thread pools, two OpenMPs,
malloc state). On a 2-core machine a second busy process changes timings a lot; the
benchmarks print the CPU others used next to their numbers, so a perturbed run shows.
"""

import multiprocessing
import os
import time
from collections.abc import Callable


def one_line(e: BaseException) -> str:
    """An exception as one short line."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:240]


def serve(conn, handle: Callable) -> None:
    """The peer process's loop: answers each command tuple with ("ok", handle(command))
    or ("error", message), until ("stop",)."""
    while True:
        command = conn.recv()
        if command[0] == "stop":
            return
        try:
            conn.send(("ok", handle(command)))
        except Exception as e:  # reported by the parent, in one line
            conn.send(("error", one_line(e)))


class PeerProcess:
    """`target(conn, *args)` (a module-level function that calls :func:`serve`) in a
    spawned process; :meth:`call` sends a command and returns its answer."""

    def __init__(self, target: Callable, *args):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=target, args=(child, *args), daemon=True)
        self._process.start()
        self.pid = self._process.pid

    def call(self, *command):
        self._conn.send(command)
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self):
        try:
            self._conn.send(("stop",))
        except OSError:  # already gone
            pass
        self._process.join(timeout=30)


class CpuWatch:
    """CPU that other processes used while a window was open, in cores: /proc/stat busy
    time minus this process's and the given (peer) processes'."""

    def __init__(self, *pids):
        self.pids = (os.getpid(),) + tuple(p for p in pids if p)

    def __enter__(self):
        self._start = (self._busy(), self._ours(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, ours, start = self._start
        wall = time.perf_counter() - start
        self.other_cores = max(0.0, (self._busy() - busy) - (self._ours() - ours)) / wall
        return False

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # - idle, iowait

    def _ours(self):
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / os.sysconf("SC_CLK_TCK")
