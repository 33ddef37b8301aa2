"""Shell completion, as the CLI reference tells to install it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from poller.cli import main

CLI_REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "cli.md"


def complete(**env: str) -> str:
    result = CliRunner().invoke(main, [], prog_name="siro-poller", env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_docs_name_a_completion_script_for_each_shell_that_click_writes(shell: str) -> None:
    assert f"_SIRO_POLLER_COMPLETE={shell}_source siro-poller" in CLI_REFERENCE.read_text()
    script = complete(_SIRO_POLLER_COMPLETE=f"{shell}_source")
    assert "_SIRO_POLLER_COMPLETE" in script


def test_commands_and_subcommands_complete() -> None:
    words = {"COMP_WORDS": "siro-poller ca", "COMP_CWORD": "1"}
    assert complete(_SIRO_POLLER_COMPLETE="bash_complete", **words) == "plain,calls\n"
    words = {"COMP_WORDS": "siro-poller calls re", "COMP_CWORD": "2"}
    assert complete(_SIRO_POLLER_COMPLETE="bash_complete", **words) == (
        "plain,replay\nplain,retry\n"
    )
