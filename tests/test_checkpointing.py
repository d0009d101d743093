"""The resume rule: the newest complete checkpoint on disk, whatever the state file says."""

import os

import tensorflow as tf

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
