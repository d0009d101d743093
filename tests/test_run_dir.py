"""RunDir: the settings a run folder keeps, the re-run rule, results written whole."""

import dataclasses
from typing import ClassVar

import pytest

from electra_tf import files
from electra_tf.configs import RunConfig
from electra_tf.training.run_dir import RunDir, format_table


@dataclasses.dataclass
class _Config(RunConfig):
    MAY_CHANGE: ClassVar[tuple[str, ...]] = ("log_every",)

    learning_rate: float = 1e-3
    log_every: int = 10


def test_a_rerun_may_change_only_the_allowed_settings(tmp_path):
    run = RunDir(str(tmp_path / "run"), "settings.json", "a sweep")
    run.start(_Config())
    assert files.read_json(run.join("settings.json")) == {"learning_rate": 1e-3,
                                                          "log_every": 10}
    run.start(_Config(log_every=5))  # allowed: saved as the run's settings now
    assert files.read_json(run.join("settings.json"))["log_every"] == 5
    with pytest.raises(ValueError, match=r"holds a sweep with other settings "
                                         r"\(learning_rate: 0.001 -> 0.01\); use another "
                                         r"--model_name"):
        run.start(_Config(learning_rate=1e-2, log_every=7))
    assert files.read_json(run.join("settings.json")) == {"learning_rate": 1e-3,
                                                          "log_every": 5}


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
