"""What goes to Siro for one call: the rep, the CRM link, the contact and the metadata.

One function decides it, so the worker's upload and ``calls explain`` agree on every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from poller.domain.attribution import Attribution, RepRules, UserDirectory, attribute
from poller.domain.crm import Contact, CrmDecision, CrmRules, contact_of, decide_crm_link
from poller.domain.failures import StepFailure
from poller.domain.records import Call
from poller.domain.siro import AudioFormat, RecordingCreate
from poller.domain.title import render_title


@dataclass(frozen=True, slots=True)
class UploadRules:
    """The settings that shape every create body."""

    rep: RepRules
    crm: CrmRules
    title_template: str
    organization_id: str | None = None
    conversation_type: str | None = None


@dataclass(frozen=True, slots=True)
class UploadPlan:
    title: str
    attribution: Attribution
    crm: CrmDecision
    contact: Contact
    fields: dict[str, Any]  # RecordingCreate's fields, all but the file URL

    def recording(self, file_url: str) -> RecordingCreate:
        return RecordingCreate(**self.fields, file_url=file_url)

    def audit_note(self) -> str:
        """The sentence written to the call's ``attribute`` event."""
        return f"{self.attribution.detail}; CRM: {self.crm.detail}"


def plan_upload(
    call: Call,
    audio_format: AudioFormat,
    *,
    directory: UserDirectory,
    rules: UploadRules,
    connection_id: str | None,
) -> UploadPlan:
    """Decide the create body for ``call``; raises ``StepFailure`` when it must not go up."""
    attribution = attribute(call, directory, rules.rep)
    crm = decide_crm_link(call.raw, rules.crm, connection_id)
    contact = contact_of(call, rules.rep.default_region)
    title = render_title(rules.title_template, call)
    fields: dict[str, Any] = {
        "file_type": audio_format,
        "title": title,
        **attribution.body_fields(),
        **contact.body_fields(),
        **(crm.link.body_fields() if crm.link else {}),
        "organization_id": rules.organization_id,
        "conversation_type": rules.conversation_type,
        "date_created": call.started_at,
    }
    try:
        RecordingCreate(**fields, file_url="https://siro.invalid/check")
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise StepFailure.fail(
            "invalid_recording", f"Siro would refuse this recording: {problem}"
        ) from None
    return UploadPlan(title, attribution, crm, contact, fields)
