"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from poller.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(pip install '\.\[test\]'.*)\n```", readme)
    assert len(commands) == 1, "the README must show one install-and-test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[0] in ci.splitlines()
    assert "POLLER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test" in ci


def test_every_toml_example_in_the_readme_is_a_valid_config() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert blocks
    for block in blocks:
        Settings(**tomllib.loads(block))
