"""The typed Siro vocabulary: what a create body may hold, and the headers a PUT must carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from poller.adapters.http import parse_retry_after
from poller.domain.siro import AudioFormat, CrmObject, RecordingCreate, SignedUpload

DOWNLOAD_URL = "https://storage.example/b/o?X-Goog-Signature=abc123"


def body(**fields: object) -> RecordingCreate:
    return RecordingCreate(file_url=DOWNLOAD_URL, file_type=AudioFormat.MP3, **fields)


@pytest.mark.parametrize(
    ("audio_format", "mime_type"),
    [
        (AudioFormat.MP3, "audio/mpeg"),
        (AudioFormat.WAV, "audio/wav"),
        (AudioFormat.AAC, "audio/aac"),
    ],
)
def test_each_format_has_the_mime_type_siro_signs_with(
    audio_format: AudioFormat, mime_type: str
) -> None:
    assert audio_format.mime_type == mime_type


def test_create_body_uses_siro_field_names_and_leaves_out_empty_fields() -> None:
    created = body(
        title="Inbound call with +1 555 0100 [call-42]",
        user_id="user-1",
        user_email="  ",
        contact_name="",
        conversation_type=None,
        date_created=datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=1))),
    )

    assert created.to_json() == {
        "fileUrl": DOWNLOAD_URL,
        "fileType": "mp3",
        "title": "Inbound call with +1 555 0100 [call-42]",
        "userId": "user-1",
        "dateCreated": "2026-03-02T09:00:00Z",
    }


@pytest.mark.parametrize("rep", [{"user_id": "u"}, {"user_email": "a@b.c"}, {"user_phone": "+1"}])
def test_any_one_rep_field_is_enough(rep: dict[str, str]) -> None:
    assert body(**rep).to_json().keys() >= {"fileUrl", "fileType"}


@pytest.mark.parametrize("rep", [{}, {"user_id": "", "user_email": " ", "user_phone": None}])
def test_a_recording_without_a_rep_is_refused_before_sending(rep: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="at least one of userId, userEmail or userPhone"):
        body(**rep)


def test_crm_objects_travel_with_their_integration_connection() -> None:
    linked = body(
        user_id="u",
        integration_connection_id="conn-1",
        crm_objects=[CrmObject(object_type="Opportunity", object_id="006XYZ")],
    )

    assert linked.to_json()["crmObjects"] == [{"objectType": "Opportunity", "objectId": "006XYZ"}]
    assert linked.to_json()["integrationConnectionId"] == "conn-1"


@pytest.mark.parametrize(
    "half",
    [
        {"integration_connection_id": "conn-1"},
        {"crm_objects": [CrmObject(object_type="Account", object_id="1")]},
        {"integration_connection_id": "conn-1", "crm_objects": []},
    ],
)
def test_half_a_crm_link_is_refused_before_sending(half: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="integrationConnectionId and crmObjects go together"):
        body(user_id="u", **half)


@pytest.mark.parametrize(
    "fields",
    [
        {"fileType": "m4a"},  # not a format Siro takes
        {"customerPhone": "+15550100"},  # a field from an older version of the API
    ],
)
def test_unknown_fields_and_formats_are_refused(fields: dict[str, str]) -> None:
    valid = {"fileUrl": DOWNLOAD_URL, "fileType": "mp3", "userId": "u"}

    with pytest.raises(ValidationError):
        RecordingCreate.model_validate(valid | fields)


def test_put_headers_are_exactly_the_signed_ones_when_siro_names_them() -> None:
    upload = SignedUpload(
        upload_url="https://u",
        download_url="https://d",
        expires_at=None,
        upload_headers={"Content-Type": "audio/mpeg", "x-goog-content-length-range": "0,10"},
    )

    assert upload.put_headers(AudioFormat.WAV, 99) == {
        "Content-Type": "audio/mpeg",
        "x-goog-content-length-range": "0,10",
    }


def test_put_headers_follow_the_quickstart_when_siro_names_none() -> None:
    upload = SignedUpload(upload_url="https://u", download_url="https://d", expires_at=None)

    assert upload.put_headers(AudioFormat.AAC, 1234) == {
        "Content-Type": "audio/aac",
        "x-goog-content-length-range": "0,1234",
    }


def test_signed_upload_repr_hides_both_urls() -> None:
    upload = SignedUpload(
        upload_url="https://s/o?X-Goog-Signature=up-secret",
        download_url="https://s/o?X-Goog-Signature=down-secret",
        expires_at=None,
    )

    assert "secret" not in repr(upload)


def test_signed_upload_expiry_with_a_safety_margin() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    upload = SignedUpload("https://u", "https://d", expires_at=now + timedelta(seconds=20))

    assert not upload.expired(now)
    assert upload.expired(now, margin=timedelta(seconds=30))
    assert upload.expired(now + timedelta(seconds=20))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0.25", 0.25),
        ("-3", None),  # negative: ignored rather than read as "now"
        ("Mon, 02 Mar 2026 09:01:30 GMT", 90.0),
        ("Mon, 02 Mar 2026 08:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_as_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    assert parse_retry_after(header, now) == seconds
