"""Re-run the tests that inject faults and write their measured outcomes into
``docs/faults.md``: each fault, what survived and what the user saw.

Usage: ``make faults``. The tests
report through the ``fault_report`` fixture (``tests/conftest.py``) only after their
assertions passed; a failing test stops the script and leaves the page as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "faults.md")
BEGIN, END = "<!-- fault table: begin -->", "<!-- fault table: end -->"


def reporting_tests() -> list[str]:
    """The test modules that call the fault_report fixture."""
    folder = os.path.join(ROOT, "tests")
    return sorted(os.path.join("tests", name) for name in os.listdir(folder)
                  if name.startswith("test_") and name.endswith(".py")
                  and "fault_report(" in open(os.path.join(folder, name)).read())


# The tables, by the test module that injected the fault.
TABLES = (("Interruptions, changed settings and fp16", lambda test: "hostile" not in test),
          ("Bad input", lambda test: "hostile" in test))


def render(rows: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    parts = []
    for title, belongs in TABLES:
        lines = [f"### {title}", "", "| Stage | Fault injected | What survived | "
                 "What the user saw |", "|---|---|---|---|"]
        for row in sorted((r for r in rows if belongs(r["test"])),
                          key=lambda r: (r["stage"], r["test"])):
            lines.append("| " + " | ".join(cell(row[k]) for k in (
                "stage", "fault", "survived", "user_saw")) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main() -> int:
    modules = reporting_tests()
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "faults.jsonl")
        env = dict(os.environ, ELECTRA_TF_FAULT_REPORT=report)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2",
                               "--dist=loadfile", "-p", "no:cacheprovider", *modules],
                              cwd=ROOT, env=env)
        if done.returncode != 0:
            print("fault_table: a test failed; docs/faults.md left as it was",
                  file=sys.stderr)
            return done.returncode
        with open(report, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
    with open(PAGE, encoding="utf-8") as f:
        page = f.read()
    table = f"{BEGIN}\n{render(rows)}\n{END}"
    page, found = re.subn(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, page,
                          flags=re.S)
    if not found:
        raise SystemExit(f"{PAGE}: no {BEGIN} ... {END} block to fill")
    with open(PAGE + ".tmp", "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(PAGE + ".tmp", PAGE)
    print(f"{PAGE}: {len(rows)} faults from {len(modules)} test modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
