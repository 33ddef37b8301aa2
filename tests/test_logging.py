"""Log output: readable, journald- and JSON-friendly, and never carrying a secret."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from poller.config import LoggingSettings, load_settings
from poller.logs import build_handler, configure_logging, redact_text, redact_url

SIGNED = (
    "https://storage.googleapis.com/siro-uploads/abc.mp3?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=svc%40proj.iam&X-Goog-Expires=900&X-Goog-Signature=5f1e2d3c4b5a"
)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("poller.test")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.handlers.clear()


def capture(log: logging.Logger, fmt: str = "human", secrets: tuple[str, ...] = ()) -> io.StringIO:
    stream = io.StringIO()
    log.addHandler(build_handler(LoggingSettings(format=fmt), secrets, stream))  # type: ignore[arg-type]
    return stream


def test_configured_secrets_are_masked_in_messages_and_arguments(logger: logging.Logger) -> None:
    out = capture(logger, secrets=("org-token-0123456789",))
    logger.info("token is org-token-0123456789")
    logger.info("token via args: %s", "org-token-0123456789")
    assert "org-token-0123456789" not in out.getvalue()
    assert out.getvalue().count("[REDACTED]") == 2


def test_exception_text_is_masked_too(logger: logging.Logger) -> None:
    out = capture(logger, secrets=("client-secret-abcdef",))
    try:
        raise RuntimeError(f"mint failed for client-secret-abcdef at {SIGNED}")
    except RuntimeError:
        logger.exception("upload step failed")
    text = out.getvalue()
    assert "Traceback" in text
    assert "client-secret-abcdef" not in text
    assert "X-Goog-Signature" not in text and "5f1e2d3c4b5a" not in text


CONFIGURED = "client-secret-abcdef"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
# A module whose own source lines carry the secrets, so the traceback and the stack printed
# with the record (each frame's source line) carry them too, as they do in real code.
FAILING_MODULE = f"""
import logging


def upload(log: logging.Logger) -> None:
    try:
        raise RuntimeError("PUT {SIGNED} with Authorization: Bearer {BEARER} for {CONFIGURED}")
    except RuntimeError:
        log.exception("upload failed: {SIGNED} Bearer {BEARER} {CONFIGURED}", stack_info=True)
