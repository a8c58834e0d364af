"""The README's two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re

from .conftest import REPO_ROOT


def _setup_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)


def test_ci_runs_the_readme_commands():
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    install, test = _setup_commands()
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)
    assert not any("|| true" in line for line in ci), "CI must not hide a failure"
