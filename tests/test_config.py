"""Configuration: file < environment < credentials directory, clear errors, masked secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from poller.cli import main
from poller.config import ConfigError, Settings, load_settings, requirements_for_daemon
from poller.config_schema import expected_files

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
SECRETS = {
    "SIRO_POLLER_SIRO__API_TOKEN": "org-token-0123456789",
    "SIRO_POLLER_SIRO__CLIENT_SECRET": "client-secret-abcdef",
    "SIRO_POLLER_PROVIDER__TOKEN": "provider-token-xyz987",
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file_and_use_sqlite_in_the_state_directory(tmp_path: Path) -> None:
    settings = load_settings(None)
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'siro-poller.sqlite3'}"
    assert settings.siro.api_base_url == "https://api.siro.ai"
    assert settings.siro.external_api_base_url == "https://functions.siro.ai/api-externalApi"
    assert settings.spool_dir == tmp_path / "state" / "spool"


def test_file_then_environment_then_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "c.toml",
        '[siro]\napi_token = "from-file"\nclient_id = "file-client"\n'
        "[poll]\ninterval_seconds = 60\nlookback_minutes = 5\n",
    )
    monkeypatch.setenv("SIRO_POLLER_SIRO__API_TOKEN", "from-env")
    monkeypatch.setenv("SIRO_POLLER_POLL__INTERVAL_SECONDS", "90")
    settings = load_settings(config)
    assert settings.siro.api_token is not None
    assert settings.siro.api_token.get_secret_value() == "from-env"
    assert settings.poll.interval_seconds == 90  # environment beats the file
    assert settings.poll.lookback_minutes == 5  # the file beats the default
    assert settings.siro.client_id == "file-client"

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    # systemd-creds and editors leave a trailing newline that is never part of the secret.
    write(credentials / "SIRO_POLLER_SIRO__API_TOKEN", "from-credentials\n")
    write(credentials / "siro.client_secret", "secret-by-dotted-name")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings(config)
    assert settings.siro.api_token is not None
    assert settings.siro.api_token.get_secret_value() == "from-credentials"
    assert settings.siro.client_secret is not None
    assert settings.siro.client_secret.get_secret_value() == "secret-by-dotted-name"


def test_config_path_comes_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "c.toml", "[worker]\nconcurrency = 7\n")
    monkeypatch.setenv("SIRO_POLLER_CONFIG", str(config))
    assert load_settings(None).worker.concurrency == 7


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[poll]\ninterval_seconds = -5\n",
            "poll.interval_seconds: Input should be greater than 0",
        ),
        ("[siro]\napi_base_url = 'ftp://x'\n", "siro.api_base_url: must be an http:// or https://"),
        ("[sirro]\nx = 1\n", "sirro: unknown key"),
        ("[worker]\ntitle_template = 'Call'\n", "worker.title_template: must contain"),
        ("[database]\nurl = 'mysql://h/db'\n", "database.url: only sqlite:// and postgresql"),
        (
            "[logging]\nformat = 'xml'\n",
            "logging.format: Input should be 'auto', 'human' or 'json'",
        ),
        ("[poll]\ndirections = ['sideways']\n", "poll.directions.0: Input should be"),
    ],
)
def test_a_bad_value_names_the_key_and_the_problem(
    tmp_path: Path, toml: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "bad.toml", toml))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(expected)


def test_a_bad_secret_value_is_not_echoed_back(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "bad.toml", "[siro]\napi_token = 12345678\n"))
    assert "12345678" not in str(caught.value)


def test_broken_toml_and_missing_files_are_reported_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_settings(write(tmp_path / "broken.toml", "[poll\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml")


def test_the_daemon_requirements_name_where_to_put_each_secret() -> None:
    problems = requirements_for_daemon(Settings())
    assert any(
        p.startswith("siro.api_token: required")
        and "SIRO_POLLER_SIRO__API_TOKEN" in p
        and "credential file siro.api_token" in p
        for p in problems
    )
    assert any(p.startswith("provider.base_url: required") for p in problems)


def test_database_password_is_merged_into_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRO_POLLER_DATABASE__URL", "postgresql+psycopg://poller@db:5432/siro")
    monkeypatch.setenv("SIRO_POLLER_DATABASE__PASSWORD", "s3cr3t-pw")
    assert load_settings(None).database_url == "postgresql+psycopg://poller:s3cr3t-pw@db:5432/siro"


def _documented_keys(text: str) -> set[str]:
    keys, section = set(), ""
    for line in text.splitlines():
        # A commented-out table ("# [provider]" in a provider kind's example block) counts too.
        if match := re.match(r"^(?:# )?\[\[?([a-z_.]+)\]\]?$", line):
            section = match.group(1) + "."
        elif match := re.match(r"^#? ?([a-z_0-9]+) = ", line):
            keys.add(section + match.group(1))
    return keys


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        # A table whose model depends on its kind ([provider]): every kind's keys count.
        models = [
            candidate
            for candidate in _inner_types(field.annotation)
            if isinstance(candidate, type) and issubclass(candidate, BaseModel)
        ]
        if models and get_origin(field.annotation) is not list:
            for table in models:
                keys |= _model_keys(table, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _inner_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in get_args(annotation):
        yield from _inner_types(argument)


def test_the_examples_document_every_key_of_every_kind_with_a_comment() -> None:
    texts = [(EXAMPLE.parent / path).read_text(encoding="utf-8") for path in expected_files()]
    assert _model_keys(Settings) <= set().union(*map(_documented_keys, texts))
    key_line = re.compile(r"^(# )?[a-z][a-z0-9_]* = ")
    for text in texts:
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if key_line.match(line):
                above = lines[index - 1]
                assert above.startswith("# ") and not key_line.match(above), f"undocumented: {line}"


def test_config_check_on_the_example_passes_with_secrets_and_its_placeholders_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # The example's placeholders (test_config_checks covers their refusal).
    monkeypatch.setenv("SIRO_POLLER_SIRO__CLIENT_ID", "client-7f3a")
    monkeypatch.setenv("SIRO_POLLER_SIRO__TOKEN_USER_ID", "user-1")
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__BASE_URL", "https://voip.acme.io/api")
    result = CliRunner().invoke(main, ["--config", str(EXAMPLE), "config", "check"])
    assert result.exit_code == 0, result.output
    for value in SECRETS.values():
        assert value not in result.output
    assert 'api_token = "********"' in result.output
    as_json = CliRunner().invoke(main, ["--config", str(EXAMPLE), "config", "check", "--json"])
    document = json.loads(as_json.stdout)
    assert document["siro"]["api_token"] == "********"
    assert document["poll"]["interval_seconds"] == 300


def test_config_check_without_secrets_exits_2_naming_what_is_missing() -> None:
    result = CliRunner().invoke(main, ["--config", str(EXAMPLE), "config", "check"])
    assert result.exit_code == 2
    assert "siro.api_token: required" in result.stderr
    assert "Traceback" not in result.output


def test_config_check_on_a_bad_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[worker]\nconcurrency = 'many'\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "siro-poller: config error: worker.concurrency: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    ]


def test_config_check_masks_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRO_POLLER_DATABASE__URL", "postgresql+psycopg://u:inline-pw@db/x")
    result = CliRunner().invoke(main, ["config", "check", "--json"])
    assert "inline-pw" not in result.output
    assert json.loads(result.stdout)["database"]["url"] == "postgresql+psycopg://u:[REDACTED]@db/x"


def test_a_database_url_with_a_password_is_never_echoed(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[database]\nurl = 'mysql://u:hunter2@h/db'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(bad)
    assert "hunter2" not in str(caught.value)
