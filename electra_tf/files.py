"""The one file layer: every path a user names goes through here.

Paths are local or any scheme ``tf.io.gfile`` serves (``gs://`` buckets on Colab and
Cloud TPUs, ``ram://`` in the tests, ``hdfs://``, ...), so a data dir, vocab, corpus,
model dir, checkpoint or export may live in a bucket. Nothing else in the package calls
``open`` or ``os.path``'s file queries on a user path.

Writes never leave half a file where a reader looks: :func:`atomic_write` writes beside
the target under a temporary name and renames it over the target when complete (on GCS
an object appears whole anyway). Libraries that only read or write local files (Keras'
``.keras`` archives, Whoosh indexes) get a local copy through :func:`local_copy` and
:func:`staged_output`.

Local paths go to Python's own file calls and only ``scheme://`` paths to
``tf.io.gfile``, so TensorFlow is imported at the first remote path, not before: a
command that touches only local files (``electra-samples``) starts in a fraction of a
second instead of the ~5 s TensorFlow's import takes, and a local corpus is read by
Python's buffered readers rather than through a GFile wrapper.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import io
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any


def _gfile():
    """``tf.io.gfile``, TensorFlow imported on first use (remote paths only)."""
    import tensorflow as tf

    return tf.io.gfile


@contextlib.contextmanager
def _missing_ok(path: str) -> Iterator[None]:
    """Ignore a missing `path`: FileNotFoundError locally, TensorFlow's NotFoundError on
    other schemes."""
    if is_local(path):
        with contextlib.suppress(FileNotFoundError):
            yield
        return
    import tensorflow as tf

    with contextlib.suppress(tf.errors.NotFoundError):
        yield


def is_local(path: str) -> bool:
    """True for a plain path on this machine's file system (no ``scheme://``; a
    ``file://`` URL goes through ``tf.io.gfile`` like any other scheme)."""
    return "://" not in path


def join(path: str, *parts: str) -> str:
    """`path` joined with `parts` by ``/`` (right for local and remote paths alike)."""
    return posixpath.join(path, *parts) if not is_local(path) else os.path.join(path, *parts)


def parent(path: str) -> str:
    """The folder holding `path` (``.`` for a bare local file name)."""
    head = posixpath.dirname(path.rstrip("/")) if not is_local(path) else os.path.dirname(path)
    return head or "."


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else _gfile().exists(path)


def isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else _gfile().isdir(path)


def isfile(path: str) -> bool:
    if is_local(path):
        return os.path.isfile(path)
    return _gfile().exists(path) and not _gfile().isdir(path)


def listdir(path: str) -> list[str]:
    """Sorted names in folder `path` (folders without a trailing ``/``)."""
    names = os.listdir(path) if is_local(path) else _gfile().listdir(path)
    return sorted(name.rstrip("/") for name in names)


def glob(pattern: str) -> list[str]:
    """Sorted paths matching `pattern` (``*`` matches names starting with a dot too, as
    on every scheme ``tf.io.gfile`` serves)."""
    if is_local(pattern):
        return sorted(_glob.glob(pattern, include_hidden=True))
    return sorted(_gfile().glob(pattern))


def _walk(path: str) -> Iterator[tuple[str, list[str], list[str]]]:
    return os.walk(path) if is_local(path) else _gfile().walk(path)


def walk_files(path: str) -> list[str]:
    """Every file under folder `path`, recursively, sorted; hidden names skipped."""
    found = []
    for root, dirs, names in _walk(path):
        dirs[:] = sorted(d for d in dirs if not d.rstrip("/").startswith("."))
        found += [join(root, name) for name in names if not name.startswith(".")]
    return sorted(found)


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    else:
        _gfile().makedirs(path)


