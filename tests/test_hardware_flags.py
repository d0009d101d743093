"""The hardware flagfiles (flags/hardware/) with every recipe of every command: they parse
into configs that pass the package's own checks for that hardware, and a finetuning
recipe trains with them under two replicas.

``make_strategy`` runs for real, with TensorFlow's strategy constructors replaced: a
MirroredStrategy is the session's one over two logical CPUs (tests/conftest.py), a TPU
is 8 cores that nothing connects to."""

import contextlib
import glob
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from electra_tf import distribute, run_finetuning, run_pretraining, run_tlm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_CORES = 8


def _flagfiles(kind):
    paths = sorted(glob.glob(os.path.join(ROOT, "flags", kind, "*.flags")))
    assert paths, kind
    return paths


HARDWARE = _flagfiles("hardware")
HARDWARE_FLAGS = {"strategy", "tpu", "mixed_precision", "steps_per_execution", "jit_compile"}
# command module, its recipes, the flags it requires beside them
COMMANDS = {
    "pretrain": (run_pretraining, _flagfiles("pretrain"), ["--data_dir=d", "--model_name=m"]),
    "finetune": (run_finetuning, _flagfiles("finetune"), ["--data_dir=d", "--model_name=m"]),
    "tlm": (run_tlm, _flagfiles("tlm"), ["--data_dir=d"]),
}
CASES = [(command, recipe, hardware) for command, (_, recipes, _) in COMMANDS.items()
         for recipe in recipes for hardware in HARDWARE]


def _ids(case):
    command, recipe, hardware = case
    return f"{command}-{os.path.basename(recipe)[:-6]}-{os.path.basename(hardware)[:-6]}"


def _flag_names(path):
    with open(path) as f:
        return {line.split("=", 1)[0].lstrip("-") for line in f
                if line.strip() and not line.lstrip().startswith("#")}


def parse(command, *args):
    """(parsed flags, config) as the command's main builds them (`args` after the
    required flags: they may set those too)."""
    module, _, required = COMMANDS[command]
    values = module.define_flags(flags.FlagValues())
    values([sys.argv[0], *required, *args])
    return values, module.build_config(values)


@contextlib.contextmanager
def fake_devices(mirrored):
    """``make_strategy`` with TensorFlow's strategy constructors replaced; yields the
    calls it made."""
    calls = []

    class TPUStrategy:
        num_replicas_in_sync = TPU_CORES

        def __init__(self, resolver):
            calls.append(("TPUStrategy", resolver))

    def mirrored_strategy(devices=None):
        calls.append(("MirroredStrategy", devices))
        return mirrored

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.distribute, "MirroredStrategy", mirrored_strategy)
        patch.setattr(tf.distribute, "TPUStrategy", TPUStrategy)
        patch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver",
                      lambda tpu: ("resolver", tpu))
        patch.setattr(tf.config, "experimental_connect_to_cluster",
                      lambda resolver: calls.append(("connect", resolver)))
        patch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                      lambda resolver: calls.append(("initialize", resolver)))
        yield calls


def resolve_strategy(values, mirrored):
    """The strategy the command's run() would make from its flags, and make_strategy's
    calls."""
    with fake_devices(mirrored) as calls:
        strategy = distribute.make_strategy(values.strategy, values.tpu)
    return strategy, calls


@pytest.mark.parametrize("hardware", HARDWARE, ids=lambda p: os.path.basename(p))
def test_hardware_flagfiles_set_hardware_only_and_recipes_set_none(hardware):
    # A recipe and a hardware file never set the same flag: neither silently wins.
    assert _flag_names(hardware) <= HARDWARE_FLAGS
    for command, (_, recipes, _) in COMMANDS.items():
        for recipe in recipes:
            assert not _flag_names(recipe) & HARDWARE_FLAGS, (command, recipe)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_every_hardware_with_every_recipe_parses_and_fits_the_hardware(case,
                                                                       mirrored_strategy):
    command, recipe, hardware = case
    values, config = parse(command, f"--flagfile={recipe}", f"--flagfile={hardware}")
    # the hardware file's settings arrive in the config
    with open(hardware) as f:
        given = dict(line.strip().lstrip("-").split("=", 1) for line in f
                     if line.strip() and not line.lstrip().startswith("#"))
    assert config.steps_per_execution == int(given["steps_per_execution"]) > 1
    assert config.mixed_precision == given["mixed_precision"]

    # the strategy make_strategy makes from these flags
    strategy, calls = resolve_strategy(values, mirrored_strategy)
    if "tpu" in given:
        assert calls == [("connect", ("resolver", "local")), ("initialize", ("resolver", "local")),
                         ("TPUStrategy", ("resolver", "local"))]
        assert strategy.num_replicas_in_sync == TPU_CORES
    else:
        assert given["strategy"] == "mirrored" and calls == [("MirroredStrategy", None)]
        assert strategy is mirrored_strategy and strategy.num_replicas_in_sync == 2

    # the package's own checks: global batches split evenly over the replicas
    if command == "pretrain":
        per_replica = distribute.check_batch_size(strategy, config.train_batch_size)
        assert per_replica * strategy.num_replicas_in_sync == config.train_batch_size
    else:
        from electra_tf.distribute import check_batch_sizes

        check_batch_sizes(config, strategy)
        assert config.eval_batch_size % strategy.num_replicas_in_sync == 0

    # a mixed precision Keras knows: float32 variables, 16-bit compute
    policy = keras.mixed_precision.Policy(config.policy)
    assert policy.variable_dtype == "float32"
    assert policy.compute_dtype == {"bf16": "bfloat16", "fp16": "float16"}[
        config.mixed_precision]