"""


def _failing_upload(tmp_path: Path) -> Callable[[logging.Logger], None]:
    source = tmp_path / "failing_upload.py"
    source.write_text(FAILING_MODULE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("failing_upload", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    upload: Callable[[logging.Logger], None] = module.upload
    return upload


@pytest.mark.parametrize("fmt", ["human", "journald", "json"])
def test_tracebacks_and_stacks_are_masked_in_every_format(
    logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    if fmt == "journald":
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = capture(logger, fmt="auto" if fmt == "journald" else fmt, secrets=(CONFIGURED,))
    _failing_upload(tmp_path)(logger)
    text = out.getvalue()
    for leaked in (CONFIGURED, BEARER, "X-Goog-Signature", "5f1e2d3c4b5a", "X-Goog-Credential"):
        assert leaked not in text, (fmt, leaked)
    if fmt == "json":
        (line,) = text.splitlines()
        record = json.loads(line)
        shown = {"traceback": record["exc_info"], "stack": record["stack_info"]}
        assert record["message"].count("[REDACTED]") == 3
    else:
        traceback, stack = text.split("Stack (most recent call last):")
        shown = {"traceback": traceback, "stack": stack}
    assert "Traceback (most recent call last)" in shown["traceback"]
    # The exception's message, and the failing frame's source line in the traceback.
    assert shown["traceback"].count("abc.mp3?[REDACTED] with Authorization: [REDACTED]") == 2
    # The logging call's own source line, in the stack.
    assert (
        "upload failed: https://storage.googleapis.com/siro-uploads/abc.mp3?[REDACTED] "
        in (shown["stack"])
    )
    assert "Bearer [REDACTED] [REDACTED]" in shown["stack"]


def test_strings_given_as_extra_are_masked_in_json(logger: logging.Logger) -> None:
    out = capture(logger, fmt="json", secrets=(CONFIGURED,))
    logger.warning("retrying", extra={"upload_url": SIGNED, "note": f"secret {CONFIGURED}"})
    record = json.loads(out.getvalue())
    assert record["upload_url"] == "https://storage.googleapis.com/siro-uploads/abc.mp3?[REDACTED]"
    assert record["note"] == "secret [REDACTED]"


@pytest.mark.parametrize(
    ("raw", "leaked"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("headers={'x-siro-auth-token': 'tok_live_998877'}", "tok_live_998877"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"PUT {SIGNED} failed", "5f1e2d3c4b5a"),
        ("GET https://api.aircall.io/v1/rec.mp3?token=abcd1234efgh", "abcd1234efgh"),
        ("postgresql+psycopg://poller:hunter22@db:5432/x", "hunter22"),
        ('{"clientSecret": "cs_live_55aa"}', "cs_live_55aa"),
        ('"PUT /siro-uploads/a.mp3?X-Goog-Signature=ab12cd34 HTTP/1.1" 200', "ab12cd34"),
    ],
)
def test_tokens_and_signed_urls_are_masked_without_configuration(raw: str, leaked: str) -> None:
    assert leaked not in redact_text(raw)


def test_harmless_query_strings_stay_readable() -> None:
    url = "https://voip.example.com/api/calls?page=3&per_page=100"
    assert redact_url(url) == url
    assert redact_url(SIGNED) == "https://storage.googleapis.com/siro-uploads/abc.mp3?[REDACTED]"


def test_a_zoom_file_url_signed_with_jwt_is_masked_in_both_formats(logger: logging.Logger) -> None:
    # Zoom signs recording file URLs with a `jwt` query parameter (a 30-minute access token).
    url = "https://zoom.us/v2/phone/recording/download/abc?jwt=eyJhbGciOiJIUzI1NiJ9.body.sig"
    for fmt in ("human", "json"):
        out = capture(logger, fmt=fmt)
        logger.warning("download of %s failed", url)
        assert "eyJhbGciOiJIUzI1NiJ9" not in out.getvalue()
        assert "phone/recording/download/abc?[REDACTED]" in out.getvalue()
        logger.handlers.clear()


def test_json_format_writes_one_object_per_line(logger: logging.Logger) -> None:
    out = capture(logger, fmt="json", secrets=("provider-token-xyz987",))
    logger.warning("polled page %d with provider-token-xyz987", 3)
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "poller.test"
    assert record["message"] == "polled page 3 with [REDACTED]"
    assert record["time"].endswith("+0000")


def test_journald_lines_carry_a_syslog_priority(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = capture(logger, fmt="auto")
    logger.error("download failed")
    logger.info("poll done")
    assert out.getvalue().splitlines() == [
        "<3>poller.test: download failed",
        "<6>poller.test: poll done",
    ]


def test_configure_logging_masks_every_secret_the_settings_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIRO_POLLER_SIRO__API_TOKEN", "org-token-from-env-1")
    monkeypatch.setenv("SIRO_POLLER_PROVIDER__PASSWORD", "provider-pw-from-env")
    out = io.StringIO()
    handler = configure_logging(load_settings(None), stream=out)
    try:
        logging.getLogger("poller.anything").warning(
            "sent org-token-from-env-1 and provider-pw-from-env"
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert "org-token-from-env-1" not in out.getvalue()
    assert "provider-pw-from-env" not in out.getvalue()
    assert "sent [REDACTED] and [REDACTED]" in out.getvalue()


def test_configure_logging_masks_the_secrets_of_each_providers_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[providers]]\nname = "east"\nbase_url = "https://e.acme.io"\nauth = "basic"\n'
        'username = "ops"\npassword = "east-pw-in-file"\n'
        '[[providers]]\nname = "west"\nbase_url = "https://w.acme.io"\nauth = "bearer"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("SIRO_POLLER_PROVIDERS__WEST__TOKEN", "west-token-from-env")
    out = io.StringIO()
    handler = configure_logging(load_settings(config), stream=out)
    try:
        logging.getLogger("poller.anything").warning("east-pw-in-file west-token-from-env")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "poller.anything: [REDACTED] [REDACTED]" in out.getvalue()
