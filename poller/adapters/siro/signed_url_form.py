"""Which of the documented signed-url bodies this Siro takes, learned from its 422 answers.

Siro's documents disagree. The API reference sends ``{fileType, fileSize}`` and forbids any
other key; the phone quickstart (and Siro's own skill file) send ``{fileType, fileSizeInBytes,
organizationId}``. That is two choices: the size key, and whether ``organizationId`` goes along.

The rule, for every thread at once:

- A 422 that names a size key or ``organizationId`` (in an issue's ``path``, its ``keys`` or
  its ``message``, whatever the issue's ``code``: Siro has answered with ``custom`` where Zod's
  standard is ``unrecognized_keys``) is answered by trying the body with the named choices
  switched.
- The switched form is remembered only once Siro accepts it, and that is logged once.
- If the switched form is refused over a choice already switched, the form stays as it was and
  the call fails with the first refusal. So a problem with a value (a size Siro finds too big)
  never flips the form back and forth.

``siro.signed_url_size_field`` pins the size key; then only ``organizationId`` is learned.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from poller.domain.siro import AudioFormat
from poller.ports.siro import SiroPermanentError, ZodIssue

logger = logging.getLogger(__name__)

SIZE_FIELDS = ("fileSize", "fileSizeInBytes")  # API reference, then phone quickstart
ORGANIZATION_FIELD = "organizationId"
# Whole words only: "fileSize" inside "fileSizeInBytes" names the same choice anyway, but
# "organizationIds" or "maxFileSize" would not be these keys.
_NAMED_IN_MESSAGE = re.compile(r"(?<![A-Za-z0-9_])(fileSizeInBytes|fileSize|organizationId)\b")


class Choice(StrEnum):
    """One of the two ways the documented bodies differ."""

    SIZE_FIELD = "size key"
    ORGANIZATION_ID = "organizationId"


@dataclass(frozen=True, slots=True)
class BodyForm:
    """One signed-url body form: its size key, and whether organizationId is sent."""

    size_field: str
    with_organization_id: bool

    def body(
        self, file_type: AudioFormat, size_bytes: int, organization_id: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"fileType": file_type.value, self.size_field: size_bytes}
        if self.with_organization_id and organization_id:
            body[ORGANIZATION_FIELD] = organization_id
        return body

    def switched(self, choices: Iterable[Choice]) -> BodyForm:
        form = self
        for choice in choices:
            if choice == Choice.SIZE_FIELD:
                other = SIZE_FIELDS[1] if form.size_field == SIZE_FIELDS[0] else SIZE_FIELDS[0]
                form = BodyForm(other, form.with_organization_id)
            else:
                form = BodyForm(form.size_field, not form.with_organization_id)
        return form

    def describe(self) -> str:
        keys = ["fileType", self.size_field]
        if self.with_organization_id:
            keys.append(ORGANIZATION_FIELD)
        return "{" + ", ".join(keys) + "}"


def choices_named(issues: Iterable[ZodIssue]) -> frozenset[Choice]:
    """The choices a 422's issues name, in their path, keys or message, whatever their code."""
    named: set[str] = set()
    for issue in issues:
        named.update(str(part) for part in issue.path)
        named.update(issue.keys)
        named.update(_NAMED_IN_MESSAGE.findall(issue.message))
    choices = set()
    if named & set(SIZE_FIELDS):
        choices.add(Choice.SIZE_FIELD)
    if ORGANIZATION_FIELD in named:
        choices.add(Choice.ORGANIZATION_ID)
    return frozenset(choices)


class SignedUrlForms:
    """The form this Siro takes, shared by every thread; changed only by :meth:`accepted`."""

    def __init__(self, *, pinned_size_field: str | None, with_organization_id: bool) -> None:
        self._pinned_size_field = pinned_size_field
        self._lock = threading.Lock()
        self._form = BodyForm(pinned_size_field or SIZE_FIELDS[0], with_organization_id)

    def current(self) -> BodyForm:
        with self._lock:
            return self._form

    def learnable(self, named: frozenset[Choice]) -> frozenset[Choice]:
        """Of the choices a refusal named, those this client may switch."""
        if self._pinned_size_field is not None:
            return named - {Choice.SIZE_FIELD}
        return named

    def explain(self, refusal: SiroPermanentError) -> SiroPermanentError:
        """The refusal, with a word on the pinned size key if the refusal was about it."""
        if self._pinned_size_field is None or Choice.SIZE_FIELD not in choices_named(
            refusal.issues
        ):
            return refusal
        pinned = self._pinned_size_field
        other = SIZE_FIELDS[1] if pinned == SIZE_FIELDS[0] else SIZE_FIELDS[0]
        return SiroPermanentError(
            f'{refusal}; siro.signed_url_size_field pins the size key to "{pinned}": set it to '
            f'"{other}" or to "auto"',
            step=refusal.step,
            http_status=refusal.http_status,
            issues=refusal.issues,
        )

    def accepted(
        self, tried_first: BodyForm, form: BodyForm, refusal: SiroPermanentError | None
    ) -> None:
        """Siro took ``form`` after refusing ``tried_first``: every thread uses it from now on."""
        if form == tried_first:
            return  # the form in use worked; another thread's lesson is not undone here
        with self._lock:
            if self._form == form:
                return  # another thread learned the same already, and said so
            self._form = form
        reason = "; ".join(issue.describe() for issue in refusal.issues) if refusal else ""
        logger.info(
            "Siro takes the signed-url body as %s, not %s (it answered: %s); using %s from now on",
            form.describe(),
            tried_first.describe(),
            reason or "HTTP 422",
            form.describe(),
        )


def refused_too(
    first: SiroPermanentError, form: BodyForm, second: SiroPermanentError
) -> SiroPermanentError:
    """The call's error when the other documented form was refused as well: the first reason."""
    second_reason = "; ".join(issue.describe() for issue in second.issues) or str(second)
    return SiroPermanentError(
        f"{first}; the other documented body {form.describe()} was refused too ({second_reason})",
        step=first.step,
        http_status=first.http_status,
        issues=first.issues,
    )
