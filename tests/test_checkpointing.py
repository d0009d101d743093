"""The resume rule: the newest complete checkpoint on disk, whatever the state file says."""

import os

import pytest
import tensorflow as tf
from model_checks import assert_same_weights

from electra_tf.training.checkpointing import checkpoint_manager, complete_checkpoints


def _saved(directory, steps):
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=value), directory,
                                         max_to_keep=5, checkpoint_name="model.ckpt")
    for step in steps:
        value.assign(float(step))
        manager.save(checkpoint_number=step)


def test_a_checkpoint_the_state_file_does_not_name_yet_is_resumed(tmp_path):
    directory = str(tmp_path)
    _saved(directory, [10, 20, 30])
    # As after a kill between writing ckpt-30's index and naming it in the state file.
    tf.compat.v1.train.update_checkpoint_state(directory, os.path.join(directory, "model.ckpt-20"),
                                     all_model_checkpoint_paths=[
                                         os.path.join(directory, "model.ckpt-10"),
                                         os.path.join(directory, "model.ckpt-20")])
    # A later checkpoint with a truncated index, and one missing its data shard.
    for step, kept in ((40, ".index"), (50, ".data-00000-of-00001")):
        for suffix in (".index", ".data-00000-of-00001"):
            with open(os.path.join(directory, "model.ckpt-30" + suffix), "rb") as f:
                data = f.read()
            if suffix == kept:
                with open(os.path.join(directory, f"model.ckpt-{step}{suffix}"), "wb") as f:
                    f.write(data[:len(data) // 2] if suffix == ".index" else data)
    assert [os.path.basename(p) for p in complete_checkpoints(directory, "model.ckpt")] == [
        "model.ckpt-10", "model.ckpt-20", "model.ckpt-30"]

    value = tf.Variable(-1.0)
    checkpoint = tf.train.Checkpoint(v=value)
    manager = checkpoint_manager(checkpoint, directory, "model.ckpt", max_to_keep=2)
    assert os.path.basename(manager.latest_checkpoint) == "model.ckpt-30"
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    assert value.numpy() == 30.0
    manager.save(checkpoint_number=31)  # the manager keeps counting the ones it adopted
    assert sorted(os.path.basename(p) for p in manager.checkpoints) == [
        "model.ckpt-30", "model.ckpt-31"]


def test_a_state_file_naming_deleted_checkpoints_starts_afresh(tmp_path):
    directory = str(tmp_path)
    _saved(directory, [10])
    for name in os.listdir(directory):
        if name.startswith("model.ckpt-10"):
            os.remove(os.path.join(directory, name))
    manager = checkpoint_manager(tf.train.Checkpoint(v=tf.Variable(0.0)), directory,
                                 "model.ckpt", max_to_keep=2)
    assert manager.latest_checkpoint is None


# ------------------------------------------------------------------ what a checkpoint names

def _pretrainer(layers=2):
    from electra_tf.configs import get_config
    from electra_tf.modeling import build_pretrainer

    return build_pretrainer(get_config("electra", "debug").replace(
        vocab_size=40, num_hidden_layers=layers))


def _optimizer(model):
    import keras

    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    return optimizer


def test_a_checkpoint_names_every_weight_and_restores_without_an_optimizer(tmp_path):
    from electra_tf.training.checkpointing import model_checkpoint, restore, stored_weights

    source = _pretrainer()
    optimizer = _optimizer(source)
    prefix = model_checkpoint(source, optimizer).write(str(tmp_path / "model.ckpt-7"))
    stored = stored_weights(prefix)
    assert len(source.weights) == 82
    assert stored == {w.path: list(w.shape) for w in source.weights}
    assert "electra/encoder/layer_1/self_attention_layer/query/kernel" in stored

    fresh = _pretrainer()
    restore(fresh, prefix)  # no optimizer: the weights alone
    assert_same_weights(source, fresh)


def test_a_weight_missing_or_extra_is_an_error_naming_it(tmp_path):
    from electra_tf.training.checkpointing import model_checkpoint, restore

    prefix = model_checkpoint(_pretrainer(layers=2)).write(str(tmp_path / "two"))
    deeper = _pretrainer(layers=3)
    with pytest.raises(ValueError, match=r"missing from the checkpoint: "
                                         r"electra/encoder/layer_2/"):
        restore(deeper, prefix)
    shallower = _pretrainer(layers=1)
    with pytest.raises(ValueError, match=r"in the checkpoint but not in the model: "
                                         r"electra/encoder/layer_1/"):
        restore(shallower, prefix)


def test_checkpoints_of_the_earlier_layout_stay_readable(tmp_path):
    # The earlier layout: the weights reachable only through the optimizer's variable
    # list (Keras 3 tracks few of a model's variables as its own dependencies).
    from electra_tf.training.checkpointing import restore, stored_weights

    source = _pretrainer()
    optimizer = _optimizer(source)
    optimizer.iterations.assign(5)
    prefix = tf.train.Checkpoint(model=source, optimizer=optimizer).write(
        str(tmp_path / "model.ckpt-5"))
    keys = [k for k, _ in tf.train.list_variables(prefix)]
    assert stored_weights(prefix) is None
    assert sum(k.startswith("optimizer/_trainable_variables/") for k in keys) > 70

    weights_only = _pretrainer()
    restore(weights_only, prefix)
    assert_same_weights(source, weights_only)

    resumed = _pretrainer()
    resumed_optimizer = _optimizer(resumed)
    restore(resumed, prefix, resumed_optimizer)
    assert_same_weights(source, resumed)
    assert int(resumed_optimizer.iterations.numpy()) == 5

    with pytest.raises(ValueError, match="weights in its optimizer's list"):
        restore(_pretrainer(layers=1), prefix)

    # fp16 runs: the loss-scale optimizer wraps the one holding the list.
    import keras

    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    scaled.build(source.trainable_variables)
    prefix = tf.train.Checkpoint(model=source, optimizer=scaled).write(
        str(tmp_path / "fp16" / "model.ckpt-5"))
    weights_only = _pretrainer()
    restore(weights_only, prefix)
    assert_same_weights(source, weights_only)
