"""The pre-commit hooks are the checks CI runs beside the tests: a commit they pass, CI's lint
and type checks pass too."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ci_checks() -> list[str]:
    """The check commands .ci/run runs on the whole tree (beside the tests, in a venv of their
    own), in the order they appear: its ``checks`` steps but the venv's set-up and the
    documentation's builds."""
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    start = lines.index("checks() (")
    end = lines.index(")", start)
    checks = []
    for line in (line.strip() for line in lines[start + 1 : end]):
        set_up = re.match(r"^(#|set\b|\.|python3? -m|sphinx-build\b)", line)
        if line and not set_up:
            checks.append(line.removesuffix(" ."))
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
