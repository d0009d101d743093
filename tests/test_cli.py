"""Bad input is one line; an internal failure shows its traceback, labelled as a bug.
Flags come from the run configs' fields, before TensorFlow loads."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags

from electra_tf import cli
from electra_tf.configs import RunConfig, setting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raise(make):
    try:
        make()
    except Exception as e:  # noqa: BLE001 - the error under test
        return e
    raise AssertionError("nothing raised")


def test_bad_input_is_one_line_and_library_failures_are_not(monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)

    def check():
        raise ValueError("corpus.txt:3: expected a document")

    assert cli.error_line(_raise(check)) == "corpus.txt:3: expected a document"
    assert cli.error_line(_raise(lambda: open("/nonexistent/x.txt"))).startswith(
        "[Errno 2] No such file or directory")
    # Raised inside a library (here json; in the wild Keras or tf.distribute): a bug.
    assert cli.error_line(_raise(lambda: json.loads("{"))) is None
    missing = _raise(lambda: tf.io.read_file("/nonexistent/shard.tfrecord"))
    assert "/nonexistent/shard.tfrecord" in cli.error_line(missing)
    internal = _raise(lambda: tf.reshape(tf.zeros([3]), [2]))
    assert cli.error_line(internal) is None

    def unpack():  # a ValueError of the interpreter's, in the package's code: a bug
        first, second = "abc"
        return first, second

    assert cli.error_line(_raise(unpack)) is None


def test_run_main_prints_one_line_or_labels_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)

    def bad_input():
        raise ValueError("--train_batch_size=7 must be a positive multiple of 2")

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main("prog", bad_input)(["prog"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "prog: error: --train_batch_size=7 must be a positive multiple of 2\n")

    with pytest.raises(json.JSONDecodeError):
        cli.run_main("prog", lambda: json.loads("{"))(["prog"])
    assert capsys.readouterr().err.startswith(
        "prog: internal error (JSONDecodeError); this is a bug, not your input")

    # -v 1 (or ELECTRA_TF_TRACEBACK=1): the line, then the traceback of the input error.
    monkeypatch.setattr(flags.FLAGS["verbosity"], "value", 1)
    assert cli.debugging()
    with pytest.raises(ValueError, match="must be a positive multiple of 2"):
        cli.run_main("prog", bad_input)(["prog"])
    assert capsys.readouterr().err == (
        "prog: error: --train_batch_size=7 must be a positive multiple of 2\n")
    monkeypatch.setattr(flags.FLAGS["verbosity"], "value", -1)
    assert not cli.debugging()
    monkeypatch.setenv("ELECTRA_TF_TRACEBACK", "1")
    assert cli.debugging()


def test_the_packages_own_errors_are_input_wherever_it_is_installed(monkeypatch):
    monkeypatch.delenv("ELECTRA_TF_TRACEBACK", raising=False)
    from electra_tf import files

    # files.read_json raises from inside the package, which may sit in site-packages.
    monkeypatch.setattr(cli.sysconfig, "get_paths", lambda: {
        "stdlib": "/nonexistent", "purelib": files.__file__.rsplit("electra_tf", 1)[0],
        "platlib": "/nonexistent"})
    error = _raise(lambda: files.read_json("/nonexistent/settings.json"))
    assert cli.error_line(error) == "/nonexistent/settings.json: no such file"
    # A NotFoundError that names no path (a kernel, a resource) is internal.
    kernel = tf.errors.NotFoundError(None, None, "No registered 'Foo' OpKernel for 'GPU'")
    assert cli.error_line(kernel) is None


# ------------------------------------------------------------------ flags from configs

@dataclasses.dataclass
class _Config(RunConfig):
    name: str = setting("x", help="A name.")
    steps: int | None = setting(None, help="Steps.")
    rate: float = setting(5e-4, help="A rate.")
    fast: bool = setting(True, help="Go fast.")
    fractions: list[float] = setting(default_factory=lambda: [0.5, 1.0], help="Fractions.")
    overrides: dict = setting(default_factory=dict, help="Overrides, JSON.")
    corpus: list[str] = setting(default_factory=list, flag="multi_string", help="Corpora.")
    path: str | None = setting(None, help="A path.", shown_default="<name>/x")
    cache: str = setting("", flag=False, help="Not a flag.")


def _config_flags(*args):
    values = cli.define_config_flags(_Config, flags.FlagValues(), required=("name",))
    values(["prog", *args])
    return values


def test_a_config_field_becomes_a_flag_of_its_annotations_type():
    values = _config_flags("--name=n")
    kinds = {name: values[name].flag_type() for name in values}
    assert kinds == {"name": "string", "steps": "int", "rate": "float", "fast": "bool",
                     "fractions": "comma separated list of strings", "overrides": "string",
                     "corpus": "multi string", "path": "string",
                     "change_settings": "comma separated list of strings", "hparams": "string"}
    assert list(kinds)[-2:] == ["change_settings", "hparams"]  # every config's, last
    # not given is None: the config's default or the --hparams value
    assert all(values[name].default is None for name in kinds if name != "hparams")
    helps = {name: values[name].help for name in ("name", "steps", "rate", "fast",
                                                  "fractions", "overrides", "path")}
    assert helps == {"name": "A name.", "steps": "Steps. (default: none)",
                     "rate": "A rate. (default: 5e-4)", "fast": "Go fast. (default: true)",
                     "fractions": "Fractions. (default: 0.5,1)",
                     "overrides": "Overrides, JSON. (default: {})",
                     "path": "A path. (default: <name>/x)"}
    assert cli.config_from_flags(_Config, values) == _Config(name="n")


def test_a_config_from_flags_parses_lists_and_json_by_annotation():
    values = _config_flags("--name=n", "--fractions=0.25,1", '--overrides={"a": 1}',
                           "--corpus=text:a", "--corpus=books:b", "--nofast", "--steps=3",
                           '--hparams={"rate": 0.1}')
    assert cli.config_from_flags(_Config, values) == _Config(
        name="n", steps=3, rate=0.1, fast=False, fractions=["0.25", "1"],
        overrides={"a": 1}, corpus=["text:a", "books:b"])
    with pytest.raises(ValueError, match=r"^--overrides must be a JSON object, got '\[1\]'$"):
        cli.config_from_flags(_Config, _config_flags("--name=n", "--overrides=[1]"))
    with pytest.raises(ValueError, match="given twice with different values: steps"):
        cli.config_from_flags(_Config, _config_flags("--name=n", "--steps=2",
                                                     '--hparams={"steps": 3}'))


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Bare(RunConfig):
        size: int = 1

    with pytest.raises(TypeError, match="Bare.size has no help"):
        cli.define_config_flags(Bare, flags.FlagValues())


def test_every_run_config_field_has_help_that_leaves_the_default_to_the_flag():
    from electra_tf.baselines.config import BaselinesConfig
    from electra_tf.finetuning.config import FinetuningConfig
    from electra_tf.pretraining.config import PretrainingConfig
    from electra_tf.study.config import StudyConfig
    from electra_tf.tlm.config import TlmConfig

    for config in (PretrainingConfig, FinetuningConfig, TlmConfig, BaselinesConfig,
                   StudyConfig):
        for field in dataclasses.fields(config):
            help_text = field.metadata.get("help", "")
            assert help_text.strip(), f"{config.__name__}.{field.name} has no help"
            assert "(default" not in help_text, (
                f"{config.__name__}.{field.name}: the flag appends the default; the help "
                f"must not state it: {help_text!r}")


# The commands whose flags come from a run config, and arguments that make their config.
CONFIG_COMMANDS = {
    "run_pretraining": ["--data_dir=d", "--model_name=m", "--num_train_steps=1"],
    "run_finetuning": ["--data_dir=d", "--model_name=m"],
    "run_tlm": ["--data_dir=d", "--num_train_steps=1"],
    "run_baselines": ["--data_dir=d"],
    "run_study": [],
}


def test_commands_define_flags_and_build_configs_without_tensorflow():
    """Flags and configs come before TensorFlow loads: ``--help`` and a wrong value answer
    at once."""
    script = f"""
