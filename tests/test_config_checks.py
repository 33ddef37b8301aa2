"""What a config that loads can still get wrong: placeholders, ignored environment variables,
readable secrets, passwords inside URLs; as `config check` shows them and as findings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from poller.adapters.providers.registry import settings_models
from poller.cli import main
from poller.config import load_settings
from poller.config_checks import ConfigFinding, config_findings

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
READY = {
    "SIRO_POLLER_SIRO__API_TOKEN": "org-token-0123456789",
    "SIRO_POLLER_SIRO__CLIENT_ID": "client-7f3a",
    "SIRO_POLLER_SIRO__CLIENT_SECRET": "client-secret-abcdef",
    "SIRO_POLLER_SIRO__TOKEN_USER_ID": "user-1",
    "SIRO_POLLER_PROVIDER__BASE_URL": "https://voip.acme.io/api",
    "SIRO_POLLER_PROVIDER__AUTH": "bearer",
    "SIRO_POLLER_PROVIDER__TOKEN": "provider-token-xyz987",
}


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def check(config: Path | None = None, *, as_json: bool = False) -> Result:
    args = ["--config", str(config)] if config else []
    return CliRunner().invoke(main, [*args, "config", "check", *(["--json"] if as_json else [])])


def findings(config: Path | None = None) -> list[ConfigFinding]:
    return config_findings(load_settings(config), config_path=config, environ=os.environ)


def ready(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    for name, value in {**READY, **overrides}.items():
        monkeypatch.setenv(name, value)


# --- Passwords inside URLs ------------------------------------------------------------------


def _url_settings() -> list[tuple[str, str]]:
    """Every URL-valued key: Siro's, and each provider kind's (as a [provider] table)."""
    keys = [("siro", "api_base_url"), ("siro", "external_api_base_url")]
    for model in settings_models():
        kind = model.model_fields["kind"].default
        keys += [(f"provider:{kind}", name) for name in model.model_fields if name.endswith("url")]
    return keys


@pytest.mark.parametrize(("table", "key"), _url_settings())
@pytest.mark.parametrize("as_json", [False, True])
def test_a_password_inside_any_url_setting_is_never_printed(
    tmp_path: Path, table: str, key: str, as_json: bool
) -> None:
    section, _, kind = table.partition(":")
    kind_line = f'kind = "{kind}"\n' if kind else ""
    url = "https://ops:pw-in-url-77@host.acme.io/api"
    config = write(tmp_path / "c.toml", f'[{section}]\n{kind_line}{key} = "{url}"\n')
    result = check(config, as_json=as_json)
    assert result.exit_code == 2
    assert "pw-in-url-77" not in result.output
    assert f"{section}.{key}: must not carry a user or password" in result.stderr
    assert "https://ops:[REDACTED]@host.acme.io/api" in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_the_database_url_is_printed_without_its_password(
    monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    ready(
        monkeypatch,
        SIRO_POLLER_DATABASE__URL="postgresql+psycopg://u:inline-pw-1@db/x?password=query-pw-2",
    )
    result = check(as_json=as_json)
    assert result.exit_code == 0, result.output
    assert "inline-pw-1" not in result.output and "query-pw-2" not in result.output
    expected = "postgresql+psycopg://u:[REDACTED]@db/x?[REDACTED]"
    if as_json:
        assert json.loads(result.stdout)["database"]["url"] == expected
    else:
        assert f'url = "{expected}"' in result.stdout


@pytest.mark.parametrize(
    ("toml", "leaked", "shown"),
    [
        # A refused database URL names the problem, and shows the URL without its password.
        (
            "[database]\nurl = 'mysql://u:hunter2@h/db'\n",
            "hunter2",
            "database.url: only sqlite:// and postgresql+psycopg:// URLs are supported "
            "(got 'mysql://u:[REDACTED]@h/db')",
        ),
        # A query string that carries a token.
        (
            "[provider]\nbase_url = 'https://voip.acme.io/api?token=tok-in-query-5'\n",
            "tok-in-query-5",
            "provider.base_url: must not carry a query string or fragment "
            "(got 'https://voip.acme.io/api?[REDACTED]')",
        ),
        # No scheme, so no telling a user from a password: not echoed at all.
        (
            "[provider]\nbase_url = 'ops:pw-no-scheme-9@voip.acme.io'\n",
            "pw-no-scheme-9",
            "provider.base_url: must be an http:// or https:// URL with a host",
        ),
        # A [[providers]] table, by its name.
        (
            "[[providers]]\nname = 'east'\nbase_url = 'https://ops:pw-east-3@e.acme.io'\n",
            "pw-east-3",
            "providers.east.base_url: must not carry a user or password; use the credential "
            "keys instead (got 'https://ops:[REDACTED]@e.acme.io')",
        ),
    ],
)
def test_validation_errors_show_urls_masked(
    tmp_path: Path, toml: str, leaked: str, shown: str
) -> None:
    result = check(write(tmp_path / "c.toml", toml))
    assert result.exit_code == 2
    assert leaked not in result.output
    assert f"siro-poller: config error: {shown}\n" in result.stderr


# --- Placeholders ---------------------------------------------------------------------------


def test_the_untouched_example_is_refused_naming_each_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Secrets given, as the example says to; its other values left as they are.
    for name in ("SIRO_POLLER_SIRO__API_TOKEN", "SIRO_POLLER_SIRO__CLIENT_SECRET"):
        monkeypatch.setenv(name, READY[name])
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__TOKEN", READY["SIRO_POLLER_PROVIDER__TOKEN"])
    result = check(EXAMPLE)
    assert result.exit_code == 2
    assert "# config OK" not in result.output
    errors = [line for line in result.stderr.splitlines() if "config error:" in line]
    assert errors == [
        "siro-poller: config error: siro.client_id: still the example's placeholder "
        "'replace-with-your-client-id'; set your own value in the config file or in "
        "SIRO_POLLER_SIRO__CLIENT_ID",
        "siro-poller: config error: siro.token_user_id: still the example's placeholder "
        "'replace-with-a-siro-user-id'; set your own value in the config file or in "
        "SIRO_POLLER_SIRO__TOKEN_USER_ID",
        "siro-poller: config error: provider.base_url: still an example host, "
        "'voip.example.com': a name reserved for examples, where no real service answers; "
        "set your own in the config file or in SIRO_POLLER_PROVIDER__BASE_URL",
    ]


def test_the_example_passes_once_its_placeholders_are_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ready(monkeypatch)
    result = check(EXAMPLE)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "# config OK"


@pytest.mark.parametrize(
    ("toml", "key", "message"),
    [
        ('[siro]\norganization_id = "..."\n', "siro.organization_id", "placeholder '...'"),
        (
            '[siro.rep_map]\nextension = { "204" = "RKnw...Eu73" }\n',
            "siro.rep_map.extension.204",
            "placeholder 'RKnw...Eu73'",
        ),
        (
            '[provider]\nkind = "aircall"\napi_id = "your-api-id"\n',
            "provider.api_id",
            "placeholder 'your-api-id'",
        ),
        (
            '[provider]\nkind = "twilio"\nauth_token = "set SIRO_POLLER_PROVIDER__AUTH_TOKEN or '
            'the credential file provider.auth_token"\n',
            "provider.auth_token",
            # A secret's value is never shown, placeholder or not.
            "still the example's placeholder",
        ),
        (
            '[provider]\nbase_url = "https://voip.acme.io"\ndownload_hosts = ["*.example.com"]\n',
            "provider.download_hosts",
            "example host, 'example.com'",
        ),
        (
            '[[providers]]\nname = "east"\nbase_url = "https://east.example.org/v1"\n',
            "providers.east.base_url",
            "example host, 'east.example.org'",
        ),
    ],
)
def test_each_kind_of_placeholder_is_an_error_naming_its_key(
    tmp_path: Path, toml: str, key: str, message: str
) -> None:
    [finding] = findings(write(tmp_path / "c.toml", toml))
    assert (finding.level, finding.key) == ("error", key)
    assert message in finding.message
    if key == "siro.rep_map.extension.204":
        assert finding.fix.endswith("SIRO_POLLER_SIRO__REP_MAP__EXTENSION")
    if key == "provider.auth_token":
        assert finding.message == "still the example's placeholder"
        assert "the credential file provider.auth_token" in finding.fix


def test_real_values_are_no_placeholders(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        '[siro]\nclient_id = "cl_7xXq2"\ntoken_user_id = "RKnwEu73"\n'
        '[provider]\nbase_url = "https://voip.acme.io/api"\ndownload_hosts = ["*.acmecdn.net"]\n',
    )
    assert findings(config) == []


# --- Environment variables ------------------------------------------------------------------


def test_a_misspelled_section_in_a_variable_is_a_warning_with_the_name_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ready(monkeypatch, SIRO_POLLER_WROKER__CONCURRENCY="8")
    result = check()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "siro-poller: warning: SIRO_POLLER_WROKER__CONCURRENCY: the config has no section or "
        "key 'wroker', so siro-poller ignores this variable; did you mean "
        "SIRO_POLLER_WORKER__CONCURRENCY? (or unset it, if it is meant for something else)",
        "# config OK (1 warning)",
    ]


def test_a_misspelled_key_in_a_variable_is_an_error_with_the_name_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ready(monkeypatch, SIRO_POLLER_WORKER__CONCURENCY="8")
    result = check()
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "siro-poller: config error: worker.concurency: unknown key, set by the environment "
        "variable SIRO_POLLER_WORKER__CONCURENCY; did you mean SIRO_POLLER_WORKER__CONCURRENCY?"
    ]


def test_a_misspelled_key_in_the_file_names_the_key_meant(tmp_path: Path) -> None:
    result = check(write(tmp_path / "c.toml", "[provider.listing]\npth = '/v2/calls'\n"))
    assert result.exit_code == 2
    assert (
        "provider.listing.pth: unknown key (check the spelling against config.example.toml); "
        "did you mean 'provider.listing.path'?"
    ) in result.stderr


def test_variables_for_providers_tables_name_the_table_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "c.toml",
        '[[providers]]\nname = "rc-east"\nbase_url = "https://east.acme.io"\n'
        '[[providers]]\nname = "west"\nbase_url = "https://west.acme.io"\n',
    )
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__RC_EATS__TOKEN", "t")  # the table's name
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS", "[]")  # the whole list: never read
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__RC_EAST__LISTING__PATH", "/v1")  # fine
    found = {f.key: f for f in findings(config)}
    assert set(found) == {"SIRO_POLLER_PROVIDERS__RC_EATS__TOKEN", "SIRO_POLLER_PROVIDERS"}
    assert all(f.level == "warning" for f in found.values())
    east = found["SIRO_POLLER_PROVIDERS__RC_EATS__TOKEN"]
    assert east.message.startswith("no [[providers]] table is named 'rc_eats'")
    assert east.fix.startswith("did you mean SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN?")
    whole = found["SIRO_POLLER_PROVIDERS"]
    assert whole.fix.startswith("set one key of one table per variable")

    # A misspelled key inside a table is refused, as in the file, naming the variable meant.
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__WEST__LISTNG__PATH", "/v2")
    result = check(config)
    assert result.exit_code == 2
    assert (
        "providers.west.listng: unknown key, set by the environment variable "
        "SIRO_POLLER_PROVIDERS__WEST__LISTNG__PATH; did you mean "
        "SIRO_POLLER_PROVIDERS__WEST__LISTING__PATH?"
    ) in result.stderr


def test_variables_that_set_a_setting_are_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIRO_POLLER_CONFIG", "")  # the config file's path, not a setting
    monkeypatch.setenv("siro_poller_poll__interval_seconds", "60")  # any case, as read
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__LISTING__PARAMS", '{"a": "1"}')
    monkeypatch.setenv("SIRO_POLLER_SIRO__REP_MAP__EMAIL", '{"a@acme.io": "u-1"}')
    monkeypatch.setenv("SIRO_POLLER_DATABASE", "{}")  # a whole table as JSON
    assert findings() == []


# --- Files others can read ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "secrets"),
    [
        ('[siro]\napi_token = "org-token-in-file"\n', "siro.api_token"),
        ("[database]\nurl = 'postgresql+psycopg://u:pw-in-file@db/x'\n", "database.url"),
        (
            '[[providers]]\nname = "east"\nbase_url = "https://e.acme.io"\ntoken = "tok-file"\n',
            "providers.east.token",
        ),
        (
            '[webhooks]\nlisten = "127.0.0.1:8788"\n[[providers]]\nname = "east"\n'
            'base_url = "https://e.acme.io"\nauth = "none"\n'
            '[providers.webhook]\nenabled = true\nsecret = "hook-file"\n',
            "providers.east.webhook.secret",
        ),
    ],
)
def test_a_config_file_others_can_read_warns_when_it_holds_secrets(
    tmp_path: Path, toml: str, secrets: str
) -> None:
    config = write(tmp_path / "c.toml", toml, mode=0o644)
    [finding] = findings(config)
    assert finding.level == "warning"
    assert finding.key == str(config)
    assert finding.message == (
        f"holds secrets ({secrets}) and can be read by group and others (mode 0644)"
    )
    assert finding.fix.startswith(f"chmod 600 {config}, or move the secrets to credential files")

    config.chmod(0o640)
    [finding] = findings(config)
    assert "can be read by group (mode 0640)" in finding.message
    config.chmod(0o600)
    assert findings(config) == []


def test_a_readable_config_file_without_secrets_is_fine(tmp_path: Path) -> None:
    # The unit file installs the config 0644: it is meant to be readable, and hold no secret.
    config = write(tmp_path / "c.toml", "[poll]\ninterval_seconds = 60\n", mode=0o644)
    assert findings(config) == []


def test_credential_files_others_can_read_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    loose = write(credentials / "siro.api_token", "org-token-from-file\n", mode=0o644)
    write(credentials / "SIRO_POLLER_SIRO__CLIENT_SECRET", "client-secret\n", mode=0o600)
    entry = write(credentials / "providers.east.token", "east-token\n", mode=0o640)
    write(credentials / "unrelated", "not ours\n", mode=0o644)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = write(
        tmp_path / "c.toml", '[[providers]]\nname = "east"\nbase_url = "https://e.acme.io"\n'
    )
    assert [(f.level, f.key, f.message, f.fix) for f in findings(config)] == [
        (
            "warning",
            str(loose),
            "holds the secret siro.api_token and can be read by group and others (mode 0644)",
            f"chmod 600 {loose}",
        ),
        (
            "warning",
            str(entry),
            "holds the secret providers.east.token and can be read by group (mode 0640)",
            f"chmod 600 {entry}",
        ),
    ]


def test_config_check_prints_warnings_and_still_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready(monkeypatch)
    config = write(tmp_path / "c.toml", '[siro]\napi_token = "org-token-in-file"\n', mode=0o604)
    result = check(config)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"siro-poller: warning: {config}: holds secrets (siro.api_token) and can be read by "
        f"others (mode 0604); chmod 600 {config}, or move the secrets to credential files "
        "(LoadCredential= in the systemd unit) or the environment",
        "# config OK (1 warning)",
    ]
    assert "org-token-in-file" not in result.output
