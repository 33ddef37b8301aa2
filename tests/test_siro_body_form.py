"""The signed-url body form, learned from any 422 that names a size key or organizationId.

Measured before: Siro took the quickstart's form (``fileSizeInBytes``) and refused the
reference form with a 422 whose issue code is ``custom``; every call failed as
``siro_signed_url_rejected`` and the other form was never tried.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.domain.siro import AudioFormat
from poller.ports.siro import SiroPermanentError
from poller.simulators.siro_server import FakeSiro, Fault
from tests.siro_settings import siro_settings

LEARNED = "Siro takes the signed-url body as"
# Siro's answer as measured, word for word.
MEASURED_REFUSAL = {
    "name": "ZodError",
    "issues": [
        {
            "code": "custom",
            "path": ["fileSize"],
            "message": "Unrecognized key(s) in object: ['fileSize']",
        }
    ],
}


def zod(*issues: dict[str, Any]) -> Fault:
    return Fault.http(422, {"name": "ZodError", "issues": list(issues)})


def bodies(siro: FakeSiro) -> list[dict[str, Any]]:
    return [r.json for r in siro.state.requests_for("signed-url")]


def learned_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(LEARNED)]


def test_the_measured_custom_code_refusal_switches_to_the_quickstart_size_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="poller.adapters.siro")
    with FakeSiro(signed_url_size_field="fileSizeInBytes", zod_key_issues="custom") as siro:
        client = SiroHttpClient(siro_settings(siro))

        client.request_upload(AudioFormat.MP3, 2048)
        client.request_upload(AudioFormat.MP3, 4096)

        # The fake's refusal is the measured one, issue for issue (plus the missing key).
        assert bodies(siro) == [
            {"fileType": "mp3", "fileSize": 2048},
            {"fileType": "mp3", "fileSizeInBytes": 2048},
            {"fileType": "mp3", "fileSizeInBytes": 4096},
        ]
    assert learned_lines(caplog) == [
        "Siro takes the signed-url body as {fileType, fileSizeInBytes}, not {fileType, fileSize} "
        "(it answered: fileSize: Unrecognized key(s) in object: ['fileSize']; fileSizeInBytes: "
        "Required); using {fileType, fileSizeInBytes} from now on"
    ]


@pytest.mark.parametrize(
    "issue",
    [
        pytest.param(MEASURED_REFUSAL["issues"][0], id="path"),
        pytest.param(
            {"code": "custom", "path": [], "keys": ["fileSize"], "message": "Bad body"},
            id="keys",
        ),
        pytest.param(
            {"code": "custom", "path": [], "message": "Unrecognized key(s) in object: 'fileSize'"},
            id="message",
        ),
        pytest.param(
            {"code": "custom", "path": [], "message": "fileSizeInBytes is required"},
            id="message-names-the-other-key",
        ),
    ],
)
def test_a_422_naming_the_size_key_anywhere_with_any_code_switches_the_form(
    issue: dict[str, Any],
) -> None:
    with FakeSiro(signed_url_size_field="fileSizeInBytes") as siro:
        siro.state.fail_next("signed-url", zod(issue))
        client = SiroHttpClient(siro_settings(siro))

        signed = client.request_upload(AudioFormat.WAV, 100)

        assert signed.upload_url.startswith(siro.url)
        assert [list(body) for body in bodies(siro)] == [
            ["fileType", "fileSize"],
            ["fileType", "fileSizeInBytes"],
        ]


def test_the_quickstart_s_whole_form_is_learned_organization_id_included() -> None:
    """A Siro in the quickstart's form: fileSizeInBytes and a required organizationId."""
    with FakeSiro(
        signed_url_size_field="fileSizeInBytes",
        signed_url_requires_organization_id=True,
        zod_key_issues="custom",
    ) as siro:
        client = SiroHttpClient(siro_settings(siro))  # no organization_id configured

        client.request_upload(AudioFormat.MP3, 100)
        client.request_upload(AudioFormat.MP3, 200)

        assert bodies(siro) == [
            {"fileType": "mp3", "fileSize": 100},
            {"fileType": "mp3", "fileSizeInBytes": 100, "organizationId": "org-fake"},
            {"fileType": "mp3", "fileSizeInBytes": 200, "organizationId": "org-fake"},
        ]
        # The organization the token belongs to, looked up once.
        assert len(siro.state.requests_for("caller-identity")) == 1


