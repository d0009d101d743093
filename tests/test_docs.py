"""The README's commands point at files that exist."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_flagfile_the_readme_names_is_in_the_repository():
    with open(os.path.join(ROOT, "README.md")) as f:
        named = set(re.findall(r"flags/[\w/]+\.flags", f.read()))
    assert "flags/data/pretrain_samples.flags" in named
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, f"README names flagfiles that are not in the repository: {missing}"
