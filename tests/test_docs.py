"""README.md and docs/*.md name only things that exist: paths, flagfiles, links, console
scripts, make targets, and each command's flags."""

from __future__ import annotations

import ast
import contextlib
import functools
import glob
import importlib
import inspect
import os
import re

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                              for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
README_MAX_LINES = 320

# Folders of the repository whose paths the docs may name.
REPO_DIRS = ("electra_tf", "data_prep", "benchmarks", "notebooks", "docs", "tests", "flags")
# Flags absl itself gives every command.
ABSL_FLAGS = {"flagfile", "undefok", "help", "helpfull", "helpshort", "helpxml",
              "only_check_args", "logtostderr", "alsologtostderr", "verbosity", "v",
              "log_dir", "stderrthreshold", "showprefixforinfo"}
# Words that look like commands but are names: the package and the model sizes.
NOT_COMMANDS = re.compile(r"electra-(tf|debug|tiny|small|base|large)$")


def _read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def _console_scripts() -> dict[str, str]:
    """setup.py's CONSOLE_SCRIPTS as {command: "module:function"} (read, not run)."""
    for node in ast.parse(_read("setup.py")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CONSOLE_SCRIPTS" for t in node.targets):
            entries = ast.literal_eval(node.value)
            return {name.strip(): target.strip()
                    for name, target in (e.split("=", 1) for e in entries)}
    raise AssertionError("setup.py has no CONSOLE_SCRIPTS")


SCRIPTS = _console_scripts()


# ----------------------------------------------------------------------------- parsing

def _code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(fenced code blocks, inline code spans) of a markdown text, each with the line it
    starts on."""
    blocks, spans, prose = [], [], []
    fence, start, body = None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence, start, body = stripped[:3], number + 1, []
        elif fence is not None and stripped.startswith(fence):
            blocks.append((start, "\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
    # Inline spans may wrap across lines of a paragraph: join the prose back first.
    joined = "\n".join(line for _, line in prose)
    line_of = [number for number, line in prose for _ in range(len(line) + 1)]
    for m in re.finditer(r"(`+)(.+?)\1", joined, re.S):
        spans.append((line_of[min(m.start(), len(line_of) - 1)], m.group(2)))
    return blocks, spans


@functools.cache
def _parsed(rel: str):
    return _code(_read(rel))


def _snippets(rel: str):
    """Every code block and inline code span of a page, with its line."""
    blocks, spans = _parsed(rel)
    return blocks + spans


def _expand_braces(path: str) -> list[str]:
    m = re.search(r"\{([^{}]*,[^{}]*)\}", path)
    if not m:
        return [path]
    return [expanded for choice in m.group(1).split(",")
            for expanded in _expand_braces(path[:m.start()] + choice + path[m.end():])]


PATH_RE = re.compile(r"(?<![\w./:-])((?:" + "|".join(REPO_DIRS) + r")/[\w./{},*-]*)")


def _named_paths(rel: str):
    """(line, path) for every repository path a page's code names (brace lists
    expanded; templates such as ``{MODEL}`` or ``<name>`` and ``...`` skipped)."""
    for line, snippet in _snippets(rel):
        for m in PATH_RE.finditer(snippet):
            path = m.group(1).rstrip(".,")
            rest = snippet[m.end():m.end() + 1]
            if "..." in path or rest == "<" or re.search(r"\{[^,{}]*\}", path):
                continue
            for expanded in _expand_braces(path):
                yield line + snippet.count("\n", 0, m.start()), expanded


def _exists(path: str) -> bool:
    full = os.path.join(ROOT, path)
    return bool(glob.glob(full)) if "*" in path else os.path.exists(full)


def _logical_lines(snippet: str):
    """(offset of its first line, text) of a snippet's lines, with shell continuations
    (a trailing backslash) joined."""
    pending, first = "", 0
    for offset, line in enumerate(snippet.splitlines()):
        if not pending:
            first = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            yield first, pending + line
            pending = ""
    if pending:
        yield first, pending


COMMAND_RE = re.compile(r"(?<![\w./-])(electra-[a-z][a-z-]*[a-z])(?![\w-])")


def _command_flags(rel: str):
    """(line, command, flag) for every ``--flag`` written after an ``electra-*`` command in
    a page's code (a code block's lines or an inline span that starts with the command)."""
    blocks, spans = _parsed(rel)
    snippets = blocks + [(line, s) for line, s in spans if COMMAND_RE.match(s.strip())]
    for line, snippet in snippets:
        for offset, logical in _logical_lines(snippet):
            # A shell comment or a second command on the line starts a new segment.
            for segment in re.split(r"\s#\s|&&|;", logical):
                found = [m for m in COMMAND_RE.finditer(segment) if m.group(1) in SCRIPTS]
                for i, m in enumerate(found):
                    end = found[i + 1].start() if i + 1 < len(found) else len(segment)
                    for flag in re.findall(r"(?<![\w-])--([A-Za-z_]\w*)", segment[m.end():end]):
                        yield line + offset, m.group(1), flag


# ----------------------------------------------------------------------- defined flags

@contextlib.contextmanager
def _flags_into(flag_values: flags.FlagValues):
    """absl's DEFINE_* (and validators, required marks) write into `flag_values` instead of
    the global FLAGS, and app.run stops before running anything."""
    class _Stop(Exception):
        pass

    def redirect(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if kwargs.get("flag_values", flags.FLAGS) is flags.FLAGS:
                kwargs["flag_values"] = flag_values
            return function(*args, **kwargs)
        return wrapper

    def stop(*_args, **_kwargs):
        raise _Stop

    saved = {}
    for name in dir(flags):
        function = getattr(flags, name)
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        try:
            takes = "flag_values" in inspect.signature(function).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            saved[name] = function
            setattr(flags, name, redirect(function))
    saved_run = app.run
    app.run = stop
    try:
        try:
            yield
        except _Stop:
            pass
    finally:
        app.run = saved_run
        for name, function in saved.items():
            setattr(flags, name, function)


@functools.cache
def _defined_flags(command: str) -> dict[str, bool]:
    """{flag name: is boolean} that `command` defines: for ``module:main`` its module's
    ``define_flags(flag_values)``, for ``module:<x>_main`` ``define_<x>_flags``; failing
    that, the flags its entry point defines before it runs (read by redirecting absl's
    DEFINE_* into fresh FlagValues)."""
    module_name, function_name = SCRIPTS[command].split(":")
    module = importlib.import_module(module_name)
    values = flags.FlagValues()
    define = getattr(module, f"define_{function_name[:-len('main')]}flags", None)
    if (function_name.endswith("main") and define is not None
            and inspect.signature(define).parameters):
        define(values)
    else:
        with _flags_into(values):
            getattr(module, function_name)()
    defined = {name: values[name].boolean for name in values}
    # Flags a module defines when it is imported sit in the global FLAGS.
    for flag in flags.FLAGS.get_flags_for_module(module_name):
        defined[flag.name] = flag.boolean
    assert defined, f"{command}: found no flags in {SCRIPTS[command]}"
    return defined


# ------------------------------------------------------------------------------ tests

def test_readme_is_short():
    lines = _read("README.md").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it a front door (at most {README_MAX_LINES}) "
        "and move reference material into docs/")


def test_every_flagfile_the_docs_name_is_in_the_repository():
    named = {rel: set(re.findall(r"flags/[\w/]+\.flags", _read(rel))) for rel in DOCS}
    assert "flags/data/pretrain_samples.flags" in named["README.md"]
    missing = sorted(f"{rel}: {p}" for rel, paths in named.items() for p in paths
                     if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, f"flagfiles named but not in the repository: {missing}"


def test_every_repository_path_the_docs_name_exists():
    missing = sorted({f"{rel}:{line}: {path}" for rel in DOCS
                      for line, path in _named_paths(rel) if not _exists(path)})
    assert not missing, f"paths named but not in the repository: {missing}"


def _module_source(parts: list[str]) -> tuple[str | None, list[str]]:
    """The source file of the longest module prefix of `parts` in the repository, and the
    names after it."""
    for n in range(len(parts), 0, -1):
        base = os.path.join(ROOT, *parts[:n])
        for source in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(source):
                return source, parts[n:]
    return None, parts


def _defines(source: str, name: str) -> bool:
    with open(source, encoding="utf-8") as f:
        return re.search(rf"\b{re.escape(name)}\b", f.read()) is not None


def test_every_module_the_docs_name_exists():
    """``electra_tf.x.y`` names a module or package, or one name defined in it; ``from
    electra_tf.x import a, b`` imports names (or submodules) that exist."""
    wrong = set()
    for rel in DOCS:
        for line, snippet in _snippets(rel):
            for m in re.finditer(r"(?<![\w./])((?:electra_tf|data_prep)(?:\.\w+)+)", snippet):
                source, rest = _module_source(m.group(1).split("."))
                if source is None or len(rest) > 1 or rest and not _defines(source, rest[0]):
                    wrong.add(f"{rel}:{line}: {m.group(1)}")
            for m in re.finditer(r"from ((?:electra_tf|data_prep)[\w.]*) import \(?([\w, ]+)",
                                 snippet):
                parts = m.group(1).split(".")
                source, rest = _module_source(parts)
                for name in filter(None, (n.strip() for n in m.group(2).split(","))):
                    submodule, _ = _module_source(parts + [name])
                    if rest or source is None or not (
                            _defines(source, name) or submodule and submodule != source):
                        wrong.add(f"{rel}:{line}: from {m.group(1)} import {name}")
    assert not wrong, f"modules or names that do not exist: {sorted(wrong)}"


def test_every_command_the_docs_name_is_a_console_script():
    unknown = set()
    for rel in DOCS:
        for number, line in enumerate(_read(rel).splitlines(), 1):
            for name in COMMAND_RE.findall(line):
                if name not in SCRIPTS and not NOT_COMMANDS.match(name):
                    unknown.add(f"{rel}:{number}: {name}")
    assert not unknown, (f"commands that are not console scripts in setup.py: "
                         f"{sorted(unknown)}; the scripts are {sorted(SCRIPTS)}")


def test_every_make_target_the_docs_name_exists():
    targets = set(re.findall(r"^([\w-]+):", _read("Makefile"), re.M))
    unknown = sorted({f"{rel}:{line + snippet.count(chr(10), 0, m.start())}: {m.group(0)}"
                      for rel in DOCS for line, snippet in _snippets(rel)
                      for m in re.finditer(r"(?<![\w-])make ([a-z][\w-]*)", snippet)
                      if m.group(1) not in targets})
    assert not unknown, f"make targets not in the Makefile: {unknown}"


def test_every_flag_written_after_a_command_is_defined_by_it():
    written = [(rel, line, cmd, flag) for rel in DOCS for line, cmd, flag in _command_flags(rel)]
    # The docs show flags for the main commands; the check reads them all.
    assert {"electra-pretrain", "electra-finetune", "electra-convert"} <= {w[2] for w in written}
    unknown = []
    for command in sorted({cmd for _, _, cmd, _ in written}):
        defined = _defined_flags(command)
        unknown += [f"{rel}:{line}: {command} --{flag}" for rel, line, cmd, flag in written
                    if cmd == command and not (
                        flag in defined or flag in ABSL_FLAGS
                        or flag.startswith("no") and defined.get(flag[2:], False))]
    assert not unknown, f"flags the commands do not define: {sorted(set(unknown))}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(rel: str) -> set[str]:
    blocks_free = re.sub(r"^```.*?^```", "", _read(rel), flags=re.M | re.S)
    return {_slug(m) for m in re.findall(r"^#+\s+(.*)$", blocks_free, re.M)}


def test_every_local_link_resolves():
    broken = []
    for rel in DOCS:
        text = re.sub(r"^```.*?^```", "", _read(rel), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (os.path.normpath(os.path.join(os.path.dirname(rel), path))
                        if path else rel)
            if not os.path.exists(os.path.join(ROOT, resolved)):
                broken.append(f"{rel}: {target} (no {resolved})")
            elif anchor and resolved.endswith(".md") and anchor not in _anchors(resolved):
                broken.append(f"{rel}: {target} (no heading #{anchor} in {resolved})")
    assert not broken, f"links that do not resolve: {broken}"


def test_every_command_has_one_flag_table_in_the_docs():
    """``<!-- flags:COMMAND -->`` ... ``<!-- /flags -->``: where `make docs` writes each
    console script's full flag table."""
    where = {}
    for rel in DOCS:
        text = _read(rel)
        for m in re.finditer(r"<!-- flags:([\w-]+) -->(.*?)<!-- /flags -->", text, re.S):
            assert "<!-- flags:" not in m.group(2), f"{rel}: unclosed table of {m.group(1)}"
            where.setdefault(m.group(1), []).append(rel)
        opened = len(re.findall(r"<!-- flags:[\w-]+ -->", text))
        assert opened == text.count("<!-- /flags -->"), f"{rel}: unbalanced flag-table marks"
    assert sorted(where) == sorted(SCRIPTS), (
        f"flag tables for {sorted(where)}; console scripts {sorted(SCRIPTS)}")
    twice = {command: pages for command, pages in where.items() if len(pages) > 1}
    assert not twice, f"commands with more than one flag table: {twice}"


def test_commands_are_written_one_way():
    """Console scripts by name (the venv activated once), not through .venv/bin or
    ``python -m``."""
    wrong = []
    for rel in DOCS:
        for number, line in enumerate(_read(rel).splitlines(), 1):
            if re.search(r"\.venv/bin/(?!activate\b)", line):
                wrong.append(f"{rel}:{number}: {line.strip()}")
            if re.search(r"python3? -m (electra_tf|data_prep)\b", line):
                wrong.append(f"{rel}:{number}: {line.strip()}")
    assert not wrong, f"write the console script instead: {wrong}"


def test_the_docs_speak_of_the_project_alone():
    """No ticket numbers: the docs speak of the project and name papers by title."""
    wrong = []
    for rel in DOCS:
        for number, line in enumerate(_read(rel).splitlines(), 1):
            if re.search(r"#\d", line):
                wrong.append(f"{rel}:{number}: {line.strip()}")
    assert not wrong, f"speak of the project and name papers by title: {wrong}"
