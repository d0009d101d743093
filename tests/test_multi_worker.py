"""Two workers on loopback: a real MultiWorkerMirroredStrategy pretraining run."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from batches import one_step_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_writes(built, sample_paths,
                                                              tmp_path):
    _, shards, _ = built
    data_dir, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "multi_worker_run.py"), str(out),
             str(data_dir), sample_paths["vocab"],
             os.path.join(shards, "pretrain_data.tfrecord*")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        # The reference while the workers start: one step of a single process on all 4
        # rows of the global batch they split 2 + 2.
        batch, build_task = one_step_setup()
        task = build_task()
        single = task.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
        single_weights = [v.numpy() for v in task.pretrainer.weights]
        for process in processes:  # the bound only stops a hung collective hanging the suite
            logs.append(process.communicate(timeout=900)[0])
    finally:
        for process in processes:
            process.kill()
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log[-3000:]

    results = [json.loads((out / f"worker-{i}.json").read_text()) for i in range(2)]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["summary"]["step"] for r in results] == [6, 6]
    model_dir = data_dir / "models" / "shared"
    # The chief (worker 0) keeps checkpoints, events, the export and the summary; the
    # other worker's checkpoint copies are gone.
    assert sorted(p.name for p in model_dir.iterdir() if p.name.startswith("model.ckpt-")) \
        == [f"model.ckpt-{s}.{e}" for s in (2, 4, 6) for e in ("data-00000-of-00001", "index")]
    assert {"checkpoint", "encoder.keras", "vocab.txt", "train_summary.json",
            "pretraining_config.json", "train"} <= {p.name for p in model_dir.iterdir()}
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".worker-")]
    assert json.loads((model_dir / "train_summary.json").read_text())["step"] == 6
    assert len(list((model_dir / "train").iterdir())) == 1  # one event file: the chief's

    # One step on the same global batch of 4, split 2 + 2 over the workers, equals one
    # step of a single process on all 4 rows. Only the order of the cross-worker sums
    # differs, so float32 agrees to ~1e-6 relative; 1e-5 leaves room for rounding.
    for result in results:
        assert result["one_step_loss"] == pytest.approx(single.history["loss"][0], rel=1e-5)
    for index in range(2):
        with np.load(out / f"worker-{index}.npz") as saved:
            trained = [saved[f"arr_{k}"] for k in range(len(saved.files))]
        for a, b in zip(single_weights, trained, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
