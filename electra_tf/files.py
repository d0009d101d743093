"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, data: bytes | str) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    Remote paths (``gs://...``) go through ``tf.io.gfile``.
    """
    if "://" in path:
        import tensorflow as tf

        tmp = f"{path}.tmp-{os.getpid()}"
        with tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG through :func:`atomic_write`, and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
