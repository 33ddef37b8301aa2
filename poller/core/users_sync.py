"""Copy Siro's users into ``siro_users``: on start and every ``siro.users_refresh_minutes``.

One function, so the daemon's schedule and ``siro-poller siro sync-users`` do the same thing.
A sync either replaces the table's picture of Siro in one transaction or changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from poller.domain.attribution import directory_user
from poller.domain.records import UsersSyncResult
from poller.ports.siro import SiroError, SiroPort
from poller.ports.store import UserDirectoryStore


class UsersSyncError(Exception):
    """Siro's users could not be copied; ``siro_users`` is as it was."""


def sync_users(
    siro: SiroPort, store: UserDirectoryStore, now: datetime, *, default_region: str
) -> UsersSyncResult:
    """List every page of Siro's users and make ``siro_users`` match, keeping the ones gone.

    ``default_region`` is ``siro.phone_default_region``: the country of users' phone numbers
    written without one. Raises :class:`UsersSyncError` when the list cannot be read, or comes
    back empty while active users are known (an organization always has a user; an empty
    answer would otherwise mark everyone as gone and stop attribution).
    """
    try:
        listed = siro.list_users()
    except SiroError as exc:
        message = f"could not list Siro's users, siro_users is unchanged: {exc}"
        raise UsersSyncError(message) from exc
    if not listed:
        known = sum(1 for user in store.siro_users() if user.active)
        if known:
            raise UsersSyncError(
                f"Siro listed no users at all, while {known} were active at the last sync; "
                "siro_users is unchanged"
            )
    # The caller says what came of it, once: the daemon in its log, `siro sync-users` on stdout.
    return store.replace_siro_users(
        [directory_user(user, now, default_region) for user in listed], now
    )
