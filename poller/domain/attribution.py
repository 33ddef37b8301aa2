"""Which Siro user a call belongs to, and how that was decided. Pure: no I/O.

Siro's best practice is a definite ``userId`` on every recording; ``userEmail`` and
``userPhone`` are its fallback. A recording on the wrong rep is worse than a late one
(coaching and analytics go to the wrong person), so the rules below prefer stopping, with a
reason a person can act on, to guessing. The first rule that matches decides:

1. an explicit mapping in ``[siro.rep_map]``: provider user id, extension, email, phone;
2. the Siro user with the rep's email (case-insensitive);
3. the Siro user with the rep's phone (E.164, see :mod:`poller.domain.phones`);
4. otherwise ``userEmail`` and/or ``userPhone`` for Siro to match (``fallback_*``), unless
   ``siro.require_known_rep`` is on.

Disabled users. A directory match (rule 2 or 3) whose only user is disabled, or no longer
listed by Siro, stops resolution: the call is skipped as ``rep_disabled`` and is not handed to
anyone else. The person has left; a later rule would give the call to whoever holds the phone
number now, and the fallback would let Siro pick the disabled user itself. When the same email
or phone also belongs to an active user (a re-created account), the active one is taken. To
upload such calls anyway, map the rep in ``[siro.rep_map]`` and requeue them. An explicit
mapping is the operator's word and is followed even to a disabled user, with a warning in the
detail.

Skips are raised as :class:`~poller.domain.failures.StepFailure` with ``kind`` one of
:class:`RepSkipReason`, the value that lands in ``calls.error_kind``. When Siro's users have
never been synced there is nothing to resolve against yet, and that is a retry.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from poller.domain.failures import StepFailure
from poller.domain.phones import DEFAULT_PHONE_REGION, to_e164
from poller.domain.records import Call, DirectoryUser, UsersSyncResult
from poller.domain.siro import SiroUser


class AttributionMethod(StrEnum):
    """Values of ``calls.attribution``: how the rep of an uploaded call was found."""

    MAP_PROVIDER_ID = "map_provider_id"
    MAP_EXTENSION = "map_extension"
    MAP_EMAIL = "map_email"
    MAP_PHONE = "map_phone"
    SIRO_EMAIL = "siro_email"
    SIRO_PHONE = "siro_phone"
    FALLBACK_EMAIL = "fallback_email"
    FALLBACK_PHONE = "fallback_phone"


class RepSkipReason(StrEnum):
    """Values of ``calls.error_kind`` on calls skipped for their rep."""

    NO_REP_IDENTITY = "no_rep_identity"  # nothing Siro could attribute the call by
    UNKNOWN_REP = "unknown_rep"  # require_known_rep, and the rep is no Siro user
    REP_DISABLED = "rep_disabled"  # the rep's Siro user is disabled or gone
    AMBIGUOUS_REP = "ambiguous_rep"  # several active Siro users share the rep's email or phone


# The attribution kind of a call with none recorded: not attributed yet, parked before it was,
# or uploaded before calls.attribution existed.
NO_ATTRIBUTION = "none"
# What `calls list --attribution`, `status` and the metrics report calls by.
ATTRIBUTION_KINDS = (*(method.value for method in AttributionMethod), NO_ATTRIBUTION)


def attribution_counts(found: Mapping[str | None, int]) -> dict[str, int]:
    """Calls per attribution kind, every kind of :data:`ATTRIBUTION_KINDS` present (0 when
    none) and in that order, from counts per stored ``calls.attribution`` value (``None``:
    :data:`NO_ATTRIBUTION`). A value this version does not know is kept, after the others."""
    counts = dict.fromkeys(ATTRIBUTION_KINDS, 0)
    for stored, count in found.items():
        kind = stored or NO_ATTRIBUTION
        counts[kind] = counts.get(kind, 0) + count
    return counts


USERS_NOT_SYNCED = "users_not_synced"  # a retry kind: the directory was never filled
ATTRIBUTE_STEP = "attribute"  # call_events.step of the event that records an attribution

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who the recording goes to, as Siro's create body says it, and why."""

    method: AttributionMethod
    detail: str  # one sentence for call_events.message and `calls explain`
    siro_user_id: str | None = None
    user_email: str | None = None
    user_phone: str | None = None

    def body_fields(self) -> dict[str, str]:
        """The rep fields of :class:`~poller.domain.siro.RecordingCreate`, unset ones left out.

        A resolved user is sent as ``userId`` alone: Siro prefers it, and an email or phone
        beside it could only disagree.
        """
        fields = {
            "user_id": self.siro_user_id,
            "user_email": self.user_email,
            "user_phone": self.user_phone,
        }
        return {name: value for name, value in fields.items() if value is not None}


