"""Checkpoints that a run resumes from: the newest *complete* one, on every worker.

TensorFlow writes a checkpoint's data shards first and its ``.index`` last, then names it
in the ``checkpoint`` state file. A process killed between those two writes leaves a
complete checkpoint that the state file does not name yet; ``tf.train.CheckpointManager``
would resume from the older one it names (or from scratch). Here the folder itself is
the record: the newest ``<name>-<N>.index`` whose index reads and whose data shards are
all present wins, and the state file is brought up to date before the manager reads it.

Under ``MultiWorkerMirroredStrategy`` every worker takes part in a save, but only the
chief's copy is kept: the others write to ``.worker-<id>/`` inside the run folder and
delete it when training ends (TensorFlow's multi-worker checkpointing pattern).

A checkpoint names the model's own variables: ``weights/<variable path>`` (for example
``weights/electra/encoder/layer_3/self_attention_layer/query/kernel``), beside the optimizer's
state. So a model restores without an optimizer, and a weight missing from either side
is an error that names it. Checkpoints written before this layout held the weights only
through the optimizer's variable list (``optimizer/_trainable_variables/<i>``); they are
still read, by that list's order.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf

from electra_tf import files
from electra_tf.distribute import is_chief
from electra_tf.training.fitting import StepCallback, current_step

CHECKPOINT_NAME = "model.ckpt"  # the original's checkpoint prefix
WEIGHTS = "weights"  # the checkpoint's node holding the model's variables by path
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def named_weights(model: keras.Model) -> dict[str, keras.Variable]:
    """`model`'s variables keyed by their paths (each shared variable once)."""
    named: dict[str, keras.Variable] = {}
    for variable in model.weights:
        other = named.setdefault(variable.path, variable)
        if other is not variable:
            raise ValueError(f"{model.name}: two variables share the path {variable.path}; "
                             f"a checkpoint could not tell them apart")
    return named


def model_checkpoint(model: keras.Model, optimizer=None) -> tf.train.Checkpoint:
    """A checkpoint of `model`'s variables by path, with `optimizer`'s state if given."""
    parts = {WEIGHTS: named_weights(model)}
    if optimizer is not None:
        parts["optimizer"] = optimizer
    return tf.train.Checkpoint(**parts)


def _unescape(key: str) -> str:
    # Checkpoint keys escape '/' in a name as '.S' and '.' as '..'.
    return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1), key)


def stored_weights(prefix: str) -> dict[str, list[int]] | None:
    """{variable path: shape} of the model weights checkpoint `prefix` stores by name;
    None for a checkpoint of the earlier layout (weights only in the optimizer's list)."""
    stored = {}
    for key, shape in _reader(prefix).get_variable_to_shape_map().items():
        if key.startswith(WEIGHTS + "/") and key.endswith(_VALUE):
            stored[_unescape(key[len(WEIGHTS) + 1:-len(_VALUE)])] = shape
    return stored or None


def _reader(prefix: str):
    # Not tf.train.load_checkpoint: it misreads ram:// prefixes as folders.
    return tf.compat.v1.train.NewCheckpointReader(prefix)


def _check_names(model: keras.Model, prefix: str, stored: dict[str, list[int]]) -> None:
    named = named_weights(model)
    missing = sorted(set(named) - set(stored))
    extra = sorted(set(stored) - set(named))
    misshapen = [f"{path} {tuple(stored[path])} vs model {tuple(named[path].shape)}"
                 for path in sorted(set(named) & set(stored))
                 if tuple(stored[path]) != tuple(named[path].shape)]
    problems = ([f"missing from the checkpoint: {name_list(missing)}"] if missing else []) + (
        [f"in the checkpoint but not in the model: {name_list(extra)}"] if extra else []) + (
        [f"shapes differ: {name_list(misshapen, '; ')}"] if misshapen else [])
    if problems:
        raise ValueError(f"{prefix} does not fit {model.name}: " + "; ".join(problems))


