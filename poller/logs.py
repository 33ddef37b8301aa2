"""Logging: human lines on a terminal, journald-friendly lines under systemd, JSON on request.

Every handler carries :class:`RedactionFilter`, so no secret, bearer token or signed-URL
signature reaches a log line, exception text included. Human and journald lines are
:class:`CleanTextFormatter`'s: provider data in them has its control characters escaped, so a
newline in a call id cannot forge a log line, and no line runs longer than a few KB.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO, TypeAlias

from pydantic import BaseModel, SecretStr
from pythonjsonlogger.json import JsonFormatter

from poller.config import LoggingSettings, Settings

# The redaction rules live in the domain (the core uses them too); adapters and the CLI may keep
# importing them from here.
from poller.domain.printable import printable, shortened
from poller.domain.redaction import MASK as MASK
from poller.domain.redaction import redact_text as redact_text
from poller.domain.redaction import redact_url as redact_url

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]


class RedactionFilter(logging.Filter):
    """Rewrites each record in place so every formatter downstream sees only redacted text.

    The message, the traceback, the stack and any string passed as ``extra`` are masked. The
    traceback is kept only as redacted text: a formatter that renders ``exc_info`` itself
    (python-json-logger does) would otherwise print the raw one, past this filter.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        describe_exception: Callable[[ExcInfo], str] | None = None,
    ) -> None:
        """``describe_exception`` turns a record's exception into text (the handler's
        formatter's way); by default, the standard traceback."""
        super().__init__()
        self.describe_exception = describe_exception or _PLAIN.formatException
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            # Always this handler's own text: another handler may have cached the raw one.
            record.exc_text = self.describe_exception(record.exc_info)  # type: ignore[arg-type]
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


# The most of one message, exception or stack line a human or journald line shows: a provider's
# 990,088-character error would otherwise be one log line of a megabyte.
MAX_LINE_CHARS = 4000


class CleanTextFormatter(logging.Formatter):
    """Human lines from any text: control characters escaped (:mod:`poller.domain.printable`)
    in the message, in ``extra`` strings and in the exception's message, so each stays on its
    own line; every line at most :data:`MAX_LINE_CHARS`, with a note of what was cut.

    A traceback keeps its lines (its frames come from the code, not from provider data); only
    each exception's message, which may quote provider data, is made one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        lines = [self.formatMessage(record)]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # type: ignore[arg-type]
        if record.exc_text:
            lines.extend(_clean_lines(record.exc_text))
        if record.stack_info:
            lines.extend(_clean_lines(self.formatStack(record.stack_info)))
        return "\n".join(lines)

    def formatMessage(self, record: logging.LogRecord) -> str:
        clean = logging.makeLogRecord(
            {
                name: _clean_line(value) if isinstance(value, str) else value
                for name, value in vars(record).items()
            }
        )
        return super().formatMessage(clean)

    def formatException(self, ei: ExcInfo) -> str:  # type: ignore[override]
        return "".join(_traceback_lines(traceback.TracebackException(*ei))).rstrip("\n")


def _traceback_lines(exc: traceback.TracebackException) -> Iterator[str]:
    """The standard traceback of ``exc`` and the exceptions chained to it, each exception's
    message (and notes) made one line."""
    chain: list[tuple[str | None, traceback.TracebackException]] = []
    link: traceback.TracebackException | None = exc
    while link is not None:
        if link.__cause__ is not None:
            chain.append((_CAUSE, link))
            link = link.__cause__
        elif link.__context__ is not None and not link.__suppress_context__:
            chain.append((_CONTEXT, link))
            link = link.__context__
        else:
            chain.append((None, link))
            link = None
    for joined_by, link in reversed(chain):
        if joined_by is not None:
            yield joined_by
        if link.stack:
            yield "Traceback (most recent call last):\n"
            yield from link.stack.format()
        for chunk in link.format_exception_only():
            yield printable(chunk.rstrip("\n")) + "\n"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _clean_line(text: str) -> str:
    return shortened(printable(text), MAX_LINE_CHARS)


def _clean_lines(text: str) -> list[str]:
    # Only a newline ends a line here: any other line break is provider data, shown escaped.
    return [_clean_line(line) for line in text.split("\n")]


class JournaldFormatter(CleanTextFormatter):
    """No timestamp (journald adds its own) and a syslog priority prefix."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        lines = super().format(record).split("\n")
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
        formatter = CleanTextFormatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"
        )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    describe = formatter.formatException if isinstance(formatter, CleanTextFormatter) else None
    handler.addFilter(RedactionFilter(secrets, describe))
    return handler


# Third-party chatter at INFO drowns what matters; their warnings still come through.
# APScheduler logs every run of every job; the daemon reports errors and missed runs itself.
# Alembic logs each migration it runs and, when imported (by the command that migrates, once
# logging is set up), each plugin it sets up.
NOISY_LIBRARIES = ("urllib3", "apscheduler", "alembic")
# Libraries whose warnings are shown another way. APScheduler's are of runs missed and of turns
# skipped behind a running one, which the daemon's listener reports itself (a skipped turn only
# at DEBUG: a backlog is not a fault); its errors still come through.
LIBRARY_LEVELS = {"apscheduler": logging.ERROR}


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
        quietest = LIBRARY_LEVELS.get(noisy, logging.WARNING)
        logging.getLogger(noisy).setLevel(max(quietest, root.level))
    return handler
