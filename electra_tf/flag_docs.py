"""The flag tables of docs/*.md, generated from the commands' own flag definitions.

Each console script of setup.py's ``CONSOLE_SCRIPTS`` has one markdown table (flag, type,
default, help) between ``<!-- flags:<script> -->`` and ``<!-- /flags -->`` in a docs
page. ``make docs`` rewrites them (``python -m electra_tf.flag_docs [--check] [DOCS_DIR]``);
tests/test_flag_docs.py fails when one is stale or missing.

A script ``module:main`` defines its flags with ``module.define_flags(flag_values)``,
``module:<x>_main`` with ``module.define_<x>_flags(flag_values)``.
"""

from __future__ import annotations

import ast
import glob
import importlib
import os
import re
import sys

from absl import flags

from electra_tf.cli import format_default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = re.compile(r"(<!-- flags:([\w-]+) -->)(.*?)(<!-- /flags -->)", re.S)
# A default written at the end of a help: cli.define_config_flags appends one to every
# config field's flag, and some hand-written flags say theirs so.
DEFAULT_NOTE = re.compile(r" \(default: (.*)\)$", re.S)
KINDS = {"int": "integer", "comma separated list of strings": "comma-separated list",
         "multi string": "string, repeatable"}
# What absl adds to the help of a repeatable flag (the type column says it).
REPEATABLE_NOTE = ";\n    repeat this option to specify a list of values"


def console_scripts(setup_py: str = os.path.join(ROOT, "setup.py")) -> dict[str, str]:
    """setup.py's CONSOLE_SCRIPTS as {script: "module:function"} (read, not run)."""
    with open(setup_py, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CONSOLE_SCRIPTS" for t in node.targets):
            return {name.strip(): target.strip() for name, target in
                    (entry.split("=", 1) for entry in ast.literal_eval(node.value))}
    raise ValueError(f"{setup_py} has no CONSOLE_SCRIPTS")


def script_flags(target: str) -> flags.FlagValues:
    """The flags the script ``module:function`` defines, on fresh FlagValues."""
    module, function = target.split(":")
    define = f"define_{function.removesuffix('main')}flags"
    return getattr(importlib.import_module(module), define)(flags.FlagValues())


def _cell(text: str) -> str:
    # A table cell is one line; '|' would end it, '<task>' would be taken for HTML and
    # a lone '*' may start emphasis.
    return re.sub(r"([\\|<*])", r"\\\1", " ".join(text.split()))


def _required(flag) -> bool:
    # absl marks a required flag with a validator of this message (mark_flag_as_required).
    return any(v.message == f"Flag --{flag.name} must have a value other than None."
               for v in flag.validators)


def flag_table(target: str) -> str:
    """The markdown table of the flags of the script ``module:function``, in the order
    they are defined."""
    values = script_flags(target)
    rows = ["| flag | type | default | help |", "| --- | --- | --- | --- |"]
    for name in values:
        flag = values[name]
        if name != flag.name:  # a short name
            continue
        help_text, default = flag.help.removesuffix(REPEATABLE_NOTE), format_default(flag.default)
        if isinstance(flag.parser, flags.EnumParser):
            choices = flag.parser.enum_values
            kind = "one of " + ", ".join(choices)
            help_text = help_text.removeprefix(f"<{'|'.join(choices)}>: ")  # absl's prefix
        else:
            kind = KINDS.get(flag.flag_type(), flag.flag_type())
        note = DEFAULT_NOTE.search(help_text)
        if note:
            help_text, default = help_text[:note.start()], note.group(1)
        if _required(flag):
            default = "required"
        rows.append(f"| `--{name}` | {_cell(kind)} | {_cell(default)} | {_cell(help_text)} |")
    return "\n".join(rows)


def render(text: str, tables: dict[str, str]) -> tuple[str, list[tuple[str, bool]]]:
    """`text` with each flag table of a script in `tables` made current, and (script, was
    it current) for each table `text` holds."""
    found = []

    def fresh(match: re.Match) -> str:
        name, table = match.group(2), match.group(0)
        if name in tables:
            table = f"{match.group(1)}\n\n{tables[name]}\n\n{match.group(4)}"
        found.append((name, table == match.group(0)))
        return table

    return TABLE.sub(fresh, text), found


def update(docs_dir: str, write: bool = True, scripts: dict[str, str] | None = None
           ) -> list[str]:
    """Make the flag tables of `docs_dir`/*.md current (with `write`; else only compare);
    returns the problems: tables out of date (when comparing), scripts with no table or
    with several, tables of no script."""
    scripts = console_scripts() if scripts is None else scripts
    tables = {name: flag_table(target) for name, target in scripts.items()}
    problems, pages = [], {}
    for path in sorted(glob.glob(os.path.join(docs_dir, "*.md"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new, found = render(text, tables)
        page = os.path.relpath(path, docs_dir)
        for name, is_current in found:
            pages.setdefault(name, []).append(page)
            if name not in tables:
                problems.append(f"{page}: a flag table of {name}, which is no console script")
            elif not is_current and not write:
                problems.append(f"{page}: the flag table of {name} is out of date")
        if write and new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"updated {path}")
    for name in tables:
        if name not in pages:
            problems.append(f"{name} has no flag table: add the lines '<!-- flags:{name} -->' "
                            f"and '<!-- /flags -->' to a page of {docs_dir}")
        elif len(pages[name]) > 1:
            problems.append(f"{name} has a flag table in each of {', '.join(pages[name])}: "
                            f"keep one")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m electra_tf.flag_docs [--check] [DOCS_DIR]`` (DOCS_DIR: docs/)."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    docs_dir = paths[0] if paths else os.path.join(ROOT, "docs")
    problems = update(docs_dir, write=not check)
    for problem in problems:
        print(f"flag_docs: {problem}", file=sys.stderr)
    if problems and check:
        print("flag_docs: `make docs` rewrites the tables", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
