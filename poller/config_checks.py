"""What a config that loads can still get wrong, as findings any command can show.

Loading (:func:`poller.config.load_settings`) refuses values that are invalid. These checks
look further: a value still the example's placeholder, a ``SIRO_POLLER_*`` variable that names
no setting and so is ignored, secrets in a file that other users can read. The module prints
nothing and knows no command: `config check` prints the findings, `run` and `work` log them at
start, and a doctor command can show them beside its own checks.

API::

    config_findings(settings, *, config_path, environ) -> list[ConfigFinding]
    placeholder_findings(settings) -> list[ConfigFinding]   # the placeholders alone
    is_placeholder(text) -> bool

- ``settings``: the loaded :class:`~poller.config.Settings`;
- ``config_path``: the TOML file they were read from, or None when there is none;
- ``environ``: the process environment (``os.environ``); its ``SIRO_POLLER_*`` variables and
  ``CREDENTIALS_DIRECTORY`` are read.

Each :class:`ConfigFinding` has:

- ``level``: ``"error"`` when the daemon cannot work as configured (`config check` exits 2 and
  `run` refuses to start), ``"warning"`` when it works but something is risky or probably not
  what was meant;
- ``key``: what the finding is about: a dotted config key (``siro.token_user_id``), an
  environment variable (``SIRO_POLLER_WROKER__CONCURRENCY``) or a file's path;
- ``message``: what is wrong, one line, never a secret;
- ``fix``: what to do about it, one line;

and :meth:`ConfigFinding.line`, the whole finding as one line: ``"<key>: <message>; <fix>"``.
"""

from __future__ import annotations

import re
import shlex
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, SecretStr

from poller.config import (
    CONFIG_PATH_ENV,
    CREDENTIALS_DIR_ENV,
    ENV_PREFIX,
    ConfigError,
    Settings,
    close_key,
    credential_files,
    env_variable_for,
    known_keys,
    provider_entry_env_prefix,
    provider_secret_paths,
    read_toml,
    secret_paths,
)
from poller.domain.urls import UnsafeUrl, url_target

FindingLevel = Literal["error", "warning"]


@dataclass(frozen=True)
class ConfigFinding:
    """One thing wrong with a config that loads; see the module's docstring."""

    level: FindingLevel
    key: str
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.key}: {self.message}; {self.fix}"


def config_findings(
    settings: Settings, *, config_path: Path | None, environ: Mapping[str, str]
) -> list[ConfigFinding]:
    """Every finding about ``settings``, errors and warnings, in a stable order."""
    findings = list(_placeholders(settings))
    findings += _unknown_variables(settings, environ)
    if config_path is not None:
        findings += _readable_config_file(config_path)
    directory = environ.get(CREDENTIALS_DIR_ENV)
    if directory:
        findings += _readable_credential_files(settings, Path(directory))
    return findings


# --- Placeholders ---------------------------------------------------------------------------

# The values config.example.toml holds until someone replaces them: "...", "RKnw...Eu73",
# "replace-with-...", "your-api-id", "set SIRO_POLLER_...", and the like ("<client-id>"). Its
# "ACxxxx..." ids are refused by their own patterns when the settings load.
_PLACEHOLDER_TEXT = re.compile(
    r"^(.*\.\.\..*|.*….*|<[^<>]*>|(replace|your)[-_ ].*|set SIRO_POLLER_.*)$", re.IGNORECASE
)
# Names reserved for examples (RFC 2606): no real phone system or storage answers there.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_TOP_LEVEL = ("example", "invalid")


def placeholder_findings(settings: Settings) -> list[ConfigFinding]:
    """The values still the example's placeholders or on an example host, each an error: for a
    command that needs only some keys to be real (`siro create-app` runs before the client id
    exists) and picks those."""
    return list(_placeholders(settings))


def is_placeholder(text: str) -> bool:
    """Whether a value given on the command line is one of the example's placeholders."""
    return _PLACEHOLDER_TEXT.match(text.strip()) is not None


