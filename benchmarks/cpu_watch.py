"""CPU that other processes use during a measurement window (for the benchmarks).

On a 2-core machine a second busy process changes timings a lot; the benchmarks print
this next to their numbers so a perturbed run is visible as such.
"""

import os
import time


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
