"""The suite's time profiler (tests/time_profile.py): how a sample is sorted, and the
table from the files the test processes write."""

import json

import pytest
import time_profile


@pytest.mark.parametrize("stack, expected", [
    (["runner.py:run", "subprocess.py:communicate", "func_graph.py:func_graph_from_py_func"],
     "waiting on child processes"),
    (["trainer.py:fit", "tracing_compilation.py:_create_concrete_function",
      "execute.py:quick_execute"], "tracing tf.functions"),
    (["trainer.py:fit", "execute.py:quick_execute"], "executing functions and ops"),
    (["models.py:__init__", "layer.py:__call__"], "building models, eager calls (Python)"),
    (["test_x.py:test_y", "json.py:dumps"], "other"),
])
def test_a_sample_goes_to_the_first_category_its_stack_matches(stack, expected):
    assert time_profile.category(stack) == expected


def test_the_table_adds_up_the_processes(tmp_path):
    (tmp_path / "gw0.json").write_text(json.dumps(
        {"t.py::a": {"tracing tf.functions": 3.0, "other": 1.0}}))
    (tmp_path / "gw1.json").write_text(json.dumps(
        {"t.py::b": {"tracing tf.functions": 1.0, "executing functions and ops": 5.0}}))
    lines = time_profile.table(str(tmp_path))
    assert lines[0].split()[:2] == ["10", "s"]
    assert lines[1].split() == ["5", "s", "50%", "executing", "functions", "and", "ops"]
    assert lines[2].split() == ["4", "s", "40%", "tracing", "tf.functions"]
    assert lines[-2:] == ["     6.0 s  t.py::b", "     4.0 s  t.py::a"]
    with pytest.raises(SystemExit, match="no profile"):
        time_profile.table(str(tmp_path / "empty"))


def test_the_sampler_survives_a_stack_it_cannot_read(monkeypatch):
    sampler = time_profile._Sampler()
    calls = []

    def stack():
        calls.append(1)
        if len(calls) == 1:  # as when a frame is freed mid-walk
            raise AttributeError("'TF_Operation' object has no attribute 'f_code'")
        return ["test_x.py:test_y", "execute.py:quick_execute"]

    monkeypatch.setattr(sampler, "_stack", stack)
    sampler.test = "t.py::a"
    sampler.thread.start()
    while len(calls) < 5:
        sampler.stopped.wait(0.01)
    sampler.stopped.set()
    sampler.thread.join()
    assert set(sampler.seconds["t.py::a"]) == {"executing functions and ops"}
    assert sampler.seconds["t.py::a"]["executing functions and ops"] > 0
