"""Logging: human lines on a terminal, journald-friendly lines under systemd, JSON on request.

Every handler carries :class:`RedactionFilter`, so no secret, bearer token or signed-URL
signature reaches a log line, exception text included.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from pydantic import BaseModel, SecretStr
from pythonjsonlogger.json import JsonFormatter

from poller.config import LoggingSettings, Settings

# The redaction rules live in the domain (the core uses them too); adapters and the CLI may keep
# importing them from here.
from poller.domain.redaction import MASK as MASK
from poller.domain.redaction import redact_text as redact_text
from poller.domain.redaction import redact_url as redact_url


class RedactionFilter(logging.Filter):
    """Rewrites each record in place so every formatter downstream sees only redacted text.

    The message, the traceback, the stack and any string passed as ``extra`` are masked. The
    traceback is kept only as redacted text: a formatter that renders ``exc_info`` itself
    (python-json-logger does) would otherwise print the raw one, past this filter.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _PLAIN.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact_text(value, self.secrets))
        return True


_PLAIN = logging.Formatter()
# What every record has; anything else came in through ``extra=`` and a JSON line shows it.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold, at any depth: each [[providers]] table's too."""
    return list(_secret_values(settings))


def _secret_values(value: object) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_values(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_values(item)


# journald reads a "<N>" prefix as the syslog priority of the line.
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournaldFormatter(logging.Formatter):
    """No timestamp (journald adds its own) and a syslog priority prefix."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        lines = super().format(record).splitlines() or [""]
        return "\n".join(f"<{priority}>{line}" for line in lines)


def build_handler(
    settings: LoggingSettings, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    style: str = settings.format
    if style == "auto":
        style = "journald" if os.environ.get("JOURNAL_STREAM") else "human"
    formatter: logging.Formatter
    if style == "json":
        formatter = JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    elif style == "journald":
        formatter = JournaldFormatter("%(name)s: %(message)s")
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"
        )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactionFilter(secrets))
    return handler


# Third-party chatter at INFO drowns what matters; their warnings still come through.
# APScheduler logs every run of every job; the daemon reports errors and missed runs itself.
NOISY_LIBRARIES = ("urllib3", "apscheduler", "alembic.runtime.migration")


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install the one root handler; returns it so callers (and tests) can detach it."""
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, "_siro_poller", False)]:
        root.removeHandler(existing)
    handler = build_handler(settings.logging, configured_secrets(settings), stream)
    handler._siro_poller = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.logging.level)
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
