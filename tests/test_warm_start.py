"""Continued pretraining (--init_checkpoint): each source the run can start from gives, at
step 0, the source model's own loss on the same batch; mismatches are named errors."""

import json
import os

import numpy as np
import pytest
from batches import make_batch
from original_layout import bert_variables, electra_variables, write_tf1_checkpoint

from electra_tf import checkpoints
from electra_tf.checkpoints import CheckpointMismatchError
from electra_tf.configs import get_config
from electra_tf.modeling import build_pretrainer
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.objectives import PretrainingModel
from electra_tf.pretraining.trainer import pretrain
from electra_tf.pretraining.warm_start import (
    load_source,
    run_model_config,
    source_vocab_file,
    vocab_difference,
    warm_start,
)
from electra_tf.training.checkpointing import model_checkpoint

SEQ = 16


def _loss(pretrainer, batch) -> float:
    """The total pretraining loss of one batch, the generator sampling from seed 0."""
    sampler = getattr(pretrainer, "sampler", None)
    if sampler is not None:
        state = sampler.seed_generator.state
        state.assign(np.array([0, 0], state.dtype))
    return float(PretrainingModel(pretrainer).test_step(batch)["loss"])


def _config(objective="electra", **overrides):
    values = dict(data_dir="unused", objective=objective, num_train_steps=1,
                  max_seq_length=SEQ, init_checkpoint="source")
    return PretrainingConfig(**{**values, **overrides})


def _started(source, objective="electra", vocab_size=None, skip=False, vocab=None,
             **overrides):
    """A new run's pretrainer warm-started from `source` (path); `vocab`: the run's."""
    loaded = load_source(source)
    model_config = run_model_config(_config(objective, **overrides), loaded,
                                    vocab_size or loaded.model_config.vocab_size)
    pretrainer = build_pretrainer(model_config)
    change = vocab_difference(source_vocab_file(source), vocab) if vocab else None
    start = warm_start(pretrainer, loaded, source, skip, change)
    return loaded, pretrainer, start


def test_a_released_layout_electra_checkpoint_with_a_full_width_generator(tmp_path):
    # The released ELECTRA-Small's generator is as wide as its discriminator.
    variables = electra_variables(hidden=32, gen_hidden=32, gen_inter=128)
    prefix = write_tf1_checkpoint(variables, str(tmp_path / "model.ckpt-1000000"))
    source, pretrainer, start = _started(str(tmp_path))
    config = pretrainer.model_config
    assert (config.generator_hidden_size, config.generator_layers) == (1.0, 1.0)
    assert config.hidden_size == 32 and config.vocab_size == 1000
    assert start.assigned == len(pretrainer.weights) and not start.skipped
    batch = make_batch(config, seq_len=SEQ)
    np.testing.assert_allclose(_loss(pretrainer, batch), _loss(source, batch), rtol=1e-6)
    # ...and the source's values are the checkpoint's.
    fresh = build_pretrainer(config)
    checkpoints.load_tf1_checkpoint(fresh, prefix)
    np.testing.assert_allclose(_loss(fresh, batch), _loss(source, batch), rtol=1e-6)


def test_a_hugging_face_pair_and_a_bert_mlm_model(tmp_path):
    for objective, variables in (("electra", electra_variables()), ("bert", bert_variables())):
        tf1 = str(tmp_path / objective / "tf1")
        os.makedirs(tf1)
        write_tf1_checkpoint(variables, os.path.join(tf1, "model.ckpt-1"))
        original, _, _ = _started(tf1, objective)
        hf = str(tmp_path / objective / "hf")
        checkpoints.save_hf(original, hf)
        if objective == "electra":
            assert sorted(os.listdir(hf)) == ["discriminator", "generator"]
        source, pretrainer, start = _started(hf, objective)
        assert not start.skipped
        batch = make_batch(pretrainer.model_config, seq_len=SEQ)
        np.testing.assert_allclose(_loss(pretrainer, batch), _loss(original, batch),
                                   rtol=1e-6)


