"""The pre-commit hooks are the checks CI runs after the tests: a commit they pass, CI's lint and
type checks pass too."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ci_checks() -> list[str]:
    """The commands .ci/run runs after the test suite, each on the whole tree."""
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    after_tests = lines[next(i for i, line in enumerate(lines) if "pytest" in line) + 1 :]
    return [
        line.strip().removesuffix(" .")
        for line in after_tests
        if line.strip() and not line.lstrip().startswith("#")
    ]


def hook_commands() -> list[str]:
    """The hooks' commands, as CI spells them: the venv's tools, on the files given."""
    config = (REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    return [
        entry.removeprefix(".venv/bin/").replace(" --force-exclude", "")
        for entry in re.findall(r"^\s+entry: (.+)$", config, re.MULTILINE)
    ]


def test_the_hooks_run_what_ci_checks() -> None:
    assert ci_checks() == ["ruff check", "ruff format --check", "mypy", "lint-imports"]
    assert hook_commands() == ci_checks()