class UserDirectory(Protocol):
    """Siro's users as last synced, looked up by the keys a call's rep is matched on."""

    @property
    def synced_at(self) -> datetime | None:
        """When Siro's list was last copied; ``None`` if it never was."""
        ...

    def by_id(self, user_id: str) -> DirectoryUser | None: ...

    def by_email(self, email_lower: str) -> Sequence[DirectoryUser]:
        """Every user with this email (lower case), disabled and missing ones included."""
        ...

    def by_phone(self, e164: str) -> Sequence[DirectoryUser]:
        """Every user with this E.164 phone number, disabled and missing ones included."""
        ...

    def __len__(self) -> int: ...


class InMemoryUserDirectory:
    """A :class:`UserDirectory` over a snapshot of users, indexed once."""

    def __init__(
        self, users: Iterable[DirectoryUser] = (), *, synced_at: datetime | None = None
    ) -> None:
        self._synced_at = synced_at
        self._by_id: dict[str, DirectoryUser] = {}
        self._by_email: defaultdict[str, list[DirectoryUser]] = defaultdict(list)
        self._by_phone: defaultdict[str, list[DirectoryUser]] = defaultdict(list)
        for user in sorted(users, key=lambda u: u.id):
            self._by_id[user.id] = user
            if user.email_lower:
                self._by_email[user.email_lower].append(user)
            if user.phone_e164:
                self._by_phone[user.phone_e164].append(user)

    @property
    def synced_at(self) -> datetime | None:
        return self._synced_at

    def by_id(self, user_id: str) -> DirectoryUser | None:
        return self._by_id.get(user_id)

    def by_email(self, email_lower: str) -> Sequence[DirectoryUser]:
        return tuple(self._by_email.get(email_lower, ()))

    def by_phone(self, e164: str) -> Sequence[DirectoryUser]:
        return tuple(self._by_phone.get(e164, ()))

    def __len__(self) -> int:
        return len(self._by_id)


def directory_user(user: SiroUser, synced_at: datetime, default_region: str) -> DirectoryUser:
    """A listed Siro user as a ``siro_users`` row, with its lookup keys normalised."""
    return DirectoryUser(
        id=user.id,
        email=user.email,
        email_lower=normalise_email(user.email),
        phone_number=user.phone_number,
        phone_e164=to_e164(user.phone_number, default_region),
        first_name=user.first_name,
        last_name=user.last_name,
        external_id=user.external_id,
        organization_id=user.organization_id,
        disabled=user.disabled,
        synced_at=synced_at,
    )


@dataclass(frozen=True, slots=True)
class UsersSyncPlan:
    """How ``siro_users`` changes for one listing; every store applies the same plan."""

    upserts: tuple[DirectoryUser, ...]  # each listed user as its row must read afterwards
    newly_missing: tuple[str, ...]  # ids to mark missing_since = now
    result: UsersSyncResult


def plan_users_sync(
    existing: Mapping[str, DirectoryUser], listed: Iterable[DirectoryUser], now: datetime
) -> UsersSyncPlan:
    """Compare Siro's listing at ``now`` with the rows ``existing`` (by id)."""
    latest = {user.id: user for user in listed}  # of a user listed twice, the last sighting
    added = updated = returned = 0
    for user_id, user in latest.items():
        known = existing.get(user_id)
        if known is None:
            added += 1
        elif known.missing_since is not None:
            returned += 1
        elif not known.same_profile(user):
            updated += 1
    newly_missing = tuple(
        sorted(
            user_id
            for user_id, known in existing.items()
            if user_id not in latest and known.missing_since is None
        )
    )
    upserts = tuple(
        replace(user, synced_at=now, missing_since=None) for _, user in sorted(latest.items())
    )
    return UsersSyncPlan(
        upserts=upserts,
        newly_missing=newly_missing,
        result=UsersSyncResult(
            listed=len(latest),
            added=added,
            updated=updated,
            returned=returned,
            missing=len(newly_missing),
            disabled=sum(1 for user in latest.values() if user.disabled),
        ),
    )


def snapshot_directory(users: Iterable[DirectoryUser]) -> InMemoryUserDirectory:
    """A directory over stored rows; synced when the last sync left any row."""
    rows = list(users)
    synced = [user.synced_at for user in rows if user.synced_at is not None]
    return InMemoryUserDirectory(rows, synced_at=max(synced, default=None))