def _placeholders(settings: Settings) -> Iterator[ConfigFinding]:
    values: list[_Text] = []
    for name in type(settings).model_fields:
        if name not in ("provider", "providers"):
            values += _texts(getattr(settings, name), name, name)
    for entry in settings.configured_providers:
        prefix = f"providers.{entry.name}" if settings.providers else "provider"
        values += _texts(entry, prefix, prefix)
    for key, setting, text, secret in values:
        where = env_variable_for(tuple(setting.split(".")))
        if secret:
            where += f" or the credential file {setting}"
        if is_placeholder(text):
            shown = "" if secret else f" {text!r}"
            yield ConfigFinding(
                "error",
                key,
                f"still the example's placeholder{shown}",
                f"set your own value in the config file or in {where}",
            )
        elif (host := _example_host(key, text)) is not None:
            yield ConfigFinding(
                "error",
                key,
                f"still an example host, {host!r}: a name reserved for examples, where no "
                "real service answers",
                f"set your own in the config file or in {where}",
            )


# (dotted key, the setting that holds it, the text, whether it is a secret); the key of an
# entry of a table like siro.rep_map.extension names the entry ("siro.rep_map.extension.204").
_Text = tuple[str, str, str, bool]


def _texts(value: object, key: str, setting: str) -> list[_Text]:
    """Each text in a setting and its sub-tables."""
    if isinstance(value, SecretStr):
        return [(key, setting, value.get_secret_value(), True)]
    if isinstance(value, str):
        return [(key, setting, value, False)]
    if isinstance(value, BaseModel):
        return [
            found
            for name in type(value).model_fields
            for found in _texts(getattr(value, name), f"{key}.{name}", f"{setting}.{name}")
        ]
    if isinstance(value, list | tuple):
        return [found for item in value for found in _texts(item, key, setting)]
    if isinstance(value, dict):
        return [
            found
            for name, item in value.items()
            for found in _texts(item, f"{key}.{name}", setting)
        ]
    return []


def _example_host(key: str, text: str) -> str | None:
    if "://" in text:
        try:
            host = url_target(text).host
        except UnsafeUrl:
            return None
    elif key.endswith("hosts"):  # download_hosts, token_hosts...: "host[:port]" or "*.host"
        host = text.removeprefix("*.").rsplit(":", 1)[0]
    else:
        return None
    host = host.lower().rstrip(".")
    reserved = any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS)
    return host if reserved or host.rsplit(".", 1)[-1] in _EXAMPLE_TOP_LEVEL else None


# --- Environment variables ------------------------------------------------------------------


def _unknown_variables(settings: Settings, environ: Mapping[str, str]) -> list[ConfigFinding]:
    findings = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_ENV:
            continue
        problem = _unknown_setting(settings, name[len(ENV_PREFIX) :].lower().split("__"))
        if problem is not None:
            message, fix = problem
            findings.append(
                ConfigFinding(
                    "warning",
                    variable,
                    f"{message}, so siro-poller ignores this variable",
                    f"{fix} (or unset it, if it is meant for something else)",
                )
            )
    return findings


