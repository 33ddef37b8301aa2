"""`siro-poller doctor`: online checks of a setup, in order, each a verdict with its fix.

A :class:`Check` is a name and a function that returns an :class:`Outcome`. The checks run one
after another, each in a thread of its own with a time limit, so a host that never answers
costs its own check that limit and the checks after it still run. A check that needs an earlier
one to have passed (the token user needs the users list) is skipped rather than failed twice.

The judging lives here, against the ports; loading the config and building the adapters is the
composition's part (:mod:`poller.cli.doctor`).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from poller.core.provider_check import CheckVerdict, check_provider
from poller.core.webhook_subscriptions import WORKING_STATES, advice
from poller.domain.clock import human_age
from poller.domain.crm import CrmRules, choose_connection
from poller.domain.siro import IntegrationConnection, SiroUser
from poller.domain.windows import Window
from poller.ports.provider import ProviderError, ProviderPort
from poller.ports.siro import SiroError, SiroPermanentError, SiroPort
from poller.ports.store import SavedSubscription
from poller.ports.webhooks import Subscription, SubscriptionState


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works, but deserves a look; does not fail the run
    FAILED = "failed"
    SKIPPED = "skipped"  # could not be judged because a check it needs failed


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    summary: str
    fix: str | None = None
    details: tuple[str, ...] = ()


def passed(summary: str, details: Sequence[str] = ()) -> Outcome:
    return Outcome(Verdict.OK, summary, details=tuple(details))


def failed(summary: str, fix: str, details: Sequence[str] = ()) -> Outcome:
    return Outcome(Verdict.FAILED, summary, fix, tuple(details))


def warned(summary: str, fix: str, details: Sequence[str] = ()) -> Outcome:
    return Outcome(Verdict.WARNING, summary, fix, tuple(details))


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    verdict: Verdict
    summary: str
    fix: str | None = None
    details: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAILED

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.name,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "fix": self.fix,
            "details": list(self.details),
        }


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[], Outcome]
    needs: tuple[str, ...] = ()  # checks that must have passed (ok or warning) first


_NOT_PASSED = (Verdict.FAILED, Verdict.SKIPPED)


def run_checks(
    checks: Iterable[Check],
    *,
    timeout_seconds: float,
    report: Callable[[CheckResult], None] = lambda result: None,
) -> list[CheckResult]:
    """Run ``checks`` in order, handing each result to ``report`` as soon as it is known."""
    results: list[CheckResult] = []
    verdicts: dict[str, Verdict] = {}
    for check in checks:
        unmet = [name for name in check.needs if verdicts.get(name) in (None, *_NOT_PASSED)]
        if unmet:
            result = CheckResult(
                check.name, Verdict.SKIPPED, f"not checked: {', '.join(unmet)} did not pass"
            )
        else:
            result = _run_one(check, timeout_seconds)
        verdicts[check.name] = result.verdict
        report(result)
        results.append(result)
    return results


def _run_one(check: Check, timeout_seconds: float) -> CheckResult:
    outcomes: list[Outcome] = []

    def target() -> None:
        try:
            outcomes.append(check.run())
        except Exception as exc:  # a check that breaks is a finding, not a crash of the doctor
            outcomes.append(
                failed(
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "this is a bug in siro-poller; please report it with this line",
                )
            )

    # A daemon thread: one stuck on a host that never answers must not keep the process alive.
    thread = threading.Thread(target=target, name=f"doctor {check.name}", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if not outcomes:
        outcome = failed(
            f"no result within {timeout_seconds:g} s",
            "something on the way does not answer: check the address and the network, or "
            "allow more time with --timeout",
        )
    else:
        outcome = outcomes[0]
    return CheckResult(check.name, outcome.verdict, outcome.summary, outcome.fix, outcome.details)


# -- the database ------------------------------------------------------------------------------


class DatabaseUnreachable(Exception):
    """The state database could not be opened or read; the message says why, secret-free."""


@dataclass(frozen=True, slots=True)
class SchemaRevisions:
    current: str | None  # None: no schema at all yet
    head: str  # the revision this version of siro-poller needs


def judge_database(database: str, read_revisions: Callable[[], SchemaRevisions]) -> Outcome:
    """``database`` names it for the reader (password masked); ``read_revisions`` raises
    :class:`DatabaseUnreachable` when the database cannot be reached."""
    try:
        revisions = read_revisions()
    except DatabaseUnreachable as exc:
        return failed(
            f"{database} cannot be reached: {exc}",
            "check database.url (and database.password), that the server runs and this "
            "machine may connect to it",
        )
    if revisions.current == revisions.head:
        return passed(f"{database} is at revision {revisions.head}, as this version needs")
    found = f"at revision {revisions.current}" if revisions.current else "not initialised"
    return failed(
        f"{database} is {found}; this version needs revision {revisions.head}",
        "run `siro-poller db upgrade`",
    )


# -- Siro ---------------------------------------------------------------------------------------

SIRO_UNREACHABLE_FIX = (
    "check siro.api_base_url and siro.external_api_base_url, and that this machine reaches them"
)
OAUTH_APP_FIX = (
    "check siro.client_id, siro.client_secret and siro.token_user_id; "
    "`siro-poller siro create-app --name NAME` creates a new OAuth app and shows its secret"
)
ORGANIZATION_KEY_FIX = (
    "check siro.api_token, the organization API token (Siro web app > API Tokens)"
)
USERS_FIX = "`siro-poller siro users` lists the ids"


def siro_checks(siro: SiroPort, *, token_user_id: str | None, crm: CrmRules) -> list[Check]:
    """The token mint, the users list, the token user in it, and the CRM connection when CRM
    linking is configured; the users list is read once for the two checks that need it."""
    users = _Once(siro.list_users)
    checks = [
        Check("Siro access token", lambda: _token_minted(siro, token_user_id)),
        Check("Siro users", lambda: _users_listed(users)),
        Check("Siro token user", lambda: _token_user(users, token_user_id), needs=("Siro users",)),
    ]
    if crm.connection_id or crm.connection_name:
        checks.append(Check("Siro CRM connection", lambda: _crm_connection(siro, crm)))
    return checks


@dataclass
class _Once:
    """One call's result (or error), shared by the checks that need it."""

    call: Callable[[], list[SiroUser]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    value: list[SiroUser] | None = None
    error: SiroError | None = None

    def __call__(self) -> list[SiroUser]:
        with self.lock:
            if not self.done:
                try:
                    self.value = self.call()
                except SiroError as exc:
                    self.error = exc
                self.done = True
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def _siro_failure(exc: SiroError, refused_fix: str) -> Outcome:
    """A refusal (the credentials, or a request Siro will never take) is fixed in the config;
    anything else is the way to Siro."""
    if isinstance(exc, SiroPermanentError):  # SiroCredentialError among them
        return failed(str(exc), refused_fix)
    return failed(str(exc), SIRO_UNREACHABLE_FIX)


def _token_minted(siro: SiroPort, token_user_id: str | None) -> Outcome:
    try:
        siro.verify_credentials()
    except SiroError as exc:
        return _siro_failure(exc, OAUTH_APP_FIX)
    return passed(f"an upload token was minted for user {token_user_id}")


def _users_listed(users: Callable[[], list[SiroUser]]) -> Outcome:
    try:
        found = users()
    except SiroError as exc:
        return _siro_failure(exc, ORGANIZATION_KEY_FIX)
    disabled = sum(1 for user in found if user.disabled)
    summary = f"{len(found)} users" + (f" ({disabled} disabled)" if disabled else "")
    if not found:
        return warned(
            "Siro lists no users, so no call can be attributed to a rep",
            "check that siro.api_token belongs to the right organization",
        )
    return passed(summary)


def _token_user(users: Callable[[], list[SiroUser]], token_user_id: str | None) -> Outcome:
    if not token_user_id:
        return failed("siro.token_user_id is not set", f"set it to a Siro user id; {USERS_FIX}")
    found = {user.id: user for user in users()}
    user = found.get(token_user_id)
    if user is None:
        return failed(
            f"Siro has no user {token_user_id!r} (siro.token_user_id)",
            f"set siro.token_user_id to an admin or integration user's id; {USERS_FIX}",
        )
    email = f"<{user.email}>" if user.email else ""
    who = " ".join(part for part in (user.full_name, email) if part)
    if user.disabled:
        return failed(
            f"the token user {token_user_id} ({who}) is disabled in Siro",
            f"enable the user in Siro, or set siro.token_user_id to another user; {USERS_FIX}",
        )
    return passed(f"{token_user_id} is {who or 'a Siro user'}")


def _crm_connection(siro: SiroPort, crm: CrmRules) -> Outcome:
    try:
        connections = siro.list_connections()
    except SiroError as exc:
        return _siro_failure(exc, ORGANIZATION_KEY_FIX)
    connection: IntegrationConnection | None
    if crm.connection_id:
        connection = next((c for c in connections if c.id == crm.connection_id), None)
        if connection is None:
            return failed(
                f"Siro has no integration connection {crm.connection_id!r} "
                "(siro.integration_connection_id)",
                "set siro.integration_connection_id to one of the ids "
                "`siro-poller siro connections` lists",
            )
    else:
        assert crm.connection_name is not None
        try:
            connection = choose_connection(connections, crm.connection_name)
        except ValueError as exc:
            return failed(
                f"siro.integration_connection_name: {exc}",
                "set siro.integration_connection_name to one of the names there, or "
                "siro.integration_connection_id to its id",
            )
    described = f"{connection.name or 'unnamed'} ({connection.id}"
    described += f", {connection.integration_platform})" if connection.integration_platform else ")"
    if connection.is_active is False:
        return warned(
            f"the connection {described} is not active in Siro",
            "reconnect the CRM in Siro; until then Siro may not link recordings through it",
        )
    return passed(f"recordings link through {described}")


# -- the phone systems --------------------------------------------------------------------------


def judge_provider(
    name: str, provider: ProviderPort, window: Window, *, config_key: Callable[[str], str]
) -> Outcome:
    """The provider check (as `siro-poller provider check` runs it), with the fix for its
    verdict; ``config_key`` names a key of this provider, e.g. ``providers.east.base_url``."""
    check = check_provider(name, provider, window)
    if check.ok:
        return passed(check.summary)
    alone = f"`siro-poller provider check --provider {name}` runs this check alone"
    fixes = {
        CheckVerdict.AUTH: f"correct the credentials the message names; {alone}",
        CheckVerdict.HOST: f"check {config_key('base_url')} and that this machine reaches it",
        CheckVerdict.LISTING: f"check {config_key('kind')}, and for the generic kind "
        f"{config_key('listing')} and {config_key('paging')}, against the answer",
        CheckVerdict.MAPPING: f"set {config_key('fields')} to the keys the records have; {alone}",
    }
    return failed(check.summary, fixes[check.verdict])


# -- webhooks -----------------------------------------------------------------------------------

# Past this without an event, a note: quiet days happen (a weekend), but a webhook the vendor
# stopped sending looks the same from here.
QUIET_FOR = timedelta(hours=24)


def judge_webhook(
    provider: str,
    *,
    receiver: str | None,
    saved: SavedSubscription | None,
    live: Callable[[], Subscription] | None,
    now: datetime,
) -> Outcome:
    """An enabled webhook: is there a receiver, how does the subscription stand (asked live
    where the vendor has an API, else as last saved), when did an event last arrive. Never a
    failure: polling brings every call whatever this says."""
    details = []
    state: SubscriptionState | None = saved.state if saved is not None else None
    if live is not None:
        try:
            current = live()
        except ProviderError as exc:
            return warned(
                f"the vendor could not be asked about the subscription: {exc}",
                "`siro-poller webhooks status` asks again; polling is not affected",
            )
        state = current.state
        expiry = f", until {current.expires_at:%Y-%m-%d %H:%M:%SZ}" if current.expires_at else ""
        details.append(f"the vendor says: {state.value}{expiry}")
    last = saved.last_event_at if saved is not None else None
    details.append(
        "last event: never" if last is None else f"last event: {human_age(now - last)} ago"
    )
    if receiver is None:
        return warned(
            "enabled, but no receiver listens ([webhooks] listen is unset)",
            "set [webhooks] listen (e.g. 127.0.0.1:8788, behind a TLS proxy) and restart",
            details,
        )
    details.insert(0, f"receiver on {receiver}")
    if state is None or state not in WORKING_STATES:
        shown_state = state.value if state is not None else "never set up"
        return warned(
            f"the subscription is {shown_state}: events do not come (polling still does)",
            advice(provider, state) or "",
            details,
        )
    if last is None or now - last > QUIET_FOR:
        details.append(
            f"note: no event for more than {human_age(QUIET_FOR)}; quiet days happen, but if "
            "calls were made, check the proxy in front of the receiver"
        )
    return passed(f"subscription {state.value}", details)


# -- the spool ----------------------------------------------------------------------------------


def judge_spool_writable(spool_dir: Path) -> Outcome:
    """Create the spool as the worker does (mode 0700), then a file in it, and remove it."""
    try:
        spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=".doctor-") as probe:
            probe.write(b"siro-poller doctor")
            probe.flush()
    except OSError as exc:
        return failed(
            f"{spool_dir} is not writable: {exc.strerror or exc}",
            "set worker.spool_dir (or state_dir) to a directory the service user can create "
            "and write",
        )
    return passed(f"{spool_dir} is writable")


