"""What each provider kind's demo serves: its simulator, the calls seeded in it, its config.

A scenario starts its phone-system simulator on 127.0.0.1, seeds calls that each show one
behaviour (the ``shows`` text printed next to the call's outcome), and returns the
``[provider]`` table that points the real adapter at the simulator. Reps named
``rep1..3@example.com`` (or with the phones ``+1555000000N``) are the Siro simulator's users;
``newhire@example.com`` is a rep Siro does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from poller.domain.states import CallState
from poller.simulators import outreach_server, webex_server
from poller.simulators.aircall_server import AircallSimulator, aircall_call, aircall_contact
from poller.simulators.audio import LOGIN_PAGE, aac_bytes, encoded, flac_bytes, mp3_bytes, wav_bytes
from poller.simulators.callrail_server import CallRailSimulator, callrail_call
from poller.simulators.cloudtalk_server import CloudTalkApi, cloudtalk_agent, cloudtalk_call
from poller.simulators.dialpad_server import DialpadServers, call_proto, recording_detail
from poller.simulators.eightbyeight_server import EightByEightSimulator, call_recording
from poller.simulators.freshcaller_server import FreshcallerSimulator, freshcaller_call
from poller.simulators.justcall_server import ACCOUNT_ZONE, JustCallSimulator, justcall_call
from poller.simulators.kit import serve as serve_kit
from poller.simulators.outreach_server import OutreachSimulator, outreach_call
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.quo_server import QuoSimulator, quo_call
from poller.simulators.ringcentral_server import RingCentralState, call_record, recording_of
from poller.simulators.ringcentral_server import serve as serve_ringcentral
from poller.simulators.salesloft_server import SalesloftSimulator, salesloft_cdr
from poller.simulators.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    sid,
    twilio_call,
    twilio_recording,
)
from poller.simulators.twilio_server import serve as serve_twilio
from poller.simulators.vonage_server import CLIENT_ID as VONAGE_CLIENT_ID
from poller.simulators.vonage_server import CLIENT_SECRET as VONAGE_CLIENT_SECRET
from poller.simulators.vonage_server import PASSWORD as VONAGE_PASSWORD
from poller.simulators.vonage_server import USERNAME as VONAGE_USERNAME
from poller.simulators.vonage_server import VonageSimulator, company_recording
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    recording_item,
    serve_zoom,
)

UNKNOWN_REP = "newhire@example.com"
KNOWN_REP = "a rep Siro knows by email"
UNKNOWN_REP_SHOWS = "a rep Siro does not know: the upload names the rep, attribution falls back"


@dataclass(frozen=True)
class DemoCall:
    """One seeded call: the provider's id for it, what it shows, and the state it should end in."""

    call_id: str
    shows: str
    expected: CallState


@dataclass
class Seeded:
    """A running simulator: its ``[provider]`` table, its calls, and the late recording."""

    provider: dict[str, Any]
    calls: list[DemoCall]
    # The call whose recording appears only after the poller has listed it, and what makes it
    # appear: the demo runs it once the call's row exists.
    late_call_id: str | None = None
    late_recording: Callable[[], None] | None = None
    # Keys of the [siro] table the scenario needs besides the Siro simulator's (a rep_map).
    siro: dict[str, Any] = field(default_factory=dict)
    # The simulator's state, where its vendor sends webhook events (send_events_to, announce):
    # what `siro-poller simulate --events-to` adds fresh calls to and announces them from.
    events: object | None = None


Scenario = Callable[[ExitStack, datetime], Seeded]


def seeded_call(call_id: str, shows: str, audio: bytes) -> DemoCall:
    """A seeded call with a recording: uploaded, unless its "audio" is the login page the
    recording host answers instead, which fails the call as not audio."""
    expected = CallState.FAILED if audio is LOGIN_PAGE else CallState.UPLOADED
    return DemoCall(call_id, shows, expected)