def name_list(names: list[str], separator: str = ", ", limit: int = 6) -> str:
    """The first `limit` of `names` joined, and how many more there are."""
    shown = separator.join(names[:limit])
    return shown + (f"{separator}... ({len(names) - limit} more)" if len(names) > limit else "")


def restore(model: keras.Model, prefix: str, optimizer=None) -> None:
    """Restore `model` (and `optimizer`'s state, when given) from checkpoint `prefix`.
    Every weight of the model must be in the checkpoint and every weight stored must
    belong to the model, else a ValueError names them."""
    stored = stored_weights(prefix)
    if stored is not None:
        _check_names(model, prefix, stored)
        try:
            status = model_checkpoint(model, optimizer).read(prefix)
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(f"{prefix}: its optimizer state does not fit this run's "
                             f"optimizer (saved by another --optimizer, or with fp16 loss "
                             f"scaling switched on or off): {e.message.splitlines()[0]}"
                             ) from None
        status.assert_existing_objects_matched()
        status.expect_partial()  # matched above; what is left (save_counter) is not needed
    elif optimizer is not None:
        # The earlier layout: the optimizer's variable list leads to the weights.
        tf.train.Checkpoint(model=model, optimizer=optimizer).read(
            prefix).assert_existing_objects_matched()
    else:
        _read_by_optimizer_order(model, prefix)


