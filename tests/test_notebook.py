"""The Colab notebook (notebooks/colab_tpu.ipynb): it drives only the package's command-line
tools, with flags they define, for each accelerator; and it runs top to bottom on this CPU
at debug size with a local DATA_DIR, every stage leaving its outputs (TFRecords, a
pretrained and exported encoder, finetuning results, a Hugging Face folder that
transformers loads with its tokenizer), TensorBoard started inside it and stopped after."""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import sys

import nbformat
import psutil
import pytest
import tensorflow as tf
from absl import flags
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from data_prep import samples
from electra_tf import run_finetuning, run_pretraining

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "colab_tpu.ipynb")
SAMPLES_CACHE = os.path.join(ROOT, "data", "samples")
PARAMETERS = ("ACCELERATOR", "DATA_DIR", "MODEL", "SIZE", "FLOP_BUDGET", "FINETUNE_EPOCHS",
              "REPO", "REPO_DIR")
TOOLS = {"electra-samples", "electra-build-pretraining-dataset", "electra-pretrain",
         "electra-finetune", "electra-convert"}
SETUP_PROGRAMS = {"pip", "git", "gsutil", "mkdir", "cd"}  # Colab set-up, not the package
MAGICS = ("%load_ext tensorboard", "%tensorboard ")


def _notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_index(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def _set_parameters(notebook, **values):
    """Rewrite the parameters cell's values in place (papermill-style); every parameter
    must be in the cell, and only those."""
    cell = notebook.cells[_parameters_index(notebook)]
    lines, seen = [], set()
    for line in cell.source.splitlines():
        match = re.match(r"^([A-Z_]+) = (.*?)(\s+# @param.*)?$", line)
        assert match, f"parameters cell: not a `NAME = value  # @param` line: {line!r}"
        name = match.group(1)
        seen.add(name)
        if name in values:
            line = f"{name} = {values[name]!r}{match.group(3) or ''}"
        lines.append(line)
    assert seen == set(PARAMETERS), sorted(seen ^ set(PARAMETERS))
    assert set(values) <= seen
    cell.source = "\n".join(lines)


def _settings(notebook, **values) -> dict:
    """The names the parameters cell and the settings cell after it define (plain Python,
    run off Colab)."""
    _set_parameters(notebook, **values)
    index = _parameters_index(notebook)
    namespace = {}
    for cell in notebook.cells[index:index + 2]:
        exec(cell.source, namespace)  # noqa: S102
    assert namespace["IN_COLAB"] is False
    return namespace


def _commands(notebook, settings) -> list[str]:
    """Every shell command of the notebook (`!` lines, `&&` parts), placeholders filled."""
    commands = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            line = line.strip()
            if line.startswith("%"):
                assert line.startswith(MAGICS), f"only TensorBoard's magics: {line}"
            if not line.startswith("!"):
                continue
            # names the cell itself sets (install and copy commands) stay as they are
            line = re.sub(r"\{(\w+)\}", lambda m: str(settings.get(m.group(1), m.group(0))),
                          line[1:])
            commands += [part.strip() for part in line.split("&&")]
    return commands


def _cli_flags(program: str) -> set[str]:
    """Flag names a console script defines."""
    from electra_tf import flag_docs

    return set(flag_docs.script_flags(flag_docs.console_scripts()[program]))


def _parse(define_flags, build_config, args):
    flag_values = define_flags(flags.FlagValues())
    flag_values(["prog", *args])
    return flag_values, build_config(flag_values)


def test_colab_notebook_is_valid_and_uses_only_the_public_cli():
    notebook = _notebook()
    nbformat.validate(notebook)
    assert notebook.metadata["accelerator"] == "TPU"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None  # saved clean
            assert not re.search(r"\b(electra_tf|data_prep)\b", cell.source), \
                "the notebook drives the command-line tools, not the library"
    for accelerator in ("TPU", "GPU", "CPU"):
        settings = _settings(_notebook(), ACCELERATOR=accelerator, REPO_DIR=ROOT)
        commands = _commands(_notebook(), settings)
        used = {shlex.split(c)[0] for c in commands}
        assert used - SETUP_PROGRAMS == TOOLS, used
        for command in commands:
            program, *args = shlex.split(command)
            if program in SETUP_PROGRAMS:
                continue
            names = {arg[2:].split("=")[0] for arg in args}
            assert all(arg.startswith("--") for arg in args) and "{" not in command, command
            assert names <= _cli_flags(program) | {"flagfile"}, command
            for arg in args:
                if arg.startswith("--flagfile="):
                    path = arg.split("=", 1)[1]
                    assert os.path.isfile(path if os.path.isabs(path)
                                          else os.path.join(ROOT, path)), arg
            if program == "electra-pretrain":
                flag_values, config = _parse(run_pretraining.define_flags,
                                             run_pretraining.build_config, args)
                assert (config.objective, config.model_size) == ("electra", "small")
                assert config.data_dir == "gs://YOUR_BUCKET/electra_data"
                assert config.model_name == "electra_small" and config.flop_budget
                if accelerator == "TPU":
                    assert flag_values["tpu"].value == "local"
                    assert config.mixed_precision == "bf16"
                    assert config.train_batch_size % 8 == 0  # 8 TPU cores (v2-8, v5e-8)
                elif accelerator == "GPU":
                    assert flag_values["strategy"].value == "mirrored"
                else:
                    assert flag_values["strategy"].value == "default"
                    assert not flag_values["tpu"].value
            if program == "electra-finetune":
                flag_values, config = _parse(run_finetuning.define_flags,
                                             run_finetuning.build_config, args)
                assert config.task_names == ["sst2_mr"] and config.num_train_epochs == 2
                assert config.pretrained_dir == "gs://YOUR_BUCKET/electra_data/models/" \
                                                "electra_small"
                assert flag_values["tpu"].value == ("local" if accelerator == "TPU" else None)


# Test-only first cell: a `!` command that fails stops the run (IPython otherwise only
# records its exit status in `_exit_code`).
STOP_ON_FAILED_COMMAND = '''
_shell = get_ipython()
_system = _shell.system


def _checked_system(command):
    _system(command)
    if _shell.user_ns.get("_exit_code"):
        raise RuntimeError(f"exit status {_shell.user_ns['_exit_code']}: {command}")


_shell.system = _checked_system
'''

# Test-only cell after the TensorBoard cell: the instance it started (the kernel's temp dir
# is private to the test) watches the run's logdir and serves its page.
TENSORBOARD_SERVES = '''
import urllib.request

from tensorboard import manager

_infos = manager.get_all()
assert [info.logdir for info in _infos] == [f"{DATA_DIR}/models"], _infos
with urllib.request.urlopen(f"http://localhost:{_infos[0].port}/", timeout=60) as _page:
    assert _page.status == 200 and b"TensorBoard" in _page.read()
print("TensorBoard serves", _infos[0].logdir)
'''


def _seed_samples(data_dir: str):
    """Put the cached vocab and sample task into DATA_DIR as `electra-samples` would, so
    the notebook's fetch finds them cached (fetching itself is tested in test_data_prep)."""
    manifest = {}
    for name in ("vocab", "movie_reviews"):
        manifest[name] = entry = samples.fetch(name, SAMPLES_CACHE)
        for rel in entry["files"]:
            os.makedirs(os.path.dirname(os.path.join(data_dir, rel)), exist_ok=True)
            shutil.copyfile(os.path.join(SAMPLES_CACHE, rel), os.path.join(data_dir, rel))
    with open(os.path.join(data_dir, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f)


def _tensorboards(tmp_dir: str, data_dir: str) -> list[int]:
    """Live TensorBoard processes the notebook started (its instance files are in the
    kernel's private temp dir; its command line names the test's DATA_DIR)."""
    pids = set()
    for path in glob.glob(os.path.join(tmp_dir, ".tensorboard-info", "pid-*.info")):
        with open(path) as f:
            pids.add(json.load(f)["pid"])
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if "tensorboard" in cmdline and data_dir in cmdline:
            pids.add(process.info["pid"])
    live = []
    for pid in sorted(pids):
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                live.append(pid)
        except psutil.NoSuchProcess:
            pass
    return live


def _stop(pids):
    processes = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.send_signal(signal.SIGTERM)
            processes.append(process)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=20)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=20)


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts += [str(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


def test_colab_notebook_runs_top_to_bottom_on_cpu(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    data_dir, tmp_dir = str(tmp_path / "data"), str(tmp_path / "tmp")
    os.makedirs(tmp_dir)
    _seed_samples(data_dir)

    notebook = _notebook()
    _set_parameters(notebook, ACCELERATOR="CPU", DATA_DIR=data_dir, MODEL="electra",
                    SIZE="debug", FLOP_BUDGET="1e11", FINETUNE_EPOCHS=0.1, REPO_DIR=ROOT)
    notebook.cells.insert(0, new_code_cell(STOP_ON_FAILED_COMMAND))
    tensorboard_cell = next(i for i, cell in enumerate(notebook.cells)
                            if cell.source.startswith("%load_ext tensorboard"))
    notebook.cells.insert(tensorboard_cell + 1, new_code_cell(TENSORBOARD_SERVES))

    # A kernel on this interpreter, with its bin first on PATH for the `!electra-...`
    # commands, and a private temp dir (TensorBoard's instance files land there).
    kernels = tmp_path / "jupyter" / "kernels" / "electra-tf-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "electra-tf (test)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    env = dict(os.environ, TMPDIR=tmp_dir, TF_CPP_MIN_LOG_LEVEL="3",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    # timeout: a hang guard per cell, not a speed requirement
    client = NotebookClient(notebook, kernel_name="electra-tf-test", timeout=900,
                            startup_timeout=120, resources={"metadata": {"path": tmp_dir}})
    try:
        client.execute(env=env)
    finally:
        # The kernel's shutdown normally takes TensorBoard with it (one process group).
        _stop(_tensorboards(tmp_dir, data_dir))
    assert not _tensorboards(tmp_dir, data_dir)
    assert "iframe" in _outputs_text(notebook.cells[tensorboard_cell])
    assert "TensorBoard serves" in _outputs_text(notebook.cells[tensorboard_cell + 1])

    # Data: the vocab, the sample task and 8 shards of 128-token examples.
    assert os.path.isfile(os.path.join(data_dir, "vocab.txt"))
    assert os.path.isfile(os.path.join(data_dir, "finetuning_data", "sst2_mr", "train.tsv"))
    shards = sorted(glob.glob(os.path.join(data_dir, "pretrain_tfrecords",
                                           "pretrain_data.tfrecord-*-of-8")))
    assert len(shards) == 8
    record = next(iter(tf.data.TFRecordDataset(shards[0]))).numpy()
    features = tf.train.Example.FromString(record).features.feature
    assert {name: len(features[name].int64_list.value)
            for name in ("input_ids", "input_mask", "segment_ids")} == \
        {"input_ids": 128, "input_mask": 128, "segment_ids": 128}

    # Pretraining: a few steps within the budget, checkpointed, logged and exported.
    model_dir = os.path.join(data_dir, "models", "electra_debug")
    with open(os.path.join(model_dir, "train_summary.json")) as f:
        summary = json.load(f)
    steps = summary["step"]
    assert 1 <= steps <= 20 and 0 < summary["flops"] <= 1e11, summary
    assert os.path.isfile(os.path.join(model_dir, f"model.ckpt-{steps}.index"))
    assert os.path.isfile(os.path.join(model_dir, "encoder.keras"))
    assert glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))

    # Finetuning: dev accuracy and test predictions.
    with open(os.path.join(model_dir, "results", "sst2_mr.json")) as f:
        results = json.load(f)
    assert 0.0 <= results["dev_best"]["sst2_mr"]["dev"]["accuracy"] <= 1.0
    assert os.listdir(os.path.join(model_dir, "test_predictions"))

    # The Hugging Face export: loaded in the notebook and here, tokenizer included.
    assert "ElectraModel (1, " in _outputs_text(notebook.cells[-1])
    hf_dir = os.path.join(model_dir, "hf")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModel.from_pretrained(hf_dir)
    encoded = tokenizer("Replaced token detection.")
    ids = encoded["input_ids"]
    assert ids[0] == tokenizer.cls_token_id == 101 and ids[-1] == tokenizer.sep_token_id == 102
    assert tokenizer.convert_ids_to_tokens(ids)[1:3] == ["replaced", "token"]
    assert type(model).__name__ == "ElectraModel" and model.config.hidden_size == 32
    output = model(**tokenizer("Replaced token detection.", return_tensors="pt"))
    assert tuple(output.last_hidden_state.shape) == (1, len(ids), 32)