def test_an_organization_id_siro_refuses_with_a_custom_code_is_dropped() -> None:
    with FakeSiro(zod_key_issues="custom") as siro:  # the reference form, nothing else
        client = SiroHttpClient(siro_settings(siro, organization_id="org-fake"))

        client.request_upload(AudioFormat.MP3, 100)
        client.request_upload(AudioFormat.MP3, 200)

        assert bodies(siro) == [
            {"fileType": "mp3", "fileSize": 100, "organizationId": "org-fake"},
            {"fileType": "mp3", "fileSize": 100},
            {"fileType": "mp3", "fileSize": 200},
        ]


def test_a_value_siro_refuses_fails_the_call_and_never_flips_the_learned_form() -> None:
    with FakeSiro(signed_url_size_field="fileSizeInBytes", zod_key_issues="custom") as siro:
        client = SiroHttpClient(siro_settings(siro))
        client.request_upload(AudioFormat.MP3, 100)  # learns fileSizeInBytes
        too_big = {"code": "custom", "path": ["fileSizeInBytes"], "message": "File too large"}
        siro.state.fail_next("signed-url", zod(too_big))

        with pytest.raises(SiroPermanentError) as caught:
            client.request_upload(AudioFormat.MP3, 10**10)
        client.request_upload(AudioFormat.MP3, 300)

        assert str(caught.value).startswith(
            "Siro signed-url: HTTP 422: fileSizeInBytes: File too large; the other documented "
            "body {fileType, fileSize} was refused too"
        )
        assert caught.value.issues[0].path == ("fileSizeInBytes",)
        assert [list(body) for body in bodies(siro)][2:] == [
            ["fileType", "fileSizeInBytes"],  # refused: too big
            ["fileType", "fileSize"],  # the other form, tried once: refused too
            ["fileType", "fileSizeInBytes"],  # the next call: the form that works
        ]


@pytest.mark.parametrize("pinned", ["fileSize", "fileSizeInBytes"])
def test_a_pinned_size_key_is_sent_from_the_first_request_on(pinned: str) -> None:
    with FakeSiro(signed_url_size_field=pinned, zod_key_issues="custom") as siro:
        client = SiroHttpClient(siro_settings(siro, signed_url_size_field=pinned))

        client.request_upload(AudioFormat.MP3, 100)

        assert bodies(siro) == [{"fileType": "mp3", pinned: 100}]


def test_a_pinned_size_key_is_not_switched_and_the_error_names_the_setting() -> None:
    with FakeSiro(signed_url_size_field="fileSizeInBytes", zod_key_issues="custom") as siro:
        client = SiroHttpClient(siro_settings(siro, signed_url_size_field="fileSize"))

        with pytest.raises(SiroPermanentError, match=r"siro\.signed_url_size_field pins") as caught:
            client.request_upload(AudioFormat.MP3, 100)

        assert 'set it to "fileSizeInBytes" or to "auto"' in str(caught.value)
        assert bodies(siro) == [{"fileType": "mp3", "fileSize": 100}]


def test_concurrent_callers_learn_the_form_together_and_it_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="poller.adapters.siro")
    with FakeSiro(signed_url_size_field="fileSizeInBytes", zod_key_issues="custom") as siro:
        client = SiroHttpClient(siro_settings(siro))
        start = threading.Barrier(8)

        def ask() -> str:
            start.wait()
            return client.request_upload(AudioFormat.MP3, 10).upload_url

        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(lambda _: ask(), range(8)))
        client.request_upload(AudioFormat.MP3, 10)

        assert len(set(urls)) == 8  # every caller got its signed URL
        assert "fileSizeInBytes" in bodies(siro)[-1]
        refused = [body for body in bodies(siro) if "fileSize" in body]
        assert 1 <= len(refused) <= 8  # each caller was refused at most once
    assert len(learned_lines(caplog)) == 1