def size_and_mtime(path: str) -> tuple[int, int]:
    """Bytes and modification time (whole seconds) of file `path`."""
    if is_local(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns // 10**9
    stat = _gfile().stat(path)
    return int(stat.length), int(stat.mtime_nsec // 10**9)


def remove(path: str) -> None:
    """Delete file `path`; a missing file is not an error."""
    with _missing_ok(path):
        if is_local(path):
            os.remove(path)
        else:
            _gfile().remove(path)


def rmtree(path: str) -> None:
    """Delete folder `path` and all it holds; a missing folder is not an error."""
    with _missing_ok(path):
        if is_local(path):
            shutil.rmtree(path)
        else:
            _gfile().rmtree(path)


def rename(source: str, target: str) -> None:
    """Move file `source` to `target`, replacing it (a rename on local disks)."""
    if is_local(source) and is_local(target):
        os.replace(source, target)
    else:
        _gfile().rename(source, target, overwrite=True)


def copy(source: str, target: str) -> None:
    """Copy file `source`'s bytes to `target`, replacing it."""
    if is_local(source) and is_local(target):
        shutil.copyfile(source, target)
    else:
        _gfile().copy(source, target, overwrite=True)


def copy_tree(source: str, target: str) -> None:
    """Copy every file under folder `source` to the same place under `target`."""
    for root, _, names in _walk(source):
        relative = root[len(source.rstrip("/")):].lstrip("/")
        folder = join(target, relative) if relative else target
        makedirs(folder)
        for name in names:
            copy(join(root, name), join(folder, name))


def open_file(path: str, mode: str = "r", encoding: str = "utf-8",
              errors: str = "strict") -> io.IOBase:
    """`path` opened for reading or writing, text or binary (``"rb"``, ``"wb"``, ...).

    Text mode decodes with `encoding` and keeps line endings as they are (like
    ``open(..., newline="")``), so the CSV reader sees CRLF rows; ``"utf-8-sig"`` drops a
    leading byte-order mark. A missing file raises FileNotFoundError naming `path`.
    """
    if is_local(path):
        try:
            if "b" in mode:
                return open(path, mode)  # noqa: SIM115 (the caller closes it)
            return open(path, mode, encoding=encoding, errors=errors, newline="")  # noqa: SIM115
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
    import tensorflow as tf

    binary_mode = mode if "b" in mode else mode + "b"
    try:
        handle = tf.io.gfile.GFile(path, binary_mode)
        if "r" in mode:
            handle.size()  # GFile opens lazily: fail here, not at the first read
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if "b" in mode:
        return handle
    return io.TextIOWrapper(_Readable(handle), encoding=encoding, errors=errors, newline="")


class _Readable(io.RawIOBase):
    """A GFile as a raw stream (what ``io.TextIOWrapper`` and ``bz2`` wrap)."""

    def __init__(self, handle):
        self._handle = handle
        self._writing = "w" in handle.mode or "a" in handle.mode

    def readable(self) -> bool:
        return not self._writing

    def writable(self) -> bool:
        return self._writing

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data) -> int:
        self._handle.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        if self._writing and not self.closed:
            self._handle.flush()

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


def read_bytes(path: str) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def _line_breaks(data: bytes) -> int:
    """Line ends in `data` as text mode counts them: ``\\n``, ``\\r`` and ``\\r\\n``."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def read_text(path: str, encoding: str = "utf-8") -> str:
    """The whole of text file `path`; invalid bytes raise ValueError naming the file."""
    return decode_text(read_bytes(path), path, encoding)


def decode_text(data: bytes, path: str, encoding: str = "utf-8") -> str:
    """`data` read from `path` as text; invalid bytes raise ValueError naming the file
    and line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = _line_breaks(data[:e.start]) + 1
        name = "UTF-8" if encoding.lower().replace("_", "-").startswith("utf-8") else encoding
        raise ValueError(f"{path}:{line}: not {name} text ({e.reason} at byte {e.start})"
                         ) from None


def json_lines(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of JSON-lines `text` read from `path`;
    a line that is not JSON is a ValueError naming the file and line."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from None


def read_json(path: str, missing_ok: bool = False):
    """The JSON value in `path` (None when it does not exist and `missing_ok`); invalid
    JSON is a ValueError naming the file and line."""
    if missing_ok and not exists(path):
        return None
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def first_invalid_utf8(path: str) -> tuple[int, int, str] | None:
    """(line, byte offset, reason) of the first byte of `path` that is not UTF-8, or None.
    Lines count as text mode counts them (``\n``, ``\r``, ``\r\n``). Read a block of
    whole lines at a time: a text decoder fails a whole chunk ahead of the line it
    reached, so its own error cannot say where."""
    offset, breaks, carry = 0, 0, b""
    with open_file(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            data = carry + block
            # Whole lines only, whichever their line ends; a final "\r" waits for a
            # possible "\n" in the next block.
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1 \
                if block else len(data)
            lines, carry = data[:cut], data[cut:]
            try:
                lines.decode("utf-8")
            except UnicodeDecodeError as e:
                return (breaks + _line_breaks(lines[:e.start]) + 1, offset + e.start,
                        e.reason)
            if not block:
                return None
            offset += len(lines)
            breaks += _line_breaks(lines)


def not_utf8(path: str, line_mark: str = ": line ") -> str:
    """The error line for `path` when it does not decode as UTF-8, e.g. ``corpus.txt: line
    3: not UTF-8 text (invalid start byte at byte 41)``; `line_mark` ``":"`` gives the
    ``corpus.txt:3:`` form."""
    found = first_invalid_utf8(path)
    if found is None:
        return f"{path}: not UTF-8 text"
    line, byte, reason = found
    return f"{path}{line_mark}{line}: not UTF-8 text ({reason} at byte {byte})"


def atomic_write(path: str, data: bytes | str) -> None:
    """Write `data` beside `path` under a temporary name, then rename it over `path`; the
    folder is created when missing. A reader never sees half of the file."""
    makedirs(parent(path))
    tmp = _temporary_name(path)
    try:
        with open_file(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        rename(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def _temporary_name(path: str) -> str:
    """A name beside `path` no other writer uses (threads, processes, hosts)."""
    return join(parent(path), f".tmp-{posixpath.basename(path)}-{uuid.uuid4().hex}")


def json_text(value, indent: int = 2) -> str:
    """`value` as the package writes JSON: sorted keys, indented, a final newline."""
    return json.dumps(value, indent=indent, sort_keys=True) + "\n"


def write_json(path: str, value, indent: int = 2) -> None:
    """`value` as :func:`json_text` through :func:`atomic_write`."""
    atomic_write(path, json_text(value, indent))


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path holding what `path` holds (a file or a folder): `path` itself when it
    is local, else a copy in a temporary folder, deleted on exit."""
    if is_local(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="electra-tf-") as local:
        target = os.path.join(local, posixpath.basename(path.rstrip("/")) or "copy")
        if isdir(path):
            copy_tree(path, target)
        else:
            copy(path, target)
        yield target


@contextlib.contextmanager
def staged_output(path: str) -> Iterator[str]:
    """A local path to write file or folder `path` at; on a clean exit it is put at
    `path` (a file whole, a folder as :func:`replace_tree` does), on an error nothing is
    written there."""
    with tempfile.TemporaryDirectory(prefix="electra-tf-") as local:
        staged = os.path.join(local, posixpath.basename(path.rstrip("/")) or "out")
        yield staged
        if os.path.isdir(staged):
            replace_tree(staged, path)
        else:
            makedirs(parent(path))
            tmp = _temporary_name(path)
            try:
                copy(staged, tmp)
                rename(tmp, path)
            except BaseException:
                remove(tmp)
                raise


def replace_tree(source: str, target: str) -> None:
    """Put folder `source`'s files at folder `target`, replacing what was there.

    Locally the new folder is staged beside `target` and renamed into place (the previous
    one set aside first, and put back if the swap fails), so `target` holds either the
    old or the new folder whole, but for the instant between two renames. Object stores
    have no folder rename: there the old files are deleted and the new ones copied, and
    a reader must look for a marker file the writer puts there last.
    """
    if not (is_local(source) and is_local(target)):
        rmtree(target)
        copy_tree(source, target)
        return
    target_parent = parent(os.path.abspath(target))
    os.makedirs(target_parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=target_parent, prefix=".staging-")
    try:
        moved = os.path.join(staging, "new")
        if _same_device(source, staging):
            os.replace(source, moved)
        else:
            shutil.copytree(source, moved)
        old = os.path.join(staging, "old")
        if os.path.exists(target):
            os.replace(target, old)
        try:
            os.replace(moved, target)
        except BaseException:
            if os.path.exists(old) and not os.path.exists(target):
                os.replace(old, target)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def relative_files(path: str) -> list[str]:
    """The files under folder `path` as '/'-separated paths relative to it."""
    top = path.rstrip("/")
    return [found[len(top):].lstrip("/").replace("\\", "/") for found in walk_files(path)]


def check_replaceable(target: str, replaceable: Callable[[str], bool], what: str) -> None:
    """An export may write folder `target` only when it is missing or empty, or holds
    what ``replaceable(target)`` accepts (an earlier export of the same kind): anything
    else is an error naming it, so an export never deletes other files."""
    if not exists(target):
        return
    if not isdir(target):
        raise ValueError(f"{target}: exists and is not a folder")
    if listdir(target) and not replaceable(target):
        raise ValueError(f"{target}: exists and is not {what}; choose another output folder "
                         f"or empty it first")


def publish_tree(staged: str, target: str, last: str) -> None:
    """Put the local folder `staged` at folder `target` whole (check the target first
    with :func:`check_replaceable`). Locally it is swapped in by renames
    (:func:`replace_tree`); object stores cannot rename folders, so there the old files
    are deleted and the new ones copied, those named `last` (what tells a reader the
    folder is complete: a config.json, a saved_model.pb) after all others."""
    if is_local(target):
        replace_tree(staged, target)
        return
    rmtree(target)
    makedirs(target)
    for root, folders, _ in os.walk(staged):  # empty folders too (a SavedModel's assets/)
        for folder in folders:
            relative = os.path.relpath(os.path.join(root, folder), staged)
            makedirs(join(target, *relative.split(os.sep)))
    for name in sorted(relative_files(staged), key=lambda n: posixpath.basename(n) == last):
        destination = join(target, *name.split("/"))
        makedirs(parent(destination))
        copy(os.path.join(staged, *name.split("/")), destination)


def _same_device(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG through :func:`atomic_write`, and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
