"""The pre-commit hooks are the checks CI runs after the tests: a commit they pass, CI's lint and
type checks pass too."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ci_checks() -> list[str]:
    """The check commands .ci/run runs after the test suite and before the docs, each on the
    whole tree, in the order they appear (one may run in the background while the others do).
    """
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    after_tests = lines[next(i for i, line in enumerate(lines) if "pytest" in line) + 1 :]
    checks = []
    for line in (line.strip() for line in after_tests):
        if line.startswith("pip install") or ("docs" in line and not line.startswith("#")):
            break  # the docs' own install or build: what follows builds the site
        shell_plumbing = re.match(r"^(#|wait\b|trap\b|\w+=)", line)
        if line and not shell_plumbing:
            checks.append(line.removesuffix(" &").removesuffix(" ."))
    return checks


def hook_commands() -> list[str]:
    """The hooks' commands, as CI spells them: the venv's tools, on the files given."""
    config = (REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    return [
        entry.removeprefix(".venv/bin/").replace(" --force-exclude", "")
        for entry in re.findall(r"^\s+entry: (.+)$", config, re.MULTILINE)
    ]


def test_the_hooks_run_what_ci_checks() -> None:
    assert sorted(ci_checks()) == sorted(
        ["ruff check", "ruff format --check", "mypy", "lint-imports"]
    )
    assert sorted(hook_commands()) == sorted(ci_checks())