@dataclass(frozen=True, slots=True)
class SpoolNeed:
    """The most the spool holds at once: each download slot's largest download, and beside it,
    while a conversion runs, the converted copy (which can be as large); and twice as many
    downloaded recordings waiting for their upload or being uploaded (the worker has three
    threads per download slot: see core/stages.py)."""

    concurrency: int
    max_download_bytes: int
    converts: bool

    @property
    def one_call_bytes(self) -> int:
        """One call at its largest: below this, a single big recording cannot be spooled."""
        return self.max_download_bytes * (2 if self.converts else 1)

    @property
    def bytes(self) -> int:
        return self.concurrency * (self.one_call_bytes + 2 * self.max_download_bytes)

    def describe(self) -> str:
        copies = " and a conversion's copy of each" if self.converts else ""
        return (
            f"{self.concurrency} downloads at once (worker.concurrency) of up to "
            f"{format_bytes(self.max_download_bytes)} (worker.max_download_bytes){copies}, "
            f"and {2 * self.concurrency} downloaded recordings waiting for or in their upload"
        )


def judge_spool_space(spool_dir: Path, need: SpoolNeed) -> Outcome:
    where = _existing_ancestor(spool_dir)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return failed(
            f"the free space at {where} cannot be read: {exc.strerror or exc}",
            "set worker.spool_dir to a directory on a mounted filesystem",
        )
    fix = (
        "free space there, set worker.spool_dir to a roomier filesystem, or lower "
        "worker.concurrency or worker.max_download_bytes"
    )
    if free < need.one_call_bytes:
        return failed(
            f"{format_bytes(free)} free at {spool_dir}, less than one recording of the largest "
            f"size may take ({format_bytes(need.one_call_bytes)})",
            fix,
        )
    if free < need.bytes:
        # Largest-size recordings rarely come all at once: worth a look, not a failed setup.
        return warned(
            f"{format_bytes(free)} free at {spool_dir}, less than the {format_bytes(need.bytes)} "
            f"the spool needs at worst: {need.describe()}",
            fix,
        )
    return passed(
        f"{format_bytes(free)} free at {spool_dir}, at least the {format_bytes(need.bytes)} "
        f"the spool may need"
    )


def _existing_ancestor(path: Path) -> Path:
    # Before the first run the spool may not exist yet: its filesystem is its nearest parent's.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def format_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
