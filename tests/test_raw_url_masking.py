"""A stored call keeps no URL query value, whatever the vendor names its signed parameter, and
is still downloaded from the real URL.

Zoom was measured keeping a 30-minute recording token (``?jwt=``) in ``calls.raw``: a list of
secret parameter names always misses the next vendor's name, so every query value is masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from sqlalchemy import text

from poller.adapters.sql.store import SqlStore
from poller.domain.ingest import ListedCall
from poller.simulators.zoom_server import recording_item
from tests.provider_contract import T0, listed
from tests.test_provider_zoom import AUDIO, ZoomWorld

NOW = T0 + timedelta(hours=1)


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
