"""The example configs and the reference page, generated from the settings models."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from poller.adapters.providers.registry import KINDS
from poller.cli import main
from poller.config import ConfigError, Settings, load_settings, secret_paths
from poller.config_schema import (
    REGENERATE,
    example_path,
    expected_files,
    reference_markdown,
    render_minimal_config,
)
from poller.config_schema import (
    main as schema_main,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted(expected_files()), ids=str)
def test_the_committed_examples_are_the_generated_ones(path: Path) -> None:
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == expected_files()[path], f"{path} is stale: run `{REGENERATE}`"


def test_every_registered_kind_has_an_example_of_its_own_kind() -> None:
    for kind in KINDS:
        data = tomllib.loads((ROOT / example_path(kind)).read_text(encoding="utf-8"))
        assert data["provider"]["kind"] == kind


def test_the_write_command_regenerates_every_example(tmp_path: Path) -> None:
    assert schema_main(["--write", "--root", str(tmp_path)]) == 0
    for path, text in expected_files().items():
        assert (tmp_path / path).read_text(encoding="utf-8") == text


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_example_gives_a_secret_a_value_and_each_says_where_it_comes_from(kind: str) -> None:
    text = (ROOT / example_path(kind)).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for path in secret_paths(Settings):
        node = data
        for key in path[:-1]:
            node = node.get(key, {})
        assert path[-1] not in node, path
    flat = " ".join(line.removeprefix("# ") for line in text.splitlines())
    assert "set SIRO_POLLER_SIRO__API_TOKEN or the credential file siro.api_token" in flat


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_example_with_its_placeholders_is_a_valid_config_of_its_kind(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twilio's placeholder SID is refused by the SID's own pattern, as config check shows.
    if kind == "twilio":
        monkeypatch.setenv("SIRO_POLLER_PROVIDER__ACCOUNT_SID", "AC" + "0" * 32)
    settings = load_settings(ROOT / example_path(kind))
    assert settings.provider.kind == kind


def test_the_reference_documents_every_key_with_its_facts() -> None:
    text = reference_markdown()
    assert not text.lstrip().startswith("# ")  # headings of level 2 and deeper only
    assert "### `siro.api_token`" in text
    assert "- Secret: yes; never in the file: set SIRO_POLLER_SIRO__API_TOKEN" in text
    assert "#### `provider.listing`" not in text  # a table, shown as its own heading
    assert "`[provider.listing]`" in text
    assert "- Kinds: `generic`, `ringcentral`" in text  # client_secret of... two kinds at least
    assert "- Default: `300`" in text  # poll.interval_seconds
    for kind in KINDS:
        assert f'### `kind = "{kind}"`' in text


def test_config_init_writes_no_secret_and_names_each_one(tmp_path: Path) -> None:
    output = tmp_path / "config.toml"
    result = CliRunner().invoke(
        main,
        [
            "config",
            "init",
            "--provider",
            "ringcentral",
            "--database",
            "postgres",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    for variable in (
        "SIRO_POLLER_SIRO__API_TOKEN",
        "SIRO_POLLER_SIRO__CLIENT_SECRET",
        "SIRO_POLLER_PROVIDER__CLIENT_SECRET",
        "SIRO_POLLER_PROVIDER__JWT",
        "SIRO_POLLER_DATABASE__PASSWORD",
    ):
        assert f"export {variable}=..." in result.output
    data = tomllib.loads(output.read_text(encoding="utf-8"))
    assert data["provider"] == {"kind": "ringcentral", "client_id": "replace-with-your-client-id"}
    assert data["database"]["url"].startswith("postgresql+psycopg://")
    assert "provider.client_id" in result.output  # a placeholder to replace


def test_config_check_on_an_untouched_init_names_the_placeholders(tmp_path: Path) -> None:
    config = render_minimal_config("zoom")
    path = tmp_path / "config.toml"
    path.write_text(config.text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "provider.account_id: still the example's placeholder" in result.stderr
    assert {key.dotted for key in config.secrets} == {
        "siro.api_token",
        "siro.client_secret",
        "provider.client_secret",
    }


def test_a_zoom_table_copied_from_the_generic_example_names_the_generic_keys(
    tmp_path: Path,
) -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace('kind = "generic"', 'kind = "zoom"'), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert 'provider.listing: applies only to kind = "generic"' in raised.value.problems
    assert not [line for line in raised.value.problems if "unknown key" in line]


def test_the_cli_lists_the_registered_kinds() -> None:
    # The CLI keeps its own list so `--help` imports no adapter; it must not drift.
    from poller.cli.config_cmd import PROVIDER_KINDS

    assert sorted(PROVIDER_KINDS) == sorted(KINDS)
