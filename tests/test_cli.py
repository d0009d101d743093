"""Bad input is one line; an internal failure shows its traceback, labelled as a bug."""

import json

import pytest
import tensorflow as tf

from electra_tf import cli


def _raise(make):
    try:
        make()
    except Exception as e:  # noqa: BLE001 - the error under test
        return e
    raise AssertionError("nothing raised")


def test_bad_input_is_one_line_and_library_failures_are_not(monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)

    def check():
        raise ValueError("corpus.txt:3: expected a document")

    assert cli.error_line(_raise(check)) == "corpus.txt:3: expected a document"
    assert cli.error_line(_raise(lambda: open("/nonexistent/x.txt"))).startswith(
        "[Errno 2] No such file or directory")
    # Raised inside a library (here json; in the wild Keras or tf.distribute): a bug.
    assert cli.error_line(_raise(lambda: json.loads("{"))) is None
    missing = _raise(lambda: tf.io.read_file("/nonexistent/shard.tfrecord"))
    assert "/nonexistent/shard.tfrecord" in cli.error_line(missing)
    internal = _raise(lambda: tf.reshape(tf.zeros([3]), [2]))
    assert cli.error_line(internal) is None
    monkeypatch.setenv("ELECTRA_TF_TRACEBACK", "1")
    assert cli.error_line(_raise(check)) is None


def test_run_main_prints_one_line_or_labels_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)

    def bad_input():
        raise ValueError("--train_batch_size=7 must be a positive multiple of 2")

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main("prog", bad_input)(["prog"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "prog: error: --train_batch_size=7 must be a positive multiple of 2\n")

    with pytest.raises(json.JSONDecodeError):
        cli.run_main("prog", lambda: json.loads("{"))(["prog"])
    assert capsys.readouterr().err.startswith(
        "prog: internal error (JSONDecodeError); this is a bug, not your input")


def test_the_packages_own_errors_are_input_wherever_it_is_installed(monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)
    from electra_tf import files

    # files.read_json raises from inside the package, which may sit in site-packages.
    monkeypatch.setattr(cli.sysconfig, "get_paths", lambda: {
        "stdlib": "/nonexistent", "purelib": files.__file__.rsplit("electra_tf", 1)[0],
        "platlib": "/nonexistent"})
    error = _raise(lambda: files.read_json("/nonexistent/settings.json"))
    assert cli.error_line(error) == "/nonexistent/settings.json: no such file"
    # A NotFoundError that names no path (a kernel, a resource) is internal.
    kernel = tf.errors.NotFoundError(None, None, "No registered 'Foo' OpKernel for 'GPU'")
    assert cli.error_line(kernel) is None
