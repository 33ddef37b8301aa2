"""Log forging and terminal escapes (P14 break 4): clean text out.

A newline in a call id or a contact name forged a whole log line in the human and journald
formats, and `calls list` and `calls show` wrote a provider's ESC sequences (window title,
clear screen, OSC 8 links) to the operator's terminal. Provider data now shows its control
characters escaped (``\\n``, ``\\x1b``) in human and journald logs, exception text included, and
in every CLI table and line, on a terminal or not; JSON logs stay as they were (JSON escapes
by itself); and no human or journald line carries more than a few KB of one message.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import LoggingSettings
from poller.domain.records import UnmappedDraft
from poller.domain.states import CallState
from poller.logs import MAX_LINE_CHARS, CleanTextFormatter, build_handler
from tests.conftest import database_url
from tests.seed import seed_call, seed_event

FORGED_LINE = (
    "2026-12-06T10:00:00+0000 INFO    poller.core.worker: call 99 (FORGED): uploaded as Siro "
    "recording 1234"
)
# What a hostile provider put in a call id: a line of its own, then terminal control.
HOSTILE_ID = f"call-7\n{FORGED_LINE}"
TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J\x1b[H"
LINK = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
MARKUP = "[bold]loud[/bold] [link=https://evil.example/]here[/link]"
HOSTILE_NAME = f"Eve{TITLE}{CLEAR}{LINK} {MARKUP}"
STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
# Any ESC sequence but the colours the CLI itself writes (SGR: ESC [ ... m).
NOT_A_COLOUR = re.compile(r"\x1b(?!\[[0-9;]*m)")
RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- logs -------------------------------------------------------------------------------------


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("poller.core.worker.test")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.handlers.clear()


def capture(
    log: logging.Logger, fmt: str, monkeypatch: pytest.MonkeyPatch | None = None
) -> io.StringIO:
    stream = io.StringIO()
    if fmt == "journald":
        assert monkeypatch is not None
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
        fmt = "auto"
    log.addHandler(build_handler(LoggingSettings(format=fmt), (), stream))  # type: ignore[arg-type]
    return stream


@pytest.mark.parametrize("fmt", ["human", "journald"])
def test_log_forging_a_newline_in_a_call_id_stays_on_its_own_line(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = capture(logger, fmt, monkeypatch)
    logger.info("call %s (%s): uploaded as Siro recording %s", 7, HOSTILE_ID, "rec-1")
    logger.warning("contact %s", HOSTILE_NAME)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(line.startswith(FORGED_LINE[:24]) for line in lines)
    assert "(call-7\\n2026-12-06T10:00:00+0000 INFO    poller.core.worker: call 99" in lines[0]
    assert "\\x1b]0;owned\\x07" in lines[1] and "\\x1b[2J" in lines[1]
    assert MARKUP in lines[1]
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    if fmt == "journald":
        assert [line[:3] for line in lines] == ["<6>", "<4>"]


@pytest.mark.parametrize("fmt", ["human", "journald"])
def test_log_forging_through_exception_text_is_escaped_and_the_traceback_kept(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = capture(logger, fmt, monkeypatch)
    try:
        try:
            raise KeyError(HOSTILE_ID)
        except KeyError as exc:
            raise RuntimeError(f"provider answered {HOSTILE_NAME}\n{FORGED_LINE}") from exc
    except RuntimeError:
        logger.exception("call %s failed", HOSTILE_ID)

    text = out.getvalue()
    lines = text.splitlines()
    assert "\x1b" not in text
    # The forged line is inside the lines that quote it, never a line of its own.
    forged = [line for line in lines if "(FORGED)" in line]
    assert len(forged) == 3
    assert all("\\n2026-12-06T10:00:00+0000" in line for line in forged)
    assert any("RuntimeError: provider answered Eve\\x1b]0;owned\\x07" in line for line in forged)
    # The traceback is still a traceback, one frame per line.
    assert sum("Traceback (most recent call last):" in line for line in lines) == 2
    assert any("The above exception was the direct cause" in line for line in lines)
    assert any(
        re.search(r'File ".*test_log_forging_and_terminal_escapes.py"', line) for line in lines
    )


def test_log_forging_extra_fields_shown_by_a_human_format_are_escaped_too() -> None:
    formatter = CleanTextFormatter("%(levelname)s %(message)s [call %(provider_call_id)s]")
    record = logging.makeLogRecord(
        {"msg": "uploaded", "levelname": "INFO", "provider_call_id": HOSTILE_ID + TITLE}
    )
    (line,) = formatter.format(record).splitlines()
    assert line.endswith("[call call-7\\n" + FORGED_LINE + "\\x1b]0;owned\\x07]")


def test_log_forging_json_lines_are_as_before(logger: logging.Logger) -> None:
    out = capture(logger, "json")
    logger.info("call %s", HOSTILE_ID, extra={"contact": HOSTILE_NAME})
    (line,) = out.getvalue().splitlines()  # JSON escapes the newline itself
    record = json.loads(line)
    assert record["message"] == f"call {HOSTILE_ID}"
    assert record["contact"] == HOSTILE_NAME


@pytest.mark.parametrize("fmt", ["human", "journald"])
def test_log_forging_a_huge_provider_message_is_cut_saying_how_much(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = capture(logger, fmt, monkeypatch)
    huge = "?, " * 330_029 + "?"  # 990,088 characters, as the database's error line was
    logger.error("poll failed: %s", huge)
    try:
        raise ValueError(huge)
    except ValueError:
        logger.exception("poll failed")

    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) < MAX_LINE_CHARS + 200
    cut = [line for line in lines if "more characters cut]" in line]
    assert len(cut) == 2
    over = len(f"poll failed: {huge}") - MAX_LINE_CHARS
    assert cut[0].endswith(f"… [{over:,} more characters cut]")
    assert over > 980_000


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def hostile(sql_store: SqlStore) -> SqlStore:
    call = seed_call(
        sql_store,
        HOSTILE_ID + TITLE,
        state=CallState.FAILED,
        started_at=STARTED,
        attempts=8,
        error_kind="not_audio",
        last_error=f"the provider said {CLEAR}{LINK}\n{FORGED_LINE}",
        rep_email="rep@example.com",
        rep_name=HOSTILE_NAME,
        contact_name=HOSTILE_NAME,
        raw={"id": HOSTILE_ID, "contact": HOSTILE_NAME},
    )
    seed_event(
        sql_store,
        call.id,
        at=STARTED + timedelta(minutes=1),
        step="download",
        outcome="fail",
        message=f"refused {LINK}\n{FORGED_LINE}",
    )
    seed_call(sql_store, "call-8", started_at=STARTED + timedelta(minutes=2))
    sql_store.ingest_page(
        "generic",
        [],
        STARTED,
        unmapped=[
            UnmappedDraft(
                window_start=STARTED,
                window_end=STARTED + timedelta(hours=1),
                page=1,
                item_index=0,
                reason=f"no call id in {HOSTILE_NAME}\n{FORGED_LINE}",
                raw=json.dumps({"name": HOSTILE_NAME}, ensure_ascii=False),
                raw_sha256="0" * 64,
            )
        ],
    )
    sql_store.record_pause("siro", f"Siro said {TITLE}{CLEAR}\n{FORGED_LINE}", STARTED)
    sql_store.record_poll_result("generic", STARTED, f"HTTP 500: {LINK}\n{FORGED_LINE}")
    return sql_store


def environment(engine: Engine, **extra: str) -> dict[str, str]:
    return {"SIRO_POLLER_DATABASE__URL": database_url(engine), **extra}


def assert_clean(output: str) -> None:
    assert not NOT_A_COLOUR.search(output), output
    assert not RAW_CONTROLS.search(output.replace("\x1b", "")), output
    assert not any(line.startswith(FORGED_LINE[:24]) for line in output.splitlines()), output


@pytest.mark.parametrize(
    "command",
    [
        ["calls", "list"],
        ["calls", "list", "--state", "failed"],
        ["calls", "show", "1"],
        ["calls", "explain", "1"],
        ["calls", "unmapped"],
        ["calls", "retry", "--failed", "--dry-run"],
        ["calls", "retry", "1", "--dry-run"],
        ["status"],
    ],
)
def test_terminal_escapes_from_provider_data_are_shown_escaped_when_piped(
    hostile: SqlStore, command: list[str]
) -> None:
    result = CliRunner().invoke(main, command, env=environment(hostile.engine))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert_clean(result.output)
    assert "\\x1b" in result.output or "\\n" in result.output


def test_terminal_escapes_calls_list_and_show_on_a_terminal_write_no_escape_sequence(
    hostile: SqlStore,
) -> None:
    from tests.terminal import run_on_terminal

    env = environment(hostile.engine, COLUMNS="200")
    listed = run_on_terminal(["calls", "list"], env)
    assert_clean(listed)
    assert "\x1b[31mfailed" in listed  # the CLI's own colours stay
    assert "call-7\\n2026-12-06T10:00:00+0000" in listed
    assert "\\x1b]0;owned\\x07" in listed

    shown = run_on_terminal(["calls", "show", "1"], env)
    assert_clean(shown)
    flat = re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", shown))
    assert "Eve\\x1b]0;owned\\x07\\x1b[2J\\x1b[H\\x1b]8;;https://evil.example/" in flat
    # Markup in provider data is shown as written, never obeyed.
    assert MARKUP.split()[0] in flat and "[link=https://evil.example/]here[/link]" in flat


def test_terminal_escapes_an_error_quoting_provider_data_is_escaped(hostile: SqlStore) -> None:
    uploaded = seed_call(
        hostile,
        f"call-9\n{FORGED_LINE}{CLEAR}",
        state=CallState.UPLOADED,
        started_at=STARTED,
        siro_recording_id=f"rec{TITLE}",
        uploaded_at=STARTED,
    )
    result = CliRunner().invoke(
        main, ["calls", "replay", str(uploaded.id)], env=environment(hostile.engine)
    )
    assert result.exit_code == 1
    assert_clean(result.output)
    assert "call-9\\n2026-12-06T10:00:00+0000" in result.output
    assert "rec\\x1b]0;owned\\x07" in result.output


def test_terminal_escapes_doctor_shows_what_a_check_quotes_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from poller.cli.doctor import ResultPrinter
    from poller.core.doctor import CheckResult, Verdict

    ResultPrinter().show(
        CheckResult(
            "provider generic",
            Verdict.FAILED,
            f"the provider answered {HOSTILE_NAME}",
            fix=f"ask {TITLE}the vendor",
            details=(f"record {HOSTILE_ID}",),
        )
    )
    output = capsys.readouterr().out
    assert_clean(output)
    assert len(output.splitlines()) == 3
    assert "answered Eve\\x1b]0;owned\\x07\\x1b[2J\\x1b[H\\x1b]8;;https://evil.example/" in output
    assert MARKUP in output