def _read_by_optimizer_order(model: keras.Model, prefix: str) -> None:
    """The earlier layout without an optimizer: weight i of the checkpoint's optimizer
    list is the model's trainable variable i (the optimizer was built on exactly those)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = _reader(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def child(node: int, name: str) -> int | None:
        return next((c.node_id for c in graph.nodes[node].children if c.local_name == name),
                    None)

    optimizer = child(0, "optimizer")
    listed = None
    while optimizer is not None and listed is None:  # fp16: the loss scaler wraps one
        listed = child(optimizer, "_trainable_variables")
        optimizer = child(optimizer, "inner_optimizer")
    if listed is None:
        raise ValueError(f"{prefix}: names no model weights (neither weights/ nor an "
                         f"optimizer's variable list). A finetuning trial's best/ checkpoint "
                         f"written before checkpoints named their variables held only some "
                         f"of them: delete that trial's folder to run it again")
    keys = {}
    for c in graph.nodes[listed].children:
        attributes = graph.nodes[c.node_id].attributes
        keys[int(c.local_name)] = next(a.checkpoint_key for a in attributes
                                       if a.name == "VARIABLE_VALUE")
    variables = model.trainable_variables
    if sorted(keys) != list(range(len(variables))) or len(model.weights) != len(variables):
        raise ValueError(f"{prefix} holds {len(keys)} weights in its optimizer's list; "
                         f"{model.name} has {len(variables)} trainable and "
                         f"{len(model.weights) - len(variables)} other variables")
    values = [reader.get_tensor(keys[i]) for i in range(len(variables))]
    misshapen = [f"{v.path} {a.shape} vs model {tuple(v.shape)}"
                 for v, a in zip(variables, values, strict=True) if a.shape != tuple(v.shape)]
    if misshapen:
        raise ValueError(f"{prefix} does not fit {model.name}: shapes differ: "
                         + name_list(misshapen, "; "))
    for variable, value in zip(variables, values, strict=True):
        variable.assign(np.asarray(value, variable.dtype))


def _shards_present(prefix: str) -> bool:
    data = files.glob(f"{prefix}.data-*-of-*")
    if not data:
        return False
    total = int(re.search(r"-of-(\d+)$", data[0]).group(1))
    return len(data) == total


def complete_checkpoints(directory: str, name: str) -> list[str]:
    """Prefixes of the complete checkpoints ``<directory>/<name>-<N>``, oldest first."""
    pattern = re.compile(re.escape(name) + r"-(\d+)\.index$")
    found = []
    for path in files.glob(files.join(directory, f"{name}-*.index")):
        match = pattern.search(path)
        if match:
            found.append((int(match.group(1)), path[:-len(".index")]))
    complete = []
    for _, prefix in sorted(found):
        if not _shards_present(prefix):
            continue
        try:  # a truncated index fails to read
            _reader(prefix)
        except (tf.errors.OpError, ValueError):
            continue
        complete.append(prefix)
    return complete


def checkpoint_manager(checkpoint: tf.train.Checkpoint, directory: str, name: str,
                       max_to_keep: int) -> tf.train.CheckpointManager:
    """A manager for `directory` whose ``latest_checkpoint`` is the newest complete
    checkpoint on disk (the state file rewritten when it lags behind the folder)."""
    complete = complete_checkpoints(directory, name)
    state = tf.train.get_checkpoint_state(directory)
    named = state.model_checkpoint_path if state else None
    if complete and (named is None or files.join(directory, _basename(named)) != complete[-1]):
        # With their times, so the manager keeps counting them toward max_to_keep.
        times = [float(files.size_and_mtime(f"{p}.index")[1]) for p in complete]
        tf.compat.v1.train.update_checkpoint_state(
            directory, complete[-1], all_model_checkpoint_paths=complete,
            all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1)
    elif named and not complete:  # names checkpoints that are gone: start afresh
        files.remove(files.join(directory, "checkpoint"))
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                      checkpoint_name=name)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def worker_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """Where this process writes its checkpoints: `run_dir` for the chief, a folder of
    its own inside it for the other workers."""
    if is_chief(strategy):
        return run_dir
    return files.join(run_dir, f".worker-{strategy.cluster_resolver.task_id}")


def run_checkpoints(checkpoint: tf.train.Checkpoint, directory: str,
                    strategy: tf.distribute.Strategy, max_to_keep: int,
                    name: str = CHECKPOINT_NAME) -> tuple[tf.train.CheckpointManager, str | None]:
    """(manager, checkpoint to resume from) as pretraining has them: the chief keeps
    `directory`'s checkpoints and resumes from the newest complete one; another worker
    resumes from the same one and saves its own copies under ``.worker-<id>/`` (delete
    that folder when training ends)."""
    if is_chief(strategy):
        manager = checkpoint_manager(checkpoint, directory, name, max_to_keep)
        return manager, manager.latest_checkpoint
    latest = (complete_checkpoints(directory, name) or [None])[-1]
    manager = tf.train.CheckpointManager(checkpoint, worker_dir(strategy, directory),
                                         max_to_keep=1, checkpoint_name=name)
    return manager, latest


def restore_or_init(model: keras.Model, optimizer, directory: str,
                    strategy: tf.distribute.Strategy, max_to_keep: int,
                    name: str = CHECKPOINT_NAME
                    ) -> tuple[tf.train.CheckpointManager, str | None]:
    """Restore `model` and `optimizer` from the newest complete checkpoint in `directory`
    (see :func:`restore`), or leave them as initialized when there is none; returns
    (a manager saving both, the checkpoint restored or None). See
    :func:`run_checkpoints`."""
    checkpoint = model_checkpoint(model, optimizer)
    manager, latest = run_checkpoints(checkpoint, directory, strategy, max_to_keep, name)
    if latest:
        restore(model, latest, optimizer)
    return manager, latest


class Checkpointer(StepCallback):
    """Saves model + optimizer every `every` steps (at the first execution boundary past
    each multiple, with ``steps_per_execution`` > 1) and at the end."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.last_saved = None

    def save(self, step: int) -> None:
        if step != self.last_saved:
            self.manager.save(checkpoint_number=step)
            self.last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        previous = self.last_saved if self.last_saved is not None else 0
        if self.step_after(batch) // self.every > previous // self.every:
            # Numbered by the optimizer's own count: under fp16 a step whose gradients
            # overflowed applies no update, and the batch index runs ahead of it.
            step = current_step(self.model.optimizer)
            if step // self.every > previous // self.every:
                self.save(step)
