"""The file layer: the same calls on local folders and on a non-local scheme (ram://)."""

import bz2
import os
import uuid

import pytest

from electra_tf import files


@pytest.fixture(params=["local", "ram"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path)
    return f"ram://files-{uuid.uuid4().hex}"


def test_atomic_write_read_list_and_glob(root):
    path = files.join(root, "a", "b.txt")
    files.atomic_write(path, "one\r\ntwo\n")
    assert files.read_text(path) == "one\r\ntwo\n"
    with files.open_file(path) as f:
        assert list(f) == ["one\r\n", "two\n"]  # line endings kept, as csv needs
    assert files.listdir(files.join(root, "a")) == ["b.txt"]  # no temporary name left
    assert files.glob(files.join(root, "a", "*.txt")) == [path]
    assert files.isfile(path) and files.isdir(files.join(root, "a"))
    assert files.size_and_mtime(path)[0] == 9


def test_json_round_trip_and_bad_json_names_the_line(root):
    path = files.join(root, "x.json")
    files.write_json(path, {"b": 1, "a": [1, 2]})
    assert files.read_json(path) == {"a": [1, 2], "b": 1}
    files.atomic_write(path, '{\n  "a": 1,\n}')
    with pytest.raises(ValueError, match=r"x\.json:3: not valid JSON"):
        files.read_json(path)


def test_invalid_utf8_and_missing_files_are_named(root):
    path = files.join(root, "bad.txt")
    files.atomic_write(path, b"fine\nbad \xff here\n")
    with pytest.raises(ValueError, match=r"^.*bad\.txt:2: not UTF-8 text \(invalid start "
                                         r"byte at byte 9\)$"):
        files.read_text(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        files.open_file(files.join(root, "missing.txt"))


def test_binary_streams_wrap_like_local_files(root):
    path = files.join(root, "z.bz2")
    with files.open_file(path, "wb") as f:
        f.write(bz2.compress(b"abc" * 1000))
    with files.open_file(path, "rb") as f:
        assert bz2.open(f).read() == b"abc" * 1000


def test_staged_output_and_local_copy_round_trip_a_folder(root):
    target = files.join(root, "out", "index")
    with files.staged_output(target) as local:
        os.makedirs(os.path.join(local, "sub"))
        with open(os.path.join(local, "sub", "f.txt"), "w") as f:
            f.write("x")
    assert files.walk_files(files.join(root, "out")) == [files.join(target, "sub", "f.txt")]
    with files.local_copy(target) as local:
        with open(os.path.join(local, "sub", "f.txt")) as f:
            assert f.read() == "x"
    with pytest.raises(RuntimeError), files.staged_output(files.join(root, "failed")) as local:
        os.makedirs(local)
        raise RuntimeError("interrupted")
    assert not files.exists(files.join(root, "failed"))


def test_replace_tree_swaps_a_folder_whole(root, tmp_path):
    target = files.join(root, "tree")
    for version in ("old", "new"):
        source = tmp_path / f"src-{version}"
        source.mkdir()
        (source / f"{version}.txt").write_text(version)
        files.replace_tree(str(source), target)
    assert [os.path.basename(p) for p in files.walk_files(target)] == ["new.txt"]
    assert not [p for p in files.listdir(root) if p.startswith(".staging-")]
