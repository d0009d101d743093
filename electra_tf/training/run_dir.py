"""A run's folder: its saved settings, the rule for re-running it, done markers, results.

Every stage keeps its run in one folder (local or ``gs://``) and follows one rule: the
folder's settings file records the config it was started with, and a re-run of the same
folder may change only the config class's ``MAY_CHANGE`` fields, and those it names in
``--change_settings`` (recorded, with the steps reached, in ``settings_history.json``);
any other change stops with an error that names each changed key. Results are written
whole or not at all (a temporary name, then a rename), so a result file on disk is also
the marker that its work is done.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from electra_tf import files
from electra_tf.configs import NOT_RECORDED, RunConfig
from electra_tf.distribute import chief_decides
from electra_tf.training.checkpointing import CHECKPOINT_NAME

HISTORY_FILE = "settings_history.json"  # a run's knowingly changed settings


def checkpoint_steps(path: str) -> dict[str, int]:
    """{folder under `path` (``.`` for itself): the newest step of its checkpoints}."""
    pattern = re.compile(re.escape(CHECKPOINT_NAME) + r"-(\d+)\.index$")
    steps: dict[str, int] = {}
    for name in files.walk_files(path) if files.isdir(path) else ():
        match = pattern.search(name)
        if match:
            folder = files.parent(name)[len(path.rstrip("/")):].strip("/") or "."
            steps[folder] = max(steps.get(folder, 0), int(match.group(1)))
    return dict(sorted(steps.items()))


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

    def changed_settings(self, config: RunConfig) -> dict[str, tuple]:
        """{key: (saved, now)} for each setting that differs from the saved ones and is
        not one of the config's ``MAY_CHANGE`` fields (none without saved settings)."""
        if self.settings_file is None:
            raise ValueError(f"{self.path}: a run folder without a settings file has no "
                             f"settings to check")
        saved = files.read_json(self.join(self.settings_file), missing_ok=True)
        if saved is None:
            return {}
        return {k: v for k, v in config.setting_changes(saved).items()
                if k not in type(config).MAY_CHANGE}

    def check(self, config: RunConfig) -> dict[str, tuple]:
        """The changes :meth:`start` would make, {key: (saved, now)}; a ValueError naming
        each change that is not allowed. Writes nothing.

        A setting may differ from the saved ones when it is one of the config's
        ``MAY_CHANGE`` fields, or named in ``config.change_settings`` (and not
        ``FIXED``)."""
        kind = type(config)
        named = set(config.change_settings)
        unknown = sorted(named - set(config.to_dict()))
        if unknown:
            raise ValueError(f"change_settings: unknown setting(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(config.to_dict()))}")
        changes = self.changed_settings(config)
        fixed = sorted(named & set(kind.FIXED) & set(changes))
        if fixed:
            raise ValueError(f"{self.path}: {', '.join(fixed)} cannot change within a run "
                             f"(the model or its step count would no longer be the one "
                             f"saved); use another {self.name_flag}")
        refused = {k: change for k, change in changes.items() if k not in named}
        if refused:
            listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
            may = [k for k in refused if k not in kind.FIXED]
            hint = (f"to change {'it' if len(may) == 1 else 'them'} knowingly, add "
                    f"--change_settings={','.join(may)}; or " if may else "")
            raise ValueError(f"{self.path} holds {self.what} with other settings "
                             f"({listed}); {hint}use another {self.name_flag}, or delete "
                             f"that folder to start over")
        return changes

    def start(self, config: RunConfig) -> None:
        """:meth:`check` `config`, then save it (the chief): the knowingly changed
        settings appended to :data:`HISTORY_FILE` with the steps each checkpoint folder
        of the run had reached, the settings file rewritten."""
        changes = self.check(config)
        if not self.chief:
            return
        if changes:
            self._record(changes)
        path = self.join(self.settings_file)
        text = config.to_json() + "\n"
        if not files.exists(path) or files.read_text(path) != text:
            files.makedirs(self.path)
            files.atomic_write(path, text)

    def history(self) -> list[dict]:
        """The settings changed knowingly in this run, oldest first."""
        return files.read_json(self.join(HISTORY_FILE), missing_ok=True) or []

    def _record(self, changes: dict[str, tuple]) -> None:
        entry = {"changed": {k: [None if v is NOT_RECORDED else v for v in change]
                             for k, change in changes.items()},
                 "checkpoint_steps": checkpoint_steps(self.path),
                 "time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                     timespec="seconds")}
        history = self.history()
        # Killed between this write and the settings' own: the re-run records it once.
        if history and history[-1]["changed"] == entry["changed"]:
            return
        files.write_json(self.join(HISTORY_FILE), [*history, entry])

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

