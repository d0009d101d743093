"""The whole path a Colab user takes, with every user path on a non-local file system.

``ram://`` is served by ``tf.io.gfile`` the way ``gs://`` is (files, globs, renames,
TFRecords, checkpoints), inside one process. The run builds pretraining TFRecords,
pretrains a debug ELECTRA, finetunes it and exports it to Hugging Face, all on
``ram://``; any ``open``/``os``/``shutil``/``glob`` call that touches a ``ram://`` path
from the package's own code fails the test, so nothing can bypass the package's file
layer (TensorFlow's own internals may look, as they do for gs://).
"""

import builtins
import glob
import os
import shutil
import sys
import uuid

import numpy as np
import pytest
from test_finetuning import write_tasks

from data_prep.build_pretraining_dataset import build_dataset
from electra_tf import files, run_convert
from electra_tf.checkpoints import load_keras, read_hf_folder
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import finetune
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.pretraining.trainer import pretrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIRS = tuple(os.path.join(ROOT, d) + os.sep for d in ("electra_tf", "data_prep"))
GUARDED = [(builtins, "open"), (os, "stat"), (os, "lstat"), (os, "listdir"), (os, "scandir"),
           (os, "makedirs"), (os, "mkdir"), (os, "remove"), (os, "unlink"), (os, "rename"),
           (os, "replace"), (os, "walk"), (os.path, "exists"), (os.path, "isfile"),
           (os.path, "isdir"), (os.path, "getsize"), (os.path, "getmtime"),
           (shutil, "rmtree"), (shutil, "copy"), (shutil, "copyfile"), (shutil, "copytree"),
           (shutil, "move"), (glob, "glob")]


@pytest.fixture
def local_calls_refuse_remote_paths(monkeypatch):
    for module, name in GUARDED:
        original = getattr(module, name)

        def guarded(*args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            for arg in args[:2]:
                if "ram://" in str(arg) and caller.startswith(PACKAGE_DIRS):
                    raise AssertionError(f"{caller}: {_name}({arg!r}): a user path "
                                         f"bypassed the file layer")
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, guarded)


def test_data_pretraining_finetuning_and_export_all_on_a_remote_file_system(
        two_books, sample_paths, tmp_path, local_calls_refuse_remote_paths):
    root = f"ram://e2e-{uuid.uuid4().hex}"
    local_tasks = tmp_path / "tasks"
    local_tasks.mkdir()
    write_tasks(local_tasks)
    # The user's inputs, put in the "bucket" with the file layer.
    files.copy_tree(two_books, f"{root}/corpus")
    files.copy(sample_paths["vocab"], f"{root}/data/vocab.txt")
    files.copy_tree(str(local_tasks / "finetuning_data" / "SST-2"),
                    f"{root}/data/finetuning_data/SST-2")

    summary = build_dataset([f"books:{root}/corpus"], f"{root}/data/vocab.txt",
                            f"{root}/data/pretrain_tfrecords", max_seq_length=64,
                            num_shards=2, seed=3, progress=False)
    assert summary["examples"] > 100
    assert len(files.glob(f"{root}/data/pretrain_tfrecords/pretrain_data.tfrecord-*")) == 2

    config = PretrainingConfig(data_dir=f"{root}/data", model_name="electra_debug",
                               objective="electra", model_size="debug", train_batch_size=8,
                               max_seq_length=64, num_train_steps=4, num_warmup_steps=1,
                               save_checkpoints_steps=2, log_every_steps=2, seed=1)
    trained = pretrain(config, progress=False)
    model_dir = f"{root}/data/models/electra_debug"
    assert trained["step"] == 4 and np.isfinite(trained["last_logged"]["loss"])
    assert {"encoder.keras", "vocab.txt", "train_summary.json", "checkpoint",
            "model.ckpt-4.index", "train"} <= set(files.listdir(model_dir))
    assert pretrain(config, progress=False) == trained  # finished: read back, not redone

    tuned = finetune(FinetuningConfig(
        data_dir=f"{root}/data", model_name="electra_debug", task_names=["sst2"],
        num_train_epochs=1, train_batch_size=16, max_seq_length=32, seed=2,
        write_test_outputs=True), progress=False)
    assert tuned["encoder"]["path"] == f"{model_dir}/encoder.keras"
    assert 0.0 <= tuned["dev_best"]["sst2"]["dev"]["accuracy"] <= 1.0
    assert files.listdir(f"{model_dir}/test_predictions") == ["SST-2.tsv"]

    run_convert.FLAGS(["electra-convert", f"--input={model_dir}", "--target=encoder",
                       f"--output={root}/hf/electra_debug"])
    run_convert.convert()
    hf_dir = f"{root}/hf/electra_debug"
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
            "special_tokens_map.json"} <= set(files.listdir(hf_dir))
    hf_config, weights = read_hf_folder(hf_dir)
    ours = files.read_json(f"{model_dir}/electra_tf_config.json")
    assert hf_config["hidden_size"] == ours["hidden_size"] and hf_config["vocab_size"] == 30522
    assert files.read_bytes(f"{hf_dir}/vocab.txt") == files.read_bytes(sample_paths["vocab"])
    assert all(np.isfinite(w).all() for w in weights.values())
    encoder = load_keras(f"{model_dir}/encoder.keras")
    table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    ours_table = next(w for w in encoder.weights if "token_embedding" in w.path or
                      "word_embeddings" in w.path)
    np.testing.assert_array_equal(table, ours_table.numpy())
