"""RunDir: the settings a run folder keeps, the re-run rule, results written whole."""

import dataclasses
import os
import re
from typing import ClassVar

import pytest

from electra_tf import files
from electra_tf.configs import RunConfig
from electra_tf.training.run_dir import RunDir, format_table


@dataclasses.dataclass
class _Config(RunConfig):
    MAY_CHANGE: ClassVar[tuple[str, ...]] = ("log_every",)
    FIXED: ClassVar[tuple[str, ...]] = ("batch_size",)

    learning_rate: float = 1e-3
    log_every: int = 10
    batch_size: int = 32


def test_a_rerun_may_change_only_the_allowed_settings(tmp_path):
    run = RunDir(str(tmp_path / "run"), "settings.json", "a sweep")
    run.start(_Config())
    assert files.read_json(run.join("settings.json")) == {"batch_size": 32,
                                                          "learning_rate": 1e-3,
                                                          "log_every": 10}
    run.start(_Config(log_every=5))  # allowed: saved as the run's settings now
    assert files.read_json(run.join("settings.json"))["log_every"] == 5
    with pytest.raises(ValueError) as refused:
        run.start(_Config(learning_rate=1e-2, log_every=7, batch_size=64))
    assert str(refused.value) == (
        f"{run.path} holds a sweep with other settings (batch_size: 32 -> 64; "
        f"learning_rate: 0.001 -> 0.01); to change it knowingly, add "
        f"--change_settings=learning_rate; or use another --model_name, or delete that "
        f"folder to start over")
    assert files.read_json(run.join("settings.json")) == {"batch_size": 32,
                                                          "learning_rate": 1e-3,
                                                          "log_every": 5}
    assert run.history() == []


def test_a_knowing_change_is_recorded_with_the_steps_reached(tmp_path):
    run = RunDir(str(tmp_path / "run"), "settings.json")
    run.start(_Config())
    for folder, step in ((".", 20), (".", 40), ("trial_1", 7)):
        (tmp_path / "run" / folder).mkdir(exist_ok=True)
        (tmp_path / "run" / folder / f"model.ckpt-{step}.index").write_bytes(b"")
    run.start(_Config(learning_rate=2e-3, change_settings=["learning_rate"]))
    assert files.read_json(run.join("settings.json"))["learning_rate"] == 2e-3
    (entry,) = run.history()
    assert entry["changed"] == {"learning_rate": [1e-3, 2e-3]}
    assert entry["checkpoint_steps"] == {".": 40, "trial_1": 7}
    # The same command again continues the changed run; nothing more is recorded.
    run.start(_Config(learning_rate=2e-3, change_settings=["learning_rate"]))
    run.start(_Config(learning_rate=2e-3))
    assert len(run.history()) == 1
    assert "change_settings" not in files.read_json(run.join("settings.json"))
    with pytest.raises(ValueError, match=r"run: batch_size cannot change within a run"):
        run.start(_Config(batch_size=64, change_settings=["batch_size"]))
    with pytest.raises(ValueError, match=r"^change_settings: unknown setting\(s\) lr; "
                                         r"allowed: batch_size, learning_rate, log_every$"):
        run.start(_Config(change_settings=["lr"]))


@dataclasses.dataclass
class _Later(_Config):
    ADDED_DEFAULTS: ClassVar[dict] = {"style": lambda saved: saved["batch_size"] > 16}

    style: bool = False  # added later; earlier runs did what True does now
    warmup: int = 0  # added later without saying what earlier runs did


def test_settings_added_later_compare_as_what_earlier_runs_did(tmp_path):
    run = RunDir(str(tmp_path / "run"), "settings.json")
    run.start(_Config())
    with pytest.raises(ValueError, match=r"\(style: True -> False; warmup: not recorded -> "
                                         r"0\); to change them knowingly, add "
                                         r"--change_settings=style,warmup;"):
        run.start(_Later())
    run.start(_Later(style=True, change_settings=["warmup"]))
    assert files.read_json(run.join("settings.json"))["warmup"] == 0
    (entry,) = run.history()
    assert entry["changed"] == {"warmup": [None, 0]}
    # A FIXED setting may be named when it does not change (a study names many).
    run.start(_Later(style=True, change_settings=["batch_size"]))


def test_results_are_done_markers_and_only_the_chief_writes():
    run = RunDir("ram://run_dir_test/run")
    assert run.result("results.json") is None
    RunDir(run.path, chief=False).write_json("results.json", {"score": 1.0})
    assert run.result("results.json") is None
    run.write_json("results.json", {"score": 0.5})
    assert run.result("results.json") == {"score": 0.5}
    run.write_text("results.md", format_table(["a", "b"], [["1", "2"]], right_from=1))
    assert files.read_text(run.join("results.md")) == "| a | b |\n|---|---:|\n| 1 | 2 |"
    with pytest.raises(ValueError, match="no settings to check"):
        run.start(_Config())


def test_the_docs_list_what_each_command_may_change():
    """docs/faults.md's table is the configs' MAY_CHANGE and FIXED, in their order."""
    from electra_tf.baselines.config import BaselinesConfig
    from electra_tf.finetuning.config import FinetuningConfig
    from electra_tf.pretraining.config import PretrainingConfig
    from electra_tf.study.config import StudyConfig
    from electra_tf.tlm.config import TlmConfig

    page = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "faults.md")
    with open(page, encoding="utf-8") as f:
        rows = {m.group(1): (m.group(2), m.group(3))
                for m in re.finditer(r"^\| `(electra-\w+)` \| (`.*`) \| (.*) \|$", f.read(), re.M)}

    def listed(names):
        return ", ".join(f"`{n}`" for n in names) or "—"

    for command, config in [("electra-pretrain", PretrainingConfig),
                            ("electra-finetune", FinetuningConfig), ("electra-tlm", TlmConfig),
                            ("electra-baselines", BaselinesConfig),
                            ("electra-study", StudyConfig)]:
        assert rows[command] == (listed(config.MAY_CHANGE), listed(config.FIXED)), command