def normalise_email(raw: str | None) -> str | None:
    """An email in the form lookups use (trimmed, lower case), or ``None`` if it is none."""
    if raw is None:
        return None
    email = raw.strip().lower()
    return email if _EMAIL.match(email) else None


def normalise_email_keys(mapping: Mapping[str, str]) -> dict[str, str]:
    """``[siro.rep_map] email`` with lower-case keys; raises ``ValueError`` naming a bad key."""
    return _normalised_keys(mapping, normalise_email, "is not an email address")


def normalise_phone_keys(mapping: Mapping[str, str], default_region: str) -> dict[str, str]:
    """``[siro.rep_map] phone`` with E.164 keys; raises ``ValueError`` naming a bad key."""
    return _normalised_keys(
        mapping,
        lambda raw: to_e164(raw, default_region),
        f"is not a phone number (siro.phone_default_region is {default_region})",
    )


def _normalised_keys(
    mapping: Mapping[str, str], normalise: _Normaliser, problem: str
) -> dict[str, str]:
    result: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for key, user_id in mapping.items():
        normal = normalise(key)
        if normal is None:
            raise ValueError(f"{key!r} {problem}")
        if normal in result and result[normal] != user_id:
            raise ValueError(
                f"{spelled[normal]!r} and {key!r} are the same rep ({normal}) mapped to "
                f"different users, {result[normal]!r} and {user_id!r}"
            )
        result[normal] = user_id
        spelled.setdefault(normal, key)
    return result


