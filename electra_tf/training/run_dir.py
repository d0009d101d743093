"""A run's folder: its saved settings, the rule for re-running it, done markers, results.

Every stage keeps its run in one folder (local or ``gs://``) and follows one rule: the
folder's settings file records the config it was started with, and a re-run of the same
folder may change only the config class's ``MAY_CHANGE`` fields; any other change stops
with an error that names each changed key. Results are written whole or not at all (a
temporary name, then a rename), so a result file on disk is also the marker that its work
is done.
"""

from __future__ import annotations

from collections.abc import Sequence

from electra_tf import files
from electra_tf.configs import RunConfig
from electra_tf.distribute import chief_decides


class RunDir:
    """The folder at `path`, holding a run of a ``RunConfig``.

    Args:
      path: the folder (created on :meth:`start`).
      settings_file: the settings' file name in it, e.g. ``pretraining_config.json``
        (none for a part of a run, such as a TLM stage, that only holds results).
      what: how errors name the run, e.g. ``"a run"``, ``"a sweep"``.
      name_flag: the flag that picks another folder, for the error message.
      chief: whether this process writes (under several workers only the chief does).

    Example::

        run = RunDir("data/models/sst2_run", "finetuning_config.json")
        run.start(config)                          # refuses changed settings
        if (done := run.result("results.json")) is None:
            run.write_json("results.json", train_and_score(config))
    """

    def __init__(self, path: str, settings_file: str | None = None, what: str = "a run",
                 name_flag: str = "--model_name", chief: bool = True):
        self.path = path
        self.settings_file = settings_file
        self.what = what
        self.name_flag = name_flag
        self.chief = chief

    def join(self, *parts: str) -> str:
        return files.join(self.path, *parts)

    def changed_settings(self, config: RunConfig) -> list[str]:
        """``"key: old -> new"`` for each setting that differs from the saved ones and
        is not one of the config's ``MAY_CHANGE`` fields (none without saved settings)."""
        if self.settings_file is None:
            raise ValueError(f"{self.path}: a run folder without a settings file has no "
                             f"settings to check")
        path = self.join(self.settings_file)
        if not files.exists(path):
            return []
        return config.changes_from(path, type(config).MAY_CHANGE)

    def start(self, config: RunConfig) -> None:
        """Check `config` against the folder's saved settings, then save it (the chief)."""
        changed = self.changed_settings(config)
        if changed:
            raise ValueError(f"{self.path} holds {self.what} with other settings "
                             f"({'; '.join(changed)}); use another {self.name_flag}, or "
                             f"delete that folder to start over")
        if self.chief:
            path = self.join(self.settings_file)
            text = config.to_json() + "\n"
            if not files.exists(path) or files.read_text(path) != text:
                files.makedirs(self.path)
                files.atomic_write(path, text)

    def result(self, name: str, strategy=None) -> dict | None:
        """The JSON result `name` that finished work left here, or None. With a
        `strategy`, the chief's view decides for every worker."""
        path = self.join(name)
        if strategy is None:
            return files.read_json(path, missing_ok=True)
        return files.read_json(path) if chief_decides(strategy, files.exists(path)) else None

    def write_json(self, name: str, value, indent: int = 2) -> str:
        """Write `value` as JSON to `name` in one piece (the chief only); its path."""
        path = self.join(name)
        if self.chief:
            files.write_json(path, value, indent=indent)
        return path

    def write_text(self, name: str, text: str) -> str:
        path = self.join(name)
        if self.chief:
            files.atomic_write(path, text)
        return path

    def save_figure(self, name: str, fig) -> str:
        """A matplotlib figure as a PNG (closed after)."""
        path = self.join(name)
        if self.chief:
            files.save_figure(fig, path)
        return path


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 right_from: int | None = None) -> str:
    """A markdown table; columns from index `right_from` on are right-aligned."""
    right = len(header) if right_from is None else right_from
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * right + "---:|" * (len(header) - right)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])

