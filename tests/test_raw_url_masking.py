"""A stored call keeps no URL query value, whatever the vendor names its signed parameter, and
is still downloaded from the real URL.

Zoom was measured keeping a 30-minute recording token (``?jwt=``) in ``calls.raw``: a list of
secret parameter names always misses the next vendor's name, so every query value is masked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from sqlalchemy import text

from poller.adapters.sql.store import SqlStore
from poller.domain.ingest import ListedCall
from poller.simulators.zoom_server import ZoomPhone, recording_item, serve_zoom
from tests.provider_contract import T0, listed
from tests.test_provider_zoom import AUDIO, ZoomWorld
from tests.vendor_payloads.test_zoom import WINDOW, adapter, published

NOW = T0 + timedelta(hours=1)
QUEUE_RECORDINGS = "phone-call_queues-callQueueId-recordings_GET.json"


@pytest.fixture
def world() -> Iterator[ZoomWorld]:
    with ZoomWorld() as running:
        yield running


@pytest.mark.parametrize("parameter", ["jwt", "qz_grant", "X-Amz-Signature"])
def test_a_signed_zoom_url_is_stored_masked_and_downloaded_unmasked(
    world: ZoomWorld, sql_store: SqlStore, parameter: str
) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3.c2lnbmF0dXJl"
    signed = f"{world.plain_url}?{parameter}={secret}"
    item = recording_item("rec-signed", T0 + timedelta(minutes=1), download_url=signed)
    item["file_url"] = signed
    item["notes"] = {"links": [f"listen: {signed}"]}
    world.phone.add_recording(item)
    provider = world.provider()
    [record] = [r for page in listed(provider) for r in page.records]

    sql_store.ingest_page("zoom", [ListedCall(record)], NOW)

    with sql_store.engine.connect() as connection:
        raw, recording_url = connection.execute(
            text("SELECT raw, recording_url FROM calls WHERE provider_call_id = 'rec-signed'")
        ).one()
    stored = raw if isinstance(raw, str) else json.dumps(raw)
    assert secret not in stored and secret not in str(recording_url)
    assert f"{parameter}=[REDACTED]" in stored
    [call] = sql_store.find_calls("rec-signed")
    assert call.raw is not None and call.raw["download_url"].startswith(world.plain_url)
    # The download reads the recording again for its real URL: the stored copy is for audit.
    request = provider.resolve_download(call)
    assert request.url == signed
    assert (
        requests.get(request.url, headers=request.headers_for(request.url), timeout=5).content
        == AUDIO
    )


def _published_jwt() -> tuple[dict[str, object], str]:
    """Zoom's published call-queue recording, and the jwt its download_url carries."""
    [item] = published(QUEUE_RECORDINGS)["recordings"]
    query = dict(parse_qsl(urlsplit(item["download_url"]).query))
    return copy.deepcopy(item), query["jwt"]


def test_zooms_published_queue_recording_is_stored_without_its_jwt(sql_store: SqlStore) -> None:
    item, jwt = _published_jwt()
    # The example's date_time is a placeholder Zoom's generator left; a real one maps.
    item["date_time"] = "2022-03-08T03:15:09Z"
    zoom = ZoomPhone()
    with serve_zoom(zoom):
        zoom.users.append(published("phone-users_GET.json")["users"][0])
        zoom.add_recording(item)
        records = [r for page in adapter(zoom).list_window(WINDOW) for r in page.records]
    [record] = records

    sql_store.ingest_page("zoom", [ListedCall(record)], NOW)

    [call] = sql_store.find_calls(record.provider_call_id)
    assert jwt not in json.dumps(call.raw) and jwt not in str(call.recording_url)
    assert "jwt=[REDACTED]" in str(call.raw and call.raw["download_url"])
    assert str(call.recording_url).startswith("https://file.zoomdev.us/file?")


def test_zooms_published_queue_recording_kept_unreadable_keeps_no_jwt(
    sql_store: SqlStore,
) -> None:
    # As published (its date_time does not parse) the record is kept as unmapped, raw and all.
    item, jwt = _published_jwt()
    zoom = ZoomPhone()
    with serve_zoom(zoom):
        with zoom.lock:
            zoom.recordings[str(item["id"])] = (WINDOW.start + timedelta(hours=1), item)
        [page] = list(adapter(zoom).list_window(WINDOW))
    [bad] = page.malformed

    assert bad.raw is not None and jwt not in bad.raw and "jwt=[REDACTED]" in bad.raw
