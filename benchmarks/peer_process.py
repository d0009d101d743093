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

from matmul_floor import onednn_version


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


# ------------------------------------------------------------- precisions and ratios

PRECISIONS = ("fp32", "bf16", "fp16")


def ratio(numerator, denominator) -> float:
    """numerator / denominator, NaN when either is missing (None, NaN) or the
    denominator is 0: a ratio of something not measured is not a number."""
    if numerator is None or denominator is None or denominator == 0:
        return float("nan")
    return float(numerator) / float(denominator)


def best_of(values: dict, lower_is_better: bool = False) -> tuple:
    """(key, value) of the best measured value (None and NaN skipped), (None, NaN) when
    none was measured."""
    measured = {k: v for k, v in values.items() if v is not None and v == v}
    if not measured:
        return None, float("nan")
    key = (min if lower_is_better else max)(measured, key=measured.get)
    return key, measured[key]


def format_ratio(value: float) -> str:
    """"1.23x", or "-" when not measured."""
    return "-" if value is None or value != value else f"{value:.2f}x"


def format_share(value: float) -> str:
    """A fraction as "48.7%", or "-" when not measured."""
    return "-" if value is None or value != value else f"{value:.1%}"


def verdict(value: float, target: float) -> str:
    if value is None or value != value:
        return "not measured"
    return "MET" if value >= target else "NOT met"


def torch_autocast(device: str, precision: str):
    """The context PyTorch runs a forward pass in at `precision`: nothing for fp32,
    torch.autocast to bfloat16 / float16 otherwise ("cpu" or "cuda")."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device, dtype=dtype)


def torch_sync(device: str) -> None:
    """Waits for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def torch_info() -> dict:
    """What PyTorch sees (asked in the peer process): version, CUDA, the device, the
    oneDNN it was built with (its CPU matmuls)."""
    import torch

    cuda = torch.cuda.is_available()
    info = {"torch": torch.__version__, "cuda_available": cuda,
            "cuda_version": torch.version.cuda, "threads": torch.get_num_threads(),
            "onednn": onednn_version(torch.__config__.show())}
    if cuda:
        info.update(device=torch.cuda.get_device_name(0),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    bf16_supported=torch.cuda.is_bf16_supported())
    return info


def torch_setup(device: str, tf32: bool | None = None) -> None:
    """The peer's process-wide settings: one thread per core on the CPU; on CUDA,
    TensorFloat-32 for fp32 matmuls on or off (None: PyTorch's default, off) so that the
    peer's fp32 is the same arithmetic as ours (TensorFlow uses TF32 by default)."""
    import torch

    if device == "cpu":
        torch.set_num_threads(os.cpu_count())
    elif tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