def generic(stack: ExitStack, now: datetime) -> Seeded:
    """The generic JSON call-log adapter against a quickstart-shaped call log."""
    api = FakeCallLog(auth=("bearer", "demo-provider-token"), page_size=5)
    server = stack.enter_context(serve(api))
    api.base_url = server.url
    calls: list[DemoCall] = []

    def add(call_id: str, minutes_ago: int, body: bytes | None, shows: str, **record: Any) -> None:
        at = now - timedelta(minutes=minutes_ago)
        url = None
        if body is not None:
            url = server.url + api.add_recording(f"/recordings/{call_id}", body)
        api.add_call(quickstart_call(call_id, at, recording_url=url, **record), at)
        calls.append(DemoCall(call_id, shows, CallState.UPLOADED))

    reps = [f"rep{n}@example.com" for n in (1, 2, 3)]
    good: list[tuple[bytes, str]] = [
        (mp3_bytes(2), "an MP3 recording, uploaded as it is"),
        (wav_bytes(1), "a WAV recording, uploaded as it is"),
        (aac_bytes(2), "an AAC recording, uploaded as it is"),
        (mp3_bytes(3), f"{KNOWN_REP}, attributed to that user"),
        (wav_bytes(2), "listed on the second page of the call log"),
        (mp3_bytes(1), "a third rep; one call of several on the same poll"),
    ]
    for n, (audio, what) in enumerate(good):
        add(
            f"demo-{n + 1:03d}",
            40 - n,
            audio,
            what,
            email=reps[n % 3],
            contact_name=f"Customer {n + 1}",
        )
    add(
        "demo-m4a",
        33,
        encoded("m4a", 2.0),
        "an M4A (AAC in MP4): remuxed to AAC, which Siro takes",
        email=reps[0],
    )
    add(
        "demo-ogg",
        32,
        encoded("ogg", 2.0),
        "an Ogg Opus recording: converted to MP3, which Siro takes",
        email=reps[1],
    )
    add("demo-newhire", 31, mp3_bytes(2), UNKNOWN_REP_SHOWS, email=UNKNOWN_REP)
    add(
        "demo-late",
        30,
        None,
        "a late recording: listed before it existed, uploaded once it did",
        email=reps[1],
    )
    calls_bad = [
        ("demo-login-page", LOGIN_PAGE, "the recording URL answers an HTML login page"),
        ("demo-flac", flac_bytes(), "a FLAC header with no audio after it: corrupt"),
    ]
    for offset, (call_id, body, shows) in enumerate(calls_bad):
        at = now - timedelta(minutes=29 - offset)
        path = api.add_recording(f"/recordings/{call_id}", body)
        record = quickstart_call(call_id, at, recording_url=server.url + path, email=reps[2])
        api.add_call(record, at)
        calls.append(DemoCall(call_id, shows, CallState.FAILED))

    def late_recording() -> None:
        path = api.add_recording("/recordings/demo-late", mp3_bytes(2))
        api.update_call("demo-late", recording_url=server.url + path)

    return Seeded(
        provider={
            "kind": "generic",
            "name": "demo-generic",
            "base_url": server.url,
            "auth": "bearer",
            "token": "demo-provider-token",
        },
        calls=calls,
        late_call_id="demo-late",
        late_recording=late_recording,
    )


def ringcentral(stack: ExitStack, now: datetime) -> Seeded:
    """RingCentral's call log (Detailed view, JWT bearer auth, a separate media host)."""
    unlimited = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}
    api = stack.enter_context(serve_ringcentral(RingCentralState(groups=unlimited)))
    reps = [(400643091000 + n, f"10{n}", f"+1650555010{n}") for n in range(1, 5)]
    for (extension_id, number, _phone), email in zip(
        reps, [f"rep{n}@example.com" for n in (1, 2, 3)] + [UNKNOWN_REP], strict=True
    ):
        api.add_extension(extension_id, number, f"Rep {number}", email)
    calls: list[DemoCall] = []
    bodies: list[tuple[bytes, str, str, int]] = [
        (mp3_bytes(2), "audio/mpeg", f"{KNOWN_REP} (from the extension)", 0),
        (wav_bytes(1), "audio/x-wav", "an inbound call, a WAV recording", 1),
        (mp3_bytes(1), "audio/mpeg", "an outbound call of a third rep", 2),
        (mp3_bytes(2), "audio/mpeg", UNKNOWN_REP_SHOWS, 3),
        (LOGIN_PAGE, "text/html", "the media host answers an HTML page, not audio", 0),
    ]
    for n, (audio, content_type, shows, rep) in enumerate(bodies):
        record_id, recording_id = f"rc-call-{n + 1}", f"rc-rec-{n + 1}"
        api.add_media(recording_id, audio, content_type)
        api.add_record(
            call_record(
                record_id,
                now - timedelta(minutes=30 - n),
                session=f"s-{n + 1}",
                direction="Inbound" if n % 2 else "Outbound",
                rep=reps[rep],
                contact=(f"+1415555{n:04d}", f"Customer {n + 1}"),
                recording=recording_of(api, recording_id),
            )
        )
        failed = content_type == "text/html"
        calls.append(
            DemoCall(recording_id, shows, CallState.FAILED if failed else CallState.UPLOADED)
        )
    api.add_record(
        call_record(
            "rc-call-short", now - timedelta(minutes=20), session="s-short", short_recording=True
        )
    )
    calls.append(
        DemoCall("s-short", "too short for RingCentral to keep a recording", CallState.SKIPPED)
    )
    return Seeded(
        provider={
            "kind": "ringcentral",
            "name": "demo-ringcentral",
            "base_url": api.base_url,
            "media_base_url": api.media_url,
            "client_id": api.client_id,
            "client_secret": api.client_secret,
            "jwt": api.jwt,
            "settle_delay_seconds": 0,
        },
        calls=calls,
        events=api,
    )