def test_a_batch_the_tpu_cores_cannot_split_is_refused(mirrored_strategy):
    from electra_tf.distribute import check_batch_sizes

    tpu = os.path.join(ROOT, "flags", "hardware", "colab_tpu.flags")
    values, config = parse("finetune", f"--flagfile={tpu}", "--eval_batch_size=12")
    strategy, _ = resolve_strategy(values, mirrored_strategy)
    with pytest.raises(ValueError, match="eval_batch_size=12 must be a positive multiple of "
                                         "the 8 replicas of the TPUStrategy"):
        check_batch_sizes(config, strategy)
    values, _ = parse("pretrain", f"--flagfile={ROOT}/flags/pretrain/electra_small.flags",
                      f"--flagfile={tpu}", "--strategy=mirrored")
    with pytest.raises(ValueError, match="--tpu=local conflicts with --strategy=mirrored"):
        resolve_strategy(values, mirrored_strategy)


@pytest.mark.parametrize("hardware", ["gpu.flags", "gpu_fp16.flags"])
def test_a_finetuning_recipe_trains_with_the_gpu_flags_on_two_replicas(
        hardware, mirrored_strategy, sample_paths, tmp_path):
    from test_finetuning import write_tasks

    from electra_tf.finetuning.trainer import finetune

    write_tasks(tmp_path)
    # the paper's GLUE recipe on SST-2 (96 training examples, batch 32: 3 steps an
    # epoch), a debug-size encoder from scratch, 2 epochs
    values, config = parse(
        "finetune", f"--flagfile={ROOT}/flags/finetune/glue_small_paper.flags",
        f"--flagfile={ROOT}/flags/hardware/{hardware}", "--from_scratch",
        "--model_size=debug", "--max_seq_length=32", "--num_train_epochs=2", "--seed=3",
        f"--data_dir={tmp_path}", "--model_name=hardware",
        f"--vocab_file={sample_paths['vocab']}")
    strategy, _ = resolve_strategy(values, mirrored_strategy)
    assert strategy.num_replicas_in_sync == 2 and config.steps_per_execution == 100

    results = finetune(config, strategy, progress=False)
    trial = results["trials"][0]
    # 100 steps per call, capped at the 3 of an epoch (test_finetuning.py checks the
    # epochs and a shorter last call when they do not divide)
    assert trial["steps"] == 6
    history = [(h["epoch"], h["step"]) for h in trial["history"]]
    if config.mixed_precision == "fp16":
        # a step whose fp16 gradients overflowed applies no update (the loss scale is
        # lowered) and the run goes on until 6 updates are applied
        assert history[-1] == (2, 6) and all(step <= 3 * epoch for epoch, step in history)
    else:
        assert history == [(1, 3), (2, 6)]
    assert all(np.isfinite(h["loss"]) for h in trial["history"])
    assert 0.0 <= results["dev_last"]["sst2"]["dev"]["accuracy"] <= 1.0
    checkpoint = tf.train.load_checkpoint(os.path.join(config.run_dir, "trial_0",
                                                       "model.ckpt-6"))
    dtypes = checkpoint.get_variable_to_dtype_map()
    if config.mixed_precision == "fp16":  # the loss scale is kept for a resume
        assert any("dynamic_scale" in name for name in dtypes), sorted(dtypes)
    # 16-bit compute, float32 variables
    assert {d.name for d in dtypes.values() if d.is_floating} == {"float32"}