class _Normaliser(Protocol):
    def __call__(self, raw: str, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RepRules:
    """How reps are resolved: ``[siro.rep_map]``, the phone region, ``require_known_rep``.

    The email keys are lower case and the phone keys E.164, as
    :func:`poller.wiring.rep_rules_from_settings` (and the config validation before it) makes them.
    """

    by_provider_id: Mapping[str, str] = field(default_factory=dict)
    by_extension: Mapping[str, str] = field(default_factory=dict)
    by_email: Mapping[str, str] = field(default_factory=dict)
    by_phone: Mapping[str, str] = field(default_factory=dict)
    default_region: str = DEFAULT_PHONE_REGION
    require_known_rep: bool = False


@dataclass(frozen=True, slots=True)
class RepIdentity:
    """What a call says about its rep, raw and normalised."""

    provider_id: str | None
    extension: str | None
    email: str | None  # normalised; None when absent or not an email
    phone: str | None  # E.164; None when absent or not a phone number
    raw_email: str | None
    raw_phone: str | None

    @classmethod
    def of(cls, call: Call, default_region: str) -> RepIdentity:
        def text(value: str | None) -> str | None:
            if value is None:
                return None
            return value.strip() or None

        return cls(
            provider_id=text(call.rep_provider_id),
            extension=text(call.rep_extension),
            email=normalise_email(call.rep_email),
            phone=to_e164(call.rep_phone, default_region),
            raw_email=text(call.rep_email),
            raw_phone=text(call.rep_phone),
        )

    @property
    def names_anyone(self) -> bool:
        return any((self.provider_id, self.extension, self.raw_email, self.raw_phone))

    def describe(self) -> str:
        parts = [
            f"{name} {value!r}"
            for name, value in (
                ("provider id", self.provider_id),
                ("extension", self.extension),
                ("email", self.raw_email),
                ("phone", self.raw_phone),
            )
            if value is not None
        ]
        return ", ".join(parts) or "nothing"


def attribute(call: Call, directory: UserDirectory, rules: RepRules) -> Attribution:
    """Resolve the call's rep; raises ``StepFailure`` (skip or retry) when it must not go up.

    See the module documentation for the rules, their order and the disabled-user rule.
    """
    if directory.synced_at is None:
        raise StepFailure.retry(
            USERS_NOT_SYNCED,
            "Siro's users have never been synced, so the rep cannot be resolved yet; run "
            "`siro-poller siro sync-users` or wait for the daemon's sync",
        )
    rep = RepIdentity.of(call, rules.default_region)
    mapped = _explicit_mapping(rep, directory, rules)
    if mapped is not None:
        return mapped
    if rep.email is not None:
        found = _directory_match(
            directory.by_email(rep.email), AttributionMethod.SIRO_EMAIL, f"email {rep.email}"
        )
        if found is not None:
            return found
    if rep.phone is not None:
        found = _directory_match(
            directory.by_phone(rep.phone), AttributionMethod.SIRO_PHONE, f"phone {rep.phone}"
        )
        if found is not None:
            return found
    return _fallback(rep, rules)


def _explicit_mapping(
    rep: RepIdentity, directory: UserDirectory, rules: RepRules
) -> Attribution | None:
    candidates = (
        (AttributionMethod.MAP_PROVIDER_ID, "provider_id", "provider id", rep.provider_id),
        (AttributionMethod.MAP_EXTENSION, "extension", "extension", rep.extension),
        (AttributionMethod.MAP_EMAIL, "email", "email", rep.email),
        (AttributionMethod.MAP_PHONE, "phone", "phone", rep.phone),
    )
    maps = {
        "provider_id": rules.by_provider_id,
        "extension": rules.by_extension,
        "email": rules.by_email,
        "phone": rules.by_phone,
    }
    for method, key, shown, value in candidates:
        if value is None or value not in maps[key]:
            continue
        user_id = maps[key][value]
        user = directory.by_id(user_id)
        detail = f"siro.rep_map.{key} maps the rep's {shown} {value!r} to Siro user "
        detail += user.label if user is not None else user_id
        if user is None:
            if rules.require_known_rep:
                raise StepFailure.skip(
                    RepSkipReason.UNKNOWN_REP,
                    f"{detail}, which is not among Siro's users (siro.require_known_rep is on); "
                    "check the id with `siro-poller siro users`",
                )
            detail += "; warning: that id is not among Siro's users as last synced"
        elif not user.active:
            detail += f"; warning: Siro lists that user as {user.status}"
        return Attribution(method, detail, siro_user_id=user_id)
    return None


def _directory_match(
    users: Sequence[DirectoryUser], method: AttributionMethod, key: str
) -> Attribution | None:
    if not users:
        return None
    active = [user for user in users if user.active]
    if len(active) == 1:
        return Attribution(
            method, f"the rep's {key} belongs to Siro user {active[0].label}", active[0].id
        )
    if len(active) > 1:
        labels = ", ".join(user.label for user in active)
        raise StepFailure.skip(
            RepSkipReason.AMBIGUOUS_REP,
            f"the rep's {key} belongs to several Siro users ({labels}); name the right one "
            "in siro.rep_map, then `siro-poller calls retry` the call",
        )
    labels = ", ".join(f"{user.label}, {user.status}" for user in users)
    raise StepFailure.skip(
        RepSkipReason.REP_DISABLED,
        f"the rep's {key} belongs to Siro user {labels}; the call is not given to anyone "
        "else. To upload it, map the rep in siro.rep_map, then `siro-poller calls retry` it",
    )


def _fallback(rep: RepIdentity, rules: RepRules) -> Attribution:
    if rep.email is None and rep.phone is None:
        raise StepFailure.skip(RepSkipReason.NO_REP_IDENTITY, _no_identity_message(rep))
    matched_on = " or ".join(
        f"{name} {value}" for name, value in (("email", rep.email), ("phone", rep.phone)) if value
    )
    if rules.require_known_rep:
        raise StepFailure.skip(
            RepSkipReason.UNKNOWN_REP,
            f"no Siro user has the rep's {matched_on}, and siro.require_known_rep is on; add "
            "the rep to Siro (then `siro-poller siro sync-users`) or map it in siro.rep_map",
        )
    sent = " and ".join(
        name for name, value in (("userEmail", rep.email), ("userPhone", rep.phone)) if value
    )
    method = AttributionMethod.FALLBACK_EMAIL if rep.email else AttributionMethod.FALLBACK_PHONE
    return Attribution(
        method,
        f"no Siro user has the rep's {matched_on}; sent as {sent} for Siro to match",
        user_email=rep.email,
        user_phone=rep.phone,
    )


def _no_identity_message(rep: RepIdentity) -> str:
    if not rep.names_anyone:
        return (
            "the call names no rep (no email, phone, provider user id or extension), and Siro "
            "does not ingest a recording without one"
        )
    unusable = []
    if rep.raw_email is not None:
        unusable.append(f"{rep.raw_email!r} is not an email address")
    if rep.raw_phone is not None:
        unusable.append(f"{rep.raw_phone!r} is not a full phone number")
    if rep.provider_id is not None or rep.extension is not None:
        unusable.append("siro.rep_map maps neither its provider id nor its extension")
    return (
        f"the call names its rep only by {rep.describe()}: {'; '.join(unusable)}. Siro needs "
        "a user id, email or phone; map the rep in siro.rep_map, then `siro-poller calls retry`"
    )