def zoom(stack: ExitStack, now: datetime) -> Seeded:
    """Zoom Phone's recordings (server-to-server OAuth, files on the web host)."""
    phone = ZoomPhone()
    stack.enter_context(serve_zoom(phone))
    owners = {
        "zoom-user-1": "rep1@example.com",
        "zoom-user-2": "rep2@example.com",
        "zoom-user-9": UNKNOWN_REP,
    }
    for n, (user_id, email) in enumerate(owners.items()):
        phone.add_user(user_id, email, name=f"Rep {user_id[-1]}", ext=1001 + n)
    calls: list[DemoCall] = []
    seeded: list[tuple[str, bytes, str, CallState]] = [
        ("zoom-user-1", mp3_bytes(2), f"{KNOWN_REP} (the recording's owner)", CallState.UPLOADED),
        ("zoom-user-2", wav_bytes(1), "an inbound call, a WAV recording", CallState.UPLOADED),
        (
            "zoom-user-1",
            encoded("m4a", 2.0),
            "an M4A recording, remuxed to AAC",
            CallState.UPLOADED,
        ),
        ("zoom-user-9", mp3_bytes(1), UNKNOWN_REP_SHOWS, CallState.UPLOADED),
        ("zoom-user-2", LOGIN_PAGE, "the download answers an HTML page", CallState.FAILED),
    ]
    for n, (owner, audio, shows, expected) in enumerate(seeded):
        recording_id = f"zr-{n + 1:03d}"
        phone.add_recording(
            recording_item(
                recording_id,
                now - timedelta(minutes=30 - n),
                call_id=f"70000{n + 1}",
                direction="inbound" if n % 2 else "outbound",
                owner_id=owner,
                owner_name=f"Rep {owner[-1]}",
                download_url=phone.add_file(f"file-{n + 1}", audio),
                contact_name=f"Customer {n + 1}",
                contact_number=f"+1415555{n:04d}",
            )
        )
        calls.append(DemoCall(recording_id, shows, expected))
    return Seeded(
        provider={
            "kind": "zoom",
            "name": "demo-zoom",
            "base_url": f"{phone.api_url}/v2",
            "token_url": f"{phone.web_url}/oauth/token",
            "account_id": ACCOUNT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "settle_delay_seconds": 0,
        },
        calls=calls,
        events=phone,
    )