def _unknown_setting(settings: Settings, parts: list[str]) -> tuple[str, str] | None:
    """Why ``SIRO_POLLER_<parts joined by __>`` sets nothing and what to do, naming the
    variable probably meant; None when it sets a setting."""
    prefix = ENV_PREFIX
    loc: list[str] = []  # as known_keys takes it: a provider table's kind after it
    table: list[str] = []  # as the config names it
    if parts[0] == "providers":
        if len(parts) == 1:
            return "the [[providers]] tables are read from the config file only", (
                f"set one key of one table per variable: {ENV_PREFIX}PROVIDERS__<NAME>__<KEY>"
            )
        entries = {_entry_word(entry.name): entry for entry in settings.providers}
        entry = entries.get(parts[1].upper())
        if entry is None:
            rest = "__".join(parts[2:]).upper()
            if not entries:
                fix = f"the config has one [provider] table: {ENV_PREFIX}PROVIDER__{rest}"
            elif (word := close_key(parts[1].upper(), entries)) is not None:
                fix = f"did you mean {provider_entry_env_prefix(entries[word].name)}{rest}?"
            else:
                names = ", ".join(sorted(entry.name for entry in settings.providers))
                fix = f"the [[providers]] tables are named {names}"
            return f"no [[providers]] table is named {parts[1]!r}", fix
        prefix = provider_entry_env_prefix(entry.name)
        loc, table, parts = ["providers", entry.kind], ["providers", entry.name], parts[2:]
    for index, part in enumerate(parts):
        keys = known_keys(loc)
        if keys is None:
            return None  # below a value or a free-form table: the rest is data
        if part not in keys:
            named = close_key(part, keys)
            fix = "config.example.toml lists the keys"
            if named is not None:
                meant = prefix + "__".join([*parts[:index], named, *parts[index + 1 :]]).upper()
                fix = f"did you mean {meant}?"
            if not table:
                return f"the config has no section or key {part!r}", fix
            return f"[{'.'.join(table)}] has no key {part!r}", fix
        loc.append(part)
        table.append(part)
        if loc == ["provider"]:
            loc.append(settings.provider.kind)
    return None


def _entry_word(name: str) -> str:
    """A [[providers]] table's name as its variables spell it: RC_EAST for rc-east."""
    return provider_entry_env_prefix(name).removeprefix(f"{ENV_PREFIX}PROVIDERS__")[:-2]


# --- File permissions -----------------------------------------------------------------------

_READ_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


def _readable_config_file(path: Path) -> list[ConfigFinding]:
    readable = _readable_by_others(path)
    if readable is None:
        return []
    try:
        data = read_toml(path)
    except ConfigError:
        return []
    secrets = _secrets_in(data)
    if not secrets:
        return []
    return [
        ConfigFinding(
            "warning",
            str(path),
            f"holds secrets ({', '.join(secrets)}) and {readable}",
            f"chmod 600 {shlex.quote(str(path))}, or move the secrets to credential files "
            "(LoadCredential= in the systemd unit) or the environment",
        )
    ]


def _readable_credential_files(settings: Settings, directory: Path) -> list[ConfigFinding]:
    findings = []
    for key, path in credential_files(settings, directory):
        readable = _readable_by_others(path)
        if readable is not None:
            findings.append(
                ConfigFinding(
                    "warning",
                    str(path),
                    f"holds the secret {key} and {readable}",
                    f"chmod 600 {shlex.quote(str(path))}",
                )
            )
    return findings


def _readable_by_others(path: Path) -> str | None:
    """How a file can be read beyond its owner ("can be read by others (mode 0644)"), or None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    who = [name for bit, name in ((stat.S_IRGRP, "group"), (stat.S_IROTH, "others")) if mode & bit]
    if not who:
        return None
    return f"can be read by {' and '.join(who)} (mode {mode:04o})"


def _secrets_in(data: Mapping[str, Any]) -> list[str]:
    """The dotted keys of the secrets a config file's own text holds."""
    found = [".".join(path) for path in secret_paths(Settings) if _given(_at(data, path))]
    entries = data.get("providers")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping):
            found += [
                f"providers.{entry.get('name')}.{'.'.join(path)}"
                for path in sorted(provider_secret_paths())
                if _given(_at(entry, path))
            ]
    url = _at(data, ("database", "url"))
    if isinstance(url, str) and _url_has_password(url):
        found.append("database.url")
    return found


def _at(data: Mapping[str, Any], path: tuple[str, ...]) -> object:
    node: object = data
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _given(value: object) -> bool:
    return value is not None and value != ""


def _url_has_password(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.password) or "password" in parse_qs(parts.query)
    except ValueError:
        return False
