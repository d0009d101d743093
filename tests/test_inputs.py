"""The pretraining input pipeline and its dynamic masking."""

import numpy as np
import pytest
import tensorflow as tf

from data_prep.build_pretraining_dataset import make_features, serialize
from electra_tf.masking import MaskingConfig, max_predictions_per_seq
from electra_tf.pretraining.inputs import make_dataset
from electra_tf.tokenization import SpecialIds

SPECIAL = SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
VOCAB = 5000
SEQ = 64


def write_shards(folder, num_files=4, per_file=64, seed=0):
    rng = np.random.default_rng(seed)
    originals = []
    for f in range(num_files):
        with tf.io.TFRecordWriter(str(folder / f"pretrain_data.tfrecord-{f}-of-{num_files}")) as w:
            for _ in range(per_file):
                length = int(rng.integers(6, SEQ - 3))
                split = int(rng.integers(1, length))
                tokens = rng.integers(1000, VOCAB, length).tolist()
                features = make_features(tokens[:split], tokens[split:], SEQ, 101, 102)
                originals.append(features[0])
                w.write(serialize(*features))
    return str(folder / "pretrain_data.tfrecord-*"), originals


def unmasked_rows(batch):
    """The examples of a batch with their original tokens put back."""
    ids = batch["input_ids"].numpy().copy()
    positions = batch["masked_lm_positions"].numpy()
    weights = batch["masked_lm_weights"].numpy() > 0
    originals = batch["masked_lm_ids"].numpy()
    for row in range(len(ids)):
        ids[row, positions[row][weights[row]]] = originals[row][weights[row]]
    return {tuple(row) for row in ids}


def masking(style):
    return MaskingConfig(SPECIAL, VOCAB, max_predictions_per_seq(0.15, SEQ), 0.15, style)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"))


def collect(pattern, style, batches=40, seed=1):
    dataset = make_dataset(pattern, 32, SEQ, masking(style), seed=seed)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(batches)]


def test_max_predictions_is_the_originals():
    assert max_predictions_per_seq(0.15, 128) == 19
    assert max_predictions_per_seq(0.15, 512) == 79


def test_masking_counts_positions_and_special_tokens(shards):
    pattern, originals = shards
    known = {tuple(o) for o in originals}
    n = max_predictions_per_seq(0.15, SEQ)
    for batch in collect(pattern, "electra", batches=10):
        assert batch["input_ids"].shape == (32, SEQ)
        assert batch["masked_lm_positions"].shape == (32, n)
        for row in range(32):
            weights = batch["masked_lm_weights"][row]
            real = int(batch["input_mask"][row].sum())
            expected = max(1, min(n, int(np.round(real * 0.15)), real - 3))
            assert weights.sum() == expected and np.all(weights[:expected] == 1)
            positions = batch["masked_lm_positions"][row][:expected]
            assert len(set(positions)) == expected, "a position chosen twice"
            assert np.all(positions > 0) and np.all(positions < real)
            assert np.all(batch["masked_lm_positions"][row][expected:] == 0)
            original = batch["input_ids"][row].copy()
            original[positions] = batch["masked_lm_ids"][row][:expected]
            assert tuple(original) in known, "unmasking must give back a real example"
            assert not np.isin(batch["masked_lm_ids"][row][:expected], [0, 101, 102]).any()


@pytest.mark.parametrize("style,mask_rate,random_rate", [("electra", 0.85, 0.0),
                                                         ("bert", 0.8, 0.1)])
def test_replacement_rates(shards, style, mask_rate, random_rate):
    pattern, _ = shards
    masked = random = kept = 0
    for batch in collect(pattern, style, batches=60):
        weights = batch["masked_lm_weights"] > 0
        at = np.take_along_axis(batch["input_ids"], batch["masked_lm_positions"], axis=1)
        original = batch["masked_lm_ids"]
        masked += np.sum((at == 103) & weights)
        kept += np.sum((at == original) & weights)
        random += np.sum((at != 103) & (at != original) & weights)
    total = masked + kept + random
    assert total > 10000
    assert abs(masked / total - mask_rate) < 0.015
    assert abs(random / total - random_rate) < 0.015
    assert abs(kept / total - (1 - mask_rate - random_rate)) < 0.015


def test_seeded_pipeline_is_reproducible_and_batches_differ(shards):
    pattern, _ = shards
    a = collect(pattern, "electra", batches=3, seed=5)
    b = collect(pattern, "electra", batches=3, seed=5)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["masked_lm_positions"], a[1]["masked_lm_positions"])


def test_seeds_and_pipelines_draw_different_masks(shards):
    pattern, _ = shards
    a = collect(pattern, "electra", batches=1, seed=5)[0]
    b = collect(pattern, "electra", batches=1, seed=6)[0]
    assert not np.array_equal(a["masked_lm_positions"], b["masked_lm_positions"])


def test_fewer_files_than_pipelines_shards_records_without_overlap(tmp_path):
    pattern, originals = write_shards(tmp_path, num_files=1, per_file=40)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        dataset = make_dataset(pattern, 4, SEQ, masking("electra"), is_training=True,
                               input_context=context, seed=None)
        seen.append(set().union(*(unmasked_rows(b) for b in dataset.take(100))))
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40


def test_input_context_shards_files_and_splits_the_batch(shards):
    pattern, _ = shards
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        dataset = make_dataset(pattern, 32, SEQ, masking("electra"), is_training=False,
                               input_context=context)
        batches = list(dataset)
        assert all(b["input_ids"].shape == (16, SEQ) for b in batches)
        seen.append(set().union(*(unmasked_rows(b) for b in batches)))
    assert not seen[0] & seen[1], "two pipelines read the same examples"
    assert len(seen[0]) + len(seen[1]) == 4 * 64


def test_wrong_records_are_a_clear_error(tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "x.tfrecord")) as w:
        w.write(serialize(*make_features([1000, 1001], [], 32, 101, 102)))
    with pytest.raises(ValueError, match=r"x.tfrecord: record 0: input_ids has 32 values, "
                                         r"expected max_seq_length=64"):
        make_dataset(str(tmp_path / "x.tfrecord"), 8, SEQ, masking("electra"))
    with pytest.raises(ValueError, match="no TFRecord files match"):
        make_dataset(str(tmp_path / "none-*"), 8, SEQ, masking("electra"))
    (tmp_path / "good").mkdir()
    good = write_shards(tmp_path / "good", num_files=2)[0]
    (tmp_path / "good" / "summary.json").write_text('{"shards": 2}')
    with pytest.raises(ValueError, match=r"good/summary.json: not a TFRecord file"):
        make_dataset(str(tmp_path / "good" / "*"), 8, SEQ, masking("electra"))
    make_dataset(good, 8, SEQ, masking("electra"))  # the shards alone are fine
    with pytest.raises(ValueError, match="masking style 'roberta'"):
        MaskingConfig(SPECIAL, VOCAB, 10, 0.15, "roberta")