def aircall(stack: ExitStack, now: datetime) -> Seeded:
    """Aircall's calls (Basic auth, signed recording URLs on a separate storage host)."""
    simulator = stack.enter_context(
        AircallSimulator("demo-aircall-id", "demo-aircall-token", limit=6000)
    )
    api = simulator.api
    calls: list[DemoCall] = []
    # Aircall's call.ended comes ~30 s after hang-up and the adapter keeps clear of the last
    # minute: the calls are a few minutes old.
    seeded = [
        ("rep1@example.com", mp3_bytes(2), f"{KNOWN_REP}, a contact from Aircall's contacts"),
        ("rep2@example.com", wav_bytes(1), "an inbound call, a WAV recording"),
        (UNKNOWN_REP, mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep3@example.com", LOGIN_PAGE, "the storage host answers an HTML page"),
    ]
    for n, (email, audio, shows) in enumerate(seeded):
        call_id = 1001 + n
        api.add_call(
            aircall_call(
                call_id,
                now - timedelta(minutes=30 - n),
                direction="inbound" if n % 2 else "outbound",
                user={"id": 10 + n, "name": f"Rep {n + 1}", "email": email},
                raw_digits=f"+1 415-555-01{n:02d}",
                contact=aircall_contact(f"Customer{n}", "Lee", f"+1 555-010-000{n}"),
            ),
            recording=audio,
        )
        calls.append(seeded_call(str(call_id), shows, audio))
    api.add_call(aircall_call(2001, now - timedelta(minutes=25), answered=False))
    calls.append(DemoCall("2001", "a missed call: nothing was recorded", CallState.SKIPPED))
    late_rep = {"id": 12, "name": "Rep 2", "email": "rep2@example.com"}
    api.add_call(aircall_call(3001, now - timedelta(minutes=24), user=late_rep))
    calls.append(
        DemoCall(
            "3001",
            "a late recording: listed while still processing, uploaded once it was there",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "aircall",
            "name": "demo-aircall",
            "base_url": simulator.url,
            "api_id": "demo-aircall-id",
            "api_token": "demo-aircall-token",
            "download_hosts": [simulator.media_host],
        },
        calls=calls,
        late_call_id="3001",
        late_recording=lambda: api.add_recording("3001", mp3_bytes(2)),
        events=api,
    )


def dialpad(stack: ExitStack, now: datetime) -> Seeded:
    """Dialpad's call list (an API key, share links to recordings on a media host)."""
    servers = stack.enter_context(DialpadServers("demo-dialpad-key"))
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", mp3_bytes(2), f"{KNOWN_REP} (the call's target user)"),
        ("rep2@example.com", wav_bytes(1), "a WAV recording"),
        ("rep3@example.com", aac_bytes(2), "an AAC recording"),
        (UNKNOWN_REP, mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep1@example.com", LOGIN_PAGE, "the share link answers an HTML page"),
    ]
    for n, (email, audio, shows) in enumerate(seeded):
        call_id = str(servers.next_id())
        at = now - timedelta(minutes=30 - n)
        servers.state.add_call(
            call_proto(
                int(call_id),
                at,
                rep_email=email,
                contact_name=f"Prospect {n + 1}",
                contact_phone=f"+1415555{n:04d}",
                recordings=[recording_detail(f"rec-{n + 1}", at)],
            )
        )
        servers.state.add_audio("callrecording", f"rec-{n + 1}", audio)
        calls.append(seeded_call(call_id, shows, audio))
    never = str(servers.next_id())
    servers.state.add_call(call_proto(int(never), now - timedelta(minutes=20), was_recorded=False))
    calls.append(DemoCall(never, "a call that was never recorded", CallState.SKIPPED))
    return Seeded(
        provider={
            "kind": "dialpad",
            "name": "demo-dialpad",
            "base_url": servers.url,
            "api_key": "demo-dialpad-key",
            "download_hosts": [servers.media_host],
        },
        calls=calls,
        events=servers.state,
    )


@dataclass(frozen=True)
class TwilioCall:
    from_: str
    to: str
    direction: str
    shows: str
    caller_name: str | None = None
    channels: int = 1


def twilio(stack: ExitStack, now: datetime) -> Seeded:
    """Twilio's recordings and their calls (the account SID and auth token)."""
    api = FakeTwilio()
    server = stack.enter_context(serve_twilio(api))
    calls: list[DemoCall] = []
    # Reps go by their phone: +1555000000N are the Siro simulator's users.
    seeded: list[TwilioCall] = [
        TwilioCall("+15551230001", "+15550000001", "inbound", "a rep Siro knows by phone", "Jane"),
        TwilioCall("+15550000002", "+15551230002", "outbound-dial", "an outbound call"),
        TwilioCall(
            "+15551230003",
            "+15550000003",
            "inbound",
            "a two-channel recording, kept in stereo",
            "Bob Jones",
            channels=2,
        ),
        TwilioCall("+15551230004", "+15550009999", "inbound", UNKNOWN_REP_SHOWS),
    ]
    for n, call in enumerate(seeded):
        recording_sid, call_sid = sid("RE", f"demo-{n}"), sid("CA", f"demo-{n}")
        at = now - timedelta(minutes=30 - n)
        api.add(
            twilio_recording(recording_sid, call_sid, at, channels=call.channels),
            twilio_call(
                call_sid,
                at,
                from_=call.from_,
                to=call.to,
                direction=call.direction,
                caller_name=call.caller_name,
            ),
            encoded("mp3", 2.0, channels=call.channels),
        )
        calls.append(DemoCall(recording_sid, call.shows, CallState.UPLOADED))
    absent_sid, absent_call = sid("RE", "demo-absent"), sid("CA", "demo-absent")
    at = now - timedelta(minutes=20)
    api.add(
        twilio_recording(absent_sid, absent_call, at, status="absent", error_code=13617),
        twilio_call(absent_call, at, from_="+15551230009", to="+15550000001"),
    )
    calls.append(DemoCall(absent_sid, "a recording Twilio reports absent", CallState.SKIPPED))
    return Seeded(
        provider={
            "kind": "twilio",
            "name": "demo-twilio",
            "base_url": server.url,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
        },
        calls=calls,
        events=api,
    )


def salesloft(stack: ExitStack, now: datetime) -> Seeded:
    """Salesloft's call data records (an API key, signed recording URLs on a media host)."""
    simulator = stack.enter_context(SalesloftSimulator("demo-salesloft-key"))
    api = simulator.api
    for user_id, email in ((10, "rep1@example.com"), (11, "rep2@example.com"), (19, UNKNOWN_REP)):
        api.add_user(user_id, email, f"Rep {user_id}")
    calls: list[DemoCall] = []
    seeded = [
        (10, "outbound", mp3_bytes(2), f"{KNOWN_REP} (looked up from the record's user id)"),
        (11, "inbound", wav_bytes(1), "an inbound call: the caller is the contact"),
        (19, "outbound", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        (10, "outbound", LOGIN_PAGE, "the recording host answers an HTML page"),
    ]
    for n, (user_id, direction, audio, shows) in enumerate(seeded):
        cdr_id = 501 + n
        record = salesloft_cdr(
            cdr_id, now - timedelta(minutes=30 - n), user_id=user_id, direction=direction
        )
        api.add_call(record, audio)
        calls.append(seeded_call(str(cdr_id), shows, audio))
    api.add_call(
        salesloft_cdr(601, now - timedelta(minutes=25), status="no-answer", recording_status=None)
    )
    calls.append(DemoCall("601", "an unanswered call: nothing to record", CallState.SKIPPED))
    late = salesloft_cdr(
        701, now - timedelta(minutes=24), user_id=11, recording_status="processing"
    )
    api.add_call(late)
    calls.append(
        DemoCall(
            "701",
            "a late recording: listed while processing, uploaded once it was there",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "salesloft",
            "name": "demo-salesloft",
            "base_url": simulator.url,
            "token": "demo-salesloft-key",
            "download_hosts": [simulator.media_host],
        },
        calls=calls,
        late_call_id="701",
        late_recording=lambda: api.add_recording(701, mp3_bytes(2)),
    )


def cloudtalk(stack: ExitStack, now: datetime) -> Seeded:
    """CloudTalk's call history (an API key's id and secret, WAV at a path built from the id)."""
    api = CloudTalkApi("demo-cloudtalk-id", "demo-cloudtalk-secret")
    stack.enter_context(serve_kit(api))
    agents = {
        email: cloudtalk_agent(10 + n, email, f"Rep {n + 1}")
        for n, email in enumerate(("rep1@example.com", "rep2@example.com", UNKNOWN_REP))
    }
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", "outgoing", wav_bytes(2), f"{KNOWN_REP} (the call's agent)"),
        (
            "rep2@example.com",
            "incoming",
            wav_bytes(1),
            "an inbound call: the caller is the contact",
        ),
        (UNKNOWN_REP, "outgoing", wav_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep1@example.com", "outgoing", LOGIN_PAGE, "the recording path answers an HTML page"),
    ]
    for n, (email, call_type, audio, shows) in enumerate(seeded):
        call_id = 801 + n
        call = cloudtalk_call(
            call_id, now - timedelta(minutes=30 - n), agent=agents[email], call_type=call_type
        )
        api.add_call(call, audio)
        calls.append(seeded_call(str(call_id), shows, audio))
    api.add_call(
        cloudtalk_call(
            901, now - timedelta(minutes=25), agent=agents["rep2@example.com"], recorded=False
        )
    )
    calls.append(DemoCall("901", "a call CloudTalk did not record", CallState.SKIPPED))
    return Seeded(
        provider={
            "kind": "cloudtalk",
            "name": "demo-cloudtalk",
            "base_url": api.url,
            "username": "demo-cloudtalk-id",
            "password": "demo-cloudtalk-secret",
        },
        calls=calls,
    )


def callrail(stack: ExitStack, now: datetime) -> Seeded:
    """CallRail's calls (an API key, a JSON answer whose link redirects to the MP3)."""
    simulator = stack.enter_context(CallRailSimulator("demo-callrail-key"))
    api = simulator.api
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", "inbound", mp3_bytes(2), f"{KNOWN_REP} (the agent who answered)"),
        ("rep2@example.com", "outbound", mp3_bytes(1), "an outbound call: the customer called"),
        (UNKNOWN_REP, "inbound", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep1@example.com", "inbound", LOGIN_PAGE, "the recording link leads to an HTML page"),
    ]
    start = now.replace(second=0, microsecond=0)
    for n, (email, direction, audio, shows) in enumerate(seeded):
        call_id = f"CALDEMO{n + 1}"
        call = callrail_call(
            call_id, start - timedelta(minutes=30 - n), agent_email=email, direction=direction
        )
        api.add_call(call, audio)
        calls.append(seeded_call(call_id, shows, audio))
    api.add_call(callrail_call("CALDEMOMISSED", start - timedelta(minutes=25), answered=False))
    calls.append(DemoCall("CALDEMOMISSED", "a missed call: nothing recorded", CallState.SKIPPED))
    api.add_call(callrail_call("CALDEMOLATE", start - timedelta(minutes=24)))
    calls.append(
        DemoCall(
            "CALDEMOLATE",
            "a late recording: listed while processing, uploaded once it was there",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "callrail",
            "name": "demo-callrail",
            "base_url": simulator.url,
            "account_id": api.account_id,
            "api_key": "demo-callrail-key",
            "download_hosts": simulator.recording_hosts,
        },
        calls=calls,
        late_call_id="CALDEMOLATE",
        late_recording=lambda: api.add_recording("CALDEMOLATE", mp3_bytes(2)),
    )


def freshcaller(stack: ExitStack, now: datetime) -> Seeded:
    """A Freshcaller account's calls (an API key, recordings redirected to a media host)."""
    simulator = stack.enter_context(FreshcallerSimulator("demo-freshcaller-key"))
    api = simulator.api
    for user_id, email in ((10, "rep1@example.com"), (11, "rep2@example.com"), (19, UNKNOWN_REP)):
        api.add_user(user_id, email, f"Rep {user_id}")
    calls: list[DemoCall] = []
    seeded = [
        (10, "outgoing", mp3_bytes(2), f"{KNOWN_REP} (its email from the account's user list)"),
        (11, "incoming", wav_bytes(1), "an incoming call: the customer participant is the contact"),
        (19, "outgoing", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        (10, "outgoing", LOGIN_PAGE, "the recording host answers an HTML page"),
    ]
    for n, (user_id, direction, audio, shows) in enumerate(seeded):
        call_id = 801 + n
        record = freshcaller_call(
            call_id,
            now - timedelta(minutes=30 - n),
            agent_id=user_id,
            agent_name=f"Rep {user_id}",
            direction=direction,
            customer_number=f"+1415555{call_id:04d}",
        )
        api.add_call(record, audio)
        calls.append(seeded_call(str(call_id), shows, audio))
    late = freshcaller_call(901, now - timedelta(minutes=24), agent_id=11, agent_name="Rep 11")
    api.add_call(late)
    calls.append(
        DemoCall(
            "901",
            "a late recording: listed without its URL, uploaded once it was there",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "freshcaller",
            "name": "demo-freshcaller",
            "base_url": simulator.url,
            "api_key": "demo-freshcaller-key",
            "download_hosts": [simulator.media_host],
        },
        calls=calls,
        late_call_id="901",
        late_recording=lambda: api.add_recording(901, mp3_bytes(2)),
    )


def justcall(stack: ExitStack, now: datetime) -> Seeded:
    """A JustCall account's calls (an API key and secret, the account's time zone)."""
    simulator = stack.enter_context(JustCallSimulator("demo-justcall-key", "demo-justcall-secret"))
    api = simulator.api
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", "Outgoing", mp3_bytes(2), f"{KNOWN_REP} (the call names its email)"),
        (
            "rep2@example.com",
            "Incoming",
            wav_bytes(1),
            "an incoming call: the caller is the contact",
        ),
        (UNKNOWN_REP, "Outgoing", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep1@example.com", "Outgoing", LOGIN_PAGE, "the recording link answers an HTML page"),
    ]
    for n, (email, direction, audio, shows) in enumerate(seeded):
        call_id = 1001 + n
        record = justcall_call(
            call_id,
            now - timedelta(minutes=30 - n),
            agent_id=1300 + n,
            agent_email=email,
            agent_name=email.split("@")[0],
            direction=direction,
            contact_number=f"+1415555{call_id:04d}",
        )
        api.add_call(record, audio)
        calls.append(seeded_call(str(call_id), shows, audio))
    api.add_call(justcall_call(1101, now - timedelta(minutes=25), kind="Missed"))
    calls.append(DemoCall("1101", "a missed call: nothing to record", CallState.SKIPPED))
    api.add_call(justcall_call(1201, now - timedelta(minutes=24), agent_email="rep2@example.com"))
    calls.append(
        DemoCall(
            "1201",
            "a late recording: listed without its link, uploaded once it was there",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "justcall",
            "name": "demo-justcall",
            "base_url": simulator.url,
            "api_key": "demo-justcall-key",
            "api_secret": "demo-justcall-secret",
            "time_zone": ACCOUNT_ZONE,
            "download_hosts": simulator.download_hosts,
        },
        calls=calls,
        late_call_id="1201",
        late_recording=lambda: api.add_recording(1201, mp3_bytes(2)),
    )


def outreach(stack: ExitStack, now: datetime) -> Seeded:
    """Outreach's calls (an OAuth app's refresh token, signed recording URLs on a media host).

    Its token endpoint does not rotate refresh tokens, unlike the profile's tests: `simulate`
    prints one seed that a rehearsal uses from several state databases.
    """
    simulator = stack.enter_context(OutreachSimulator(rotate=False))
    api = simulator.api
    for user_id, email in ((10, "rep1@example.com"), (11, "rep2@example.com"), (19, UNKNOWN_REP)):
        api.add_user(user_id, email, f"Rep {user_id}")
    calls: list[DemoCall] = []
    seeded = [
        (10, "outbound", mp3_bytes(2), f"{KNOWN_REP} (looked up from the call's user)"),
        (11, "inbound", wav_bytes(1), "an inbound call: the caller is the contact"),
        (19, "outbound", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        (10, "outbound", LOGIN_PAGE, "the recording host answers an HTML page"),
    ]
    for n, (user_id, direction, audio, shows) in enumerate(seeded):
        call_id = 501 + n
        record = outreach_call(
            call_id, now - timedelta(minutes=30 - n), user_id=user_id, direction=direction
        )
        api.add_call(record, audio)
        calls.append(seeded_call(str(call_id), shows, audio))
    api.add_call(outreach_call(601, now - timedelta(minutes=25), outcome="Not Answered"))
    calls.append(DemoCall("601", "an unanswered call: nothing to record", CallState.SKIPPED))
    api.add_call(outreach_call(701, now - timedelta(minutes=24), user_id=11))
    calls.append(
        DemoCall(
            "701",
            "a late recording: listed without one, listed again once it was attached",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "outreach",
            "name": "demo-outreach",
            "base_url": simulator.url,
            "client_id": outreach_server.CLIENT_ID,
            "client_secret": outreach_server.CLIENT_SECRET,
            "redirect_uri": outreach_server.REDIRECT_URI,
            "refresh_token": api.seed_refresh_token("demo-outreach-refresh-token"),
            "download_hosts": [simulator.media_host],
        },
        calls=calls,
        late_call_id="701",
        late_recording=lambda: api.add_recording(701, mp3_bytes(2)),
    )


def webex(stack: ExitStack, now: datetime) -> Seeded:
    """Webex Calling's converged recordings (a compliance officer's refresh token, download
    links fetched fresh for each recording). Its token endpoint does not rotate refresh tokens,
    for the same reason as Outreach's."""
    simulator = stack.enter_context(webex_server.WebexSimulator(rotate=False))
    api = simulator.api
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", mp3_bytes(2), f"{KNOWN_REP} (the recording's owner)"),
        ("rep2@example.com", mp3_bytes(1), "a second rep's recording"),
        (UNKNOWN_REP, mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep1@example.com", LOGIN_PAGE, "the download host answers an HTML page"),
    ]
    for n, (email, audio, shows) in enumerate(seeded):
        recording_id = f"demo-webex-{n + 1}"
        record = webex_server.webex_recording(
            recording_id, now - timedelta(minutes=30 - n), owner_email=email
        )
        api.add_recording(record, audio)
        calls.append(seeded_call(recording_id, shows, audio))
    return Seeded(
        provider={
            "kind": "webex",
            "name": "demo-webex",
            "base_url": simulator.url,
            "client_id": webex_server.CLIENT_ID,
            "client_secret": webex_server.CLIENT_SECRET,
            "refresh_token": api.seed_refresh_token("demo-webex-refresh-token"),
            "download_hosts": [simulator.media_host],
        },
        calls=calls,
    )


def vonage(stack: ExitStack, now: datetime) -> Seeded:
    """Vonage Business Communications (password grant; reps by extension)."""
    simulator = stack.enter_context(VonageSimulator())
    api = simulator.api
    for number, email in (("101", "rep1@example.com"), ("102", "rep2@example.com")):
        api.add_extension(number, email, f"Rep {number}")
    api.add_extension("199", UNKNOWN_REP, "New Hire")
    api.add_extension("103", None, "Front desk")  # no user: mapped in siro.rep_map
    calls: list[DemoCall] = []
    seeded = [
        ("101", "OUTBOUND", mp3_bytes(2), f"{KNOWN_REP} (its extension's user)"),
        ("102", "INBOUND", mp3_bytes(1), "an inbound call: the caller is the contact"),
        ("199", "OUTBOUND", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("103", "OUTBOUND", mp3_bytes(1), "an extension without a user, mapped in siro.rep_map"),
        ("101", "OUTBOUND", LOGIN_PAGE, "the recording answers an HTML page"),
    ]
    for n, (extension, direction, audio, shows) in enumerate(seeded):
        recording_id = 9001 + n
        item = company_recording(
            recording_id,
            now - timedelta(minutes=30 - n),
            direction=direction,
            extension=extension,
            caller_id=f"1415555{n:04d}",
            dnis=f"1415556{n:04d}",
        )
        api.add(item, audio)
        calls.append(seeded_call(str(recording_id), shows, audio))
    return Seeded(
        provider={
            "kind": "vonage",
            "name": "demo-vonage",
            "base_url": simulator.url,
            "username": VONAGE_USERNAME,
            "password": VONAGE_PASSWORD,
            "client_id": VONAGE_CLIENT_ID,
            "client_secret": VONAGE_CLIENT_SECRET,
        },
        calls=calls,
        siro={"rep_map": {"extension": {"103": "user-3"}}},
    )


def eight_by_eight(stack: ExitStack, now: datetime) -> Seeded:
    """8x8's Cloud Storage Service (client credentials, recordings as stored objects)."""
    simulator = stack.enter_context(EightByEightSimulator("demo-8x8-key", "demo-8x8-secret"))
    api = simulator.api
    calls: list[DemoCall] = []
    seeded = [
        ("rep1@example.com", "OUTBOUND", mp3_bytes(2), f"{KNOWN_REP} (the recording's tags)"),
        ("rep2@example.com", "INBOUND", mp3_bytes(1), "an inbound call: the caller is the contact"),
        (UNKNOWN_REP, "OUTBOUND", mp3_bytes(1), UNKNOWN_REP_SHOWS),
        ("rep3@example.com", "OUTBOUND", LOGIN_PAGE, "the object's content is an HTML page"),
    ]
    for n, (email, direction, audio, shows) in enumerate(seeded):
        object_id = f"demo-8x8-{n + 1}"
        item = call_recording(
            object_id,
            now - timedelta(minutes=30 - n),
            user_email=email,
            direction=direction,
            address=f"+1415555{n:04d}",
        )
        api.add(item, audio)
        calls.append(seeded_call(object_id, shows, audio))
    api.add(call_recording("demo-8x8-late", now - timedelta(minutes=24), state="PENDING"))
    calls.append(
        DemoCall(
            "demo-8x8-late",
            "a recording still being stored (PENDING): uploaded once it was AVAILABLE",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "8x8",
            "name": "demo-8x8",
            "base_url": simulator.url,
            "client_id": "demo-8x8-key",
            "client_secret": "demo-8x8-secret",
        },
        calls=calls,
        late_call_id="demo-8x8-late",
        late_recording=lambda: api.make_available("demo-8x8-late", mp3_bytes(2)),
    )


def quo(stack: ExitStack, now: datetime) -> Seeded:
    """A Quo (formerly OpenPhone) workspace's calls (an API key and a version header; a JSON
    answer listing the recording's segments, each a signed URL on a storage host)."""
    simulator = stack.enter_context(QuoSimulator("demo-quo-key"))
    api = simulator.api
    for user_id, email in (("US1", "rep1@example.com"), ("US2", "rep2@example.com")):
        api.add_user(user_id, email)
    api.add_user("US9", UNKNOWN_REP, "New", "Hire")
    calls: list[DemoCall] = []
    seeded = [
        ("US1", "incoming", (mp3_bytes(2),), f"{KNOWN_REP} (the user Quo names)"),
        ("US2", "outgoing", (mp3_bytes(1),), "an outgoing call: the customer called"),
        ("US9", "incoming", (mp3_bytes(1),), UNKNOWN_REP_SHOWS),
        (
            "US1",
            "incoming",
            (mp3_bytes(2), mp3_bytes(1)),
            "paused and resumed: two segments, the first is uploaded",
        ),
        ("US1", "incoming", (LOGIN_PAGE,), "the recording URL leads to an HTML page"),
    ]
    start = now.replace(second=0, microsecond=0)
    for n, (user_id, direction, audio, shows) in enumerate(seeded):
        call_id = f"ACdemo{n + 1}"
        call = quo_call(
            call_id, start - timedelta(minutes=30 - n), user_id=user_id, direction=direction
        )
        api.add_call(call, *audio)
        failed = audio[0] is LOGIN_PAGE
        calls.append(DemoCall(call_id, shows, CallState.FAILED if failed else CallState.UPLOADED))
    api.add_call(quo_call("ACdemomissed", start - timedelta(minutes=22), status="missed"))
    calls.append(DemoCall("ACdemomissed", "a missed call: nothing recorded", CallState.SKIPPED))
    api.add_call(quo_call("ACdemolate", start - timedelta(minutes=21)))
    api.add_segment("ACdemolate", None)
    calls.append(
        DemoCall(
            "ACdemolate",
            "a late recording: its segment processing when listed, uploaded once completed",
            CallState.UPLOADED,
        )
    )
    return Seeded(
        provider={
            "kind": "quo",
            "name": "demo-quo",
            "base_url": simulator.url,
            "api_key": "demo-quo-key",
            "download_hosts": simulator.recording_hosts,
        },
        calls=calls,
        late_call_id="ACdemolate",
        late_recording=lambda: api.finish_segment("ACdemolate", 0, mp3_bytes(2)),
    )


SCENARIOS: dict[str, Scenario] = {
    "generic": generic,
    "ringcentral": ringcentral,
    "zoom": zoom,
    "aircall": aircall,
    "dialpad": dialpad,
    "twilio": twilio,
    "salesloft": salesloft,
    "cloudtalk": cloudtalk,
    "callrail": callrail,
    "freshcaller": freshcaller,
    "justcall": justcall,
    "outreach": outreach,
    "webex": webex,
    "8x8": eight_by_eight,
    "vonage": vonage,
    "quo": quo,
}