import sys
from absl import flags

def loaded():
    return [name for name in ("tensorflow", "keras") if name in sys.modules]

for name, args in {CONFIG_COMMANDS!r}.items():
    module = __import__("electra_tf." + name, fromlist=["_"])
    values = module.define_flags(flags.FlagValues())
    values(["prog", *args])
    module.build_config(values)
    assert not loaded(), (name, loaded())
from electra_tf import run_convert, run_finetuning, run_flops
run_flops.define_flags(flags.FlagValues())
run_finetuning.define_score_flags(flags.FlagValues())
assert not loaded(), ("run_convert, run_flops or electra-score-predictions", loaded())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def test_only_kerass_own_imports_of_its_extras_are_skipped():
    from electra_tf import startup

    finder = startup._KerasExtrasFinder()

    def find(name, importer):
        namespace = {"__name__": importer, "finder": finder, "name": name}
        exec("spec = finder.find_spec(name)", namespace)  # noqa: S102
        return namespace["spec"]

    for name in ("sklearn", "sklearn.base", "matplotlib.pyplot", "IPython"):
        for importer in ("keras", "keras.src.wrappers.fixes"):
            with pytest.raises(ModuleNotFoundError, match="skipped for Keras"):
                find(name, importer)
        for importer in ("electra_tf.tasks.scorers", "kagglehub.env", "kerasx", "__main__"):
            assert find(name, importer) is None  # found by the finders after it
    assert find("numpy", "keras.src.ops") is None
    assert startup.is_command_process(["/venv/bin/python", "/venv/bin/electra-pretrain"])
    assert startup.is_command_process(["py", "C:\\venv\\Scripts\\electra-finetune.exe"])
    assert startup.is_command_process(["python3", "-m", "electra_tf.run_tlm", "--x"])
    assert startup.is_command_process(["python3", "-X", "importtime", "-u", "-m",
                                       "data_prep.samples"])
    assert not startup.is_command_process(["python", "-m", "pytest", "electra_tf.x"])
    assert not startup.is_command_process(["python", "-c", "import electra_tf"])
    assert not startup.is_command_process(["python", "train.py", "-m", "electra_tf.x"])
    assert not startup.is_command_process(["python", "/data/electra_runs/train.py"])
    assert not startup.is_command_process(["python"])
    assert not startup.skip_keras_extras()  # Keras is loaded here: nothing to do


