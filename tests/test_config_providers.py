"""Provider settings per kind, and several providers in one daemon ([[providers]])."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from poller.adapters.providers.generic import GenericSettings
from poller.cli import main
from poller.config import ConfigError, load_settings, requirements_for_daemon
from poller.wiring import poll_params_from_settings

TWO_PROVIDERS = """
[[providers]]
name = "rc-east"
base_url = "https://voip-east.acme.io"
auth = "bearer"

[[providers]]
kind = "generic"
name = "west"
base_url = "https://voip-west.acme.io"
auth = "basic"
username = "ops"
[providers.fields]
started_at = "start"
"""
SIRO = {
    "SIRO_POLLER_SIRO__API_TOKEN": "org-token-0123456789",
    "SIRO_POLLER_SIRO__CLIENT_ID": "client",
    "SIRO_POLLER_SIRO__CLIENT_SECRET": "client-secret-abcdef",
    "SIRO_POLLER_SIRO__TOKEN_USER_ID": "user-1",
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_one_provider_table_without_a_kind_is_the_generic_adapter(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "c.toml", '[provider]\nbase_url = "https://x.io"\n'))
    assert isinstance(settings.provider, GenericSettings)
    assert [p.name for p in settings.configured_providers] == ["generic"]
    assert settings.provider.config_key("token") == "provider.token"


def test_a_provider_table_without_a_name_is_named_after_its_kind(tmp_path: Path) -> None:
    one = load_settings(write(tmp_path / "one.toml", '[provider]\nkind = "zoom"\n'))
    assert one.provider_key == "zoom"
    several = load_settings(
        write(
            tmp_path / "several.toml",
            '[[providers]]\nkind = "ringcentral"\n\n'
            '[[providers]]\nkind = "twilio"\nname = "twilio-uk"\n\n'
            '[[providers]]\nkind = "aircall"\n',
        )
    )
    assert [p.name for p in several.configured_providers] == ["ringcentral", "twilio-uk", "aircall"]
    with pytest.raises(ConfigError, match="the name 'dialpad' is used more than once"):
        load_settings(write(tmp_path / "twice.toml", '[[providers]]\nkind = "dialpad"\n' * 2))


def test_several_providers_each_with_its_name_kind_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "providers.west.password", "pw-west\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN", "tok-east")
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__WEST__LISTING__PATH", "/v2/calls")

    settings = load_settings(config)
    east, west = settings.configured_providers
    assert isinstance(east, GenericSettings) and isinstance(west, GenericSettings)
    assert (east.name, west.name) == ("rc-east", "west")
    assert east.token is not None and east.token.get_secret_value() == "tok-east"
    assert west.password is not None and west.password.get_secret_value() == "pw-west"
    assert west.listing.path == "/v2/calls"
    assert west.fields.started_at == "start"
    assert east.fields.started_at == "started_at"
    assert west.config_key("password") == "providers.west.password"
    # Each provider polls under its own name, so each has its own cursor.
    assert poll_params_from_settings(settings, "west").provider_key == "west"


def test_the_daemon_names_each_providers_missing_secret_and_where_to_put_it(
    tmp_path: Path,
) -> None:
    settings = load_settings(write(tmp_path / "c.toml", TWO_PROVIDERS))
    problems = [p for p in requirements_for_daemon(settings) if p.startswith("providers.")]
    assert problems == [
        "providers.rc-east.token: required for providers.rc-east.auth = 'bearer'; set "
        "SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN or the credential file providers.rc-east.token",
        "providers.west.password: required for providers.west.auth = 'basic'; set "
        "SIRO_POLLER_PROVIDERS__WEST__PASSWORD or the credential file providers.west.password",
    ]


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ("oauth_client_credentials", ["token_url", "client_id", "client_secret"]),
        ("oauth_jwt_bearer", ["token_url", "client_id", "client_secret", "jwt"]),
        ("api_key", ["api_key"]),
    ],
)
def test_config_check_names_the_keys_the_chosen_auth_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: str, missing: list[str]
) -> None:
    config = write(tmp_path / "c.toml", f'[provider]\nbase_url = "https://x.io"\nauth = "{auth}"\n')
    for name, value in SIRO.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2
    named = [line for line in result.stderr.splitlines() if "config error: provider." in line]
    assert [line.split("config error: ")[1].split(":")[0] for line in named] == [
        f"provider.{key}" for key in missing
    ]


def test_secrets_of_every_provider_are_masked_in_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "c.toml", TWO_PROVIDERS)
    for name, value in SIRO.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN", "tok-east-secret")
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__WEST__PASSWORD", "pw-west-secret")
    result = CliRunner().invoke(main, ["--config", str(config), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "tok-east-secret" not in result.output and "pw-west-secret" not in result.output
    assert result.stdout.count("[[providers]]") == 2
    assert "\n[provider]\n" not in result.stdout


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            TWO_PROVIDERS.replace('name = "west"', 'name = "rc-east"'),
            "providers: the name 'rc-east' is used more than once",
        ),
        (
            '[provider]\nbase_url = "https://x.io"\n' + TWO_PROVIDERS,
            "use either one [provider] table or [[providers]] tables, not both",
        ),
        (
            TWO_PROVIDERS + "[providers.listing]\nmax_window_hours = -1\n",
            "providers.west.listing.max_window_hours: Input should be greater than 0",
        ),
        ('[provider]\nkind = "avaya"\n', "provider"),
        ('[provider]\nbase_url = "https://user:pw@x.io"\n', "provider.base_url:"),
    ],
)
def test_bad_provider_tables_are_named_as_the_file_names_them(
    tmp_path: Path, toml: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path / "c.toml", toml))
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems
    assert "pw" not in str(raised.value).replace("pw-", "")


def test_an_unknown_kind_lists_the_kinds_there_are(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path / "c.toml", '[provider]\nkind = "avaya"\n'))
    [problem] = raised.value.problems
    assert problem.startswith("provider.kind:") and "generic" in problem and "avaya" in problem


def test_a_key_of_another_kind_is_named_as_such_and_a_misspelt_one_gets_a_suggestion(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nkind = "zoom"\nlisting = { path = "/x" }\nacount_id = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.problems == [
        'provider.listing: applies only to kind = "generic"',
        "provider.acount_id: unknown key (check the spelling against config.example.toml); "
        "did you mean 'provider.account_id'?",
    ]


def test_a_providers_table_names_every_kind_a_key_belongs_to(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[providers]]\nkind = "dialpad"\nname = "dp"\njwt = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.problems == [
        'providers.dp.jwt: applies only to kind = "generic" or kind = "ringcentral"'
    ]