def test_mismatches_are_named_errors_unless_skipped(tmp_path):
    write_tf1_checkpoint(electra_variables(vocab=1000), str(tmp_path / "model.ckpt-1"))
    # A bigger vocab: the embeddings and the generator's output bias no longer fit.
    with pytest.raises(CheckpointMismatchError,
                       match=r"electra/embeddings/word_embeddings \(source \(1000, 16\), "
                             r"model \(1200, 16\)\).*generator_predictions/output_bias"):
        _started(str(tmp_path), vocab_size=1200)
    source, pretrainer, start = _started(str(tmp_path), vocab_size=1200, skip=True)
    assert pretrainer.model_config.vocab_size == 1200
    assert [s.split(" ")[0] for s in start.skipped] == [
        "electra/embeddings/word_embeddings", "generator_predictions/output_bias"]
    assert start.assigned == len(pretrainer.weights) - 2
    # Another architecture asked for through the overrides: each variable named.
    with pytest.raises(CheckpointMismatchError, match=r"electra/encoder/layer_2/.*"
                                                      r"\(not in the source\)"):
        _started(str(tmp_path), model_hparam_overrides={"num_hidden_layers": 3})
    with pytest.raises(ValueError, match="holds a pretrainer of objective electra, "
                                         "not --objective=bert"):
        _started(str(tmp_path), "bert")
    # Another vocab of the same size: the shapes fit, the token ids do not.
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(995)]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n")
    _started(str(tmp_path), vocab=tokens)  # the source's own vocab
    other = tokens[:7] + ["domain"] + tokens[8:]  # token 7 was "tok2"
    with pytest.raises(CheckpointMismatchError,
                       match=r"electra/embeddings/word_embeddings \(the run's vocab differs "
                             r"from the source's \(token 7: 'domain', the source's 'tok2'\)\)"):
        _started(str(tmp_path), vocab=other)
    _, _, start = _started(str(tmp_path), vocab=other, skip=True)
    assert [s.split(" ")[0] for s in start.skipped] == [
        "electra/embeddings/word_embeddings", "generator_predictions/output_bias"]


def test_a_run_of_this_package_continues_as_a_new_run(built, sample_paths, tmp_path):
    _, shards, _ = built
    common = dict(data_dir=str(tmp_path), objective="electra", model_size="debug",
                  train_batch_size=8, max_seq_length=64, learning_rate=1e-3,
                  num_warmup_steps=0, save_checkpoints_steps=3, log_every_steps=3,
                  vocab_file=sample_paths["vocab"],
                  pretrain_tfrecords=os.path.join(shards, "pretrain_data.tfrecord*"))
    first = PretrainingConfig(model_name="first", num_train_steps=3, **common)
    pretrain(first, progress=False)
    # The run's model dir, one of its checkpoints and its pretrainer.keras hold one model.
    batch = make_batch(build_pretrainer(first.model_config(30522)).model_config, seq_len=64)
    losses = [_loss(load_source(path), batch) for path in (
        first.model_dir, os.path.join(first.model_dir, "model.ckpt-3"),
        os.path.join(first.model_dir, "pretrainer.keras"))]
    assert losses[0] == losses[1] == losses[2]
    _, started, _ = _started(first.model_dir)
    assert _loss(started, batch) == losses[0]

    second = PretrainingConfig(model_name="second", num_train_steps=2,
                               init_checkpoint=first.model_dir,
                               model_size="small", **{k: v for k, v in common.items()
                                                      if k != "model_size"})
    summary = pretrain(second, progress=False)
    assert summary["step"] == 2 and summary["resumed_from_step"] == 0  # a new step count
    with open(os.path.join(second.model_dir, "warm_start.json")) as f:
        start = json.load(f)
    assert start["source"] == first.model_dir and start["skipped"] == []
    # The debug architecture came from the source; --model_size=small was not used.
    assert load_source(second.model_dir).model_config.hidden_size == \
        load_source(first.model_dir).model_config.hidden_size
    # A re-run resumes from the run's own checkpoints: the source is not read again.
    os.rename(first.model_dir, first.model_dir + "-moved")
    assert pretrain(second, progress=False) == summary


def test_a_checkpoint_without_its_run_is_not_guessed(tmp_path):
    # A model.ckpt-N of this package with no run settings beside it: read as an original
    # checkpoint, which it is not, and the error says what it lacks.
    model = build_pretrainer(get_config("electra", "debug").replace(vocab_size=50))
    prefix = model_checkpoint(model).write(str(tmp_path / "model.ckpt-1"))
    with pytest.raises(CheckpointMismatchError, match="no bert/ or electra/ embeddings"):
        load_source(prefix)


def test_a_warm_start_under_a_mirrored_strategy_reaches_every_replica(tmp_path,
                                                                      mirrored_strategy):
    write_tf1_checkpoint(electra_variables(), str(tmp_path / "model.ckpt-1"))
    source = load_source(str(tmp_path))
    with mirrored_strategy.scope():
        pretrainer = build_pretrainer(source.model_config)
    warm_start(pretrainer, source, str(tmp_path))
    for ours, theirs in zip(pretrainer.weights, source.weights, strict=True):
        replicas = mirrored_strategy.experimental_local_results(ours.value)
        assert len(replicas) == 2
        for replica in replicas:
            np.testing.assert_array_equal(replica.numpy(), theirs.numpy(), err_msg=ours.path)
