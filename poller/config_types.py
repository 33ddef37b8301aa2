"""Value types shared by every settings model: the core config and each provider kind's own.

They live apart from :mod:`poller.config` so that a provider adapter can declare its settings
model without importing the config module that gathers all of them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from poller.domain.urls import UnsafeUrl, url_target


class ConfigError(Exception):
    """A configuration problem a person can fix; each line names the key and the problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# The json_schema_extra of a key the poller cannot run without and has no default for: every
# example config and `config init` set it (a secret: say where it comes from), with the field's
# first example as the value, a placeholder that `config check` refuses until it is replaced.
MINIMAL: dict[str, Any] = {"minimal": True}


class Section(BaseModel):
    """A config table: unknown keys are errors, defaults are validated too."""

    # A field's docstring is its description: the one place the example config, `config init`
    # and the reference documentation read it from. They are read by poller.config_schema, when
    # one of those asks, not by pydantic as each model is made (use_attribute_docstrings): that
    # reads and tokenizes every model's source, a tenth of each process's start-up.
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _base_url(value: str) -> str:
    try:
        target = url_target(value)
    except UnsafeUrl as exc:
        raise ValueError(f"must be a plain http:// or https:// URL: {exc}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    if parts.username or parts.password:
        raise ValueError("must not carry a user or password; use the credential keys instead")
    return value.rstrip("/")


def _dotted_path(value: str) -> str:
    if not value or any(not part.strip() or part != part.strip() for part in value.split(".")):
        raise ValueError(
            "must be a dotted path of non-empty keys or list indexes, like 'data.calls' or "
            "'user.email'"
        )
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def check_url_path(value: str) -> str:
    if not value.startswith("/") or "?" in value or "#" in value:
        raise ValueError("must be a path starting with '/', without query string")
    return value


def _param_name(value: str) -> str:
    if not value or len(value) > 128 or any(c.isspace() or c in "&=#?" for c in value):
        raise ValueError("must be a query parameter name (no spaces, '&', '=', '#' or '?')")
    return value


def _host_name(value: str) -> str:
    if not value or "/" in value or "@" in value or "*" in value or value != value.strip():
        raise ValueError("must be a host name like 'media.example.com' (optionally with :port)")
    return value.lower()


def _host_pattern(value: str) -> str:
    text = value.strip().lower()
    bare = text.removeprefix("*.")
    if not bare or "/" in text or "@" in text or "*" in bare or text != value.lower():
        raise ValueError(
            "must be a host ('files.example.com', optionally with :port) or a pattern "
            "'*.example.com' matching its subdomains"
        )
    return text


def unset_if_empty(value: object) -> object:
    # TOML has no null: an empty string switches an optional setting off.
    return None if value == "" else value


BaseUrl = Annotated[str, AfterValidator(_base_url)]
PositiveSeconds = Annotated[float, Field(gt=0)]
DottedPath = Annotated[str, AfterValidator(_dotted_path)]
OptionalPath = Annotated[DottedPath | None, BeforeValidator(unset_if_empty)]
NonBlank = Annotated[str, AfterValidator(_non_blank)]
UrlPath = Annotated[str, AfterValidator(check_url_path)]
ParamName = Annotated[str, AfterValidator(_param_name)]
HostName = Annotated[str, AfterValidator(_host_name)]
HostPattern = Annotated[str, AfterValidator(_host_pattern)]