def test_a_command_process_loads_keras_without_its_extras_and_can_import_them_after():
    script = """
import sys
sys.orig_argv = [sys.executable, "/venv/bin/electra-pretrain"]
import electra_tf, tensorflow, keras
from keras.src.wrappers import sklearn_wrapper
print(sorted({"sklearn", "matplotlib"} & set(sys.modules)), sklearn_wrapper.sklearn is None)
import matplotlib.pyplot, sklearn.metrics
print(sklearn.metrics.f1_score([0, 1, 1], [0, 1, 0]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[] True", "0.6666666666666666"]


def test_electra_samples_on_a_local_folder_never_imports_tensorflow(sample_paths):
    """The file layer loads TensorFlow only for a ``scheme://`` path: the samples command
    on a local folder checks its cache without it."""
    cache = os.path.dirname(sample_paths["vocab"])
    script = f"""
import sys
from data_prep import samples
try:
    samples.main(["electra-samples", "--samples_dir={cache}", "--only=vocab"])
except SystemExit as e:
    assert not e.code, e.code
print("tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["vocab", "cached"]
    assert result.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("argv, message", [
    (["--flagfile=/nonexistent/x.flags"], "Unable to open flagfile: [Errno 2] No such file "
     "or directory: '/nonexistent/x.flags'"),
    (["--name=n", "--bogus"], "Unknown command line flag 'bogus'"),
    ([], "flag --name=None: Flag --name must have a value other than None"),
    (["--name=n", "--steps=abc"], "flag --steps=abc: invalid literal for int() with base 10: "
     "'abc'"),
])
def test_a_command_line_absl_refuses_is_one_line(argv, message, capsys):
    values = cli.define_config_flags(_Config, flags.FlagValues(), required=("name",))
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_flags("prog", values)(["prog", *argv])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"prog: error: {message}; see prog --helpshort\n"
