"""A call that ended just now, its small recording ready, added to a native vendor's simulator.

What a vendor announces with a webhook event, for whoever rehearses the events: `siro-poller
simulate --events-to`, the daemon's webhook tests and the latency benchmark. Each call belongs
to the rep the demo's scenario and the Siro simulator know as ``rep1@example.com`` (Siro's
``user-1``): by email, by the Zoom user or RingCentral extension the scenario adds for that
email, or by Twilio's number for that user.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from poller.simulators.aircall_server import AircallApi, aircall_call
from poller.simulators.audio import mp3_bytes
from poller.simulators.dialpad_server import DialpadState, call_proto, recording_detail
from poller.simulators.ringcentral_server import RingCentralState, call_record, recording_of
from poller.simulators.twilio_server import FakeTwilio, sid, twilio_call, twilio_recording
from poller.simulators.zoom_server import ZoomPhone, recording_item

# Short calls: the recording is a second of audio, whatever the call's length says.
DURATION_SECONDS = 20
REP_EMAIL = "rep1@example.com"
ZOOM_USER = "zoom-user-1"
# (extension id, extension number, phone number) of the RingCentral extension with REP_EMAIL.
RINGCENTRAL_REP = (400643091001, "101", "+16505550101")
# The Siro simulator's user-1 phone: a Twilio call to it is that rep's.
TWILIO_REP_NUMBER = "+15550000001"


class VendorEvents(Protocol):
    """The event side every native vendor's simulator has (the same names in all five)."""

    drop_events: bool
    events_sent: list[tuple[str, int]]

    def send_events_to(self, url: str, secret: str | None = None) -> None: ...

    def announce(self, call_id: str) -> list[int]: ...

    def signed_event(self, call_id: str) -> tuple[dict[str, str], bytes]: ...


def _started(ended_ago: float) -> datetime:
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=ended_ago)
    return ended - timedelta(seconds=DURATION_SECONDS)


def zoom_call(phone: ZoomPhone, n: int, *, ended_ago: float = 0.0) -> str:
    """A recording of ``ZOOM_USER`` (who must exist); its id."""
    recording_id = f"zr-fresh-{n}"
    phone.add_recording(
        recording_item(
            recording_id,
            _started(ended_ago),
            call_id=f"71{n:08d}",
            owner_id=ZOOM_USER,
            download_url=phone.add_file(f"fresh-{n}", mp3_bytes(1)),
            duration=DURATION_SECONDS,
        )
    )
    return recording_id


def ringcentral_call(api: RingCentralState, n: int, *, ended_ago: float = 0.0) -> str:
    """A call-log record of ``RINGCENTRAL_REP``'s extension (which must exist) with its
    recording; the recording's id."""
    recording_id = f"rc-fresh-{n}"
    api.add_media(recording_id, mp3_bytes(1))
    api.add_record(
        call_record(
            f"Ia-fresh-{n}",
            _started(ended_ago),
            session=f"s-fresh-{n}",
            duration=DURATION_SECONDS,
            rep=RINGCENTRAL_REP,
            recording=recording_of(api, recording_id),
        )
    )
    return recording_id


def aircall_ended_call(api: AircallApi, n: int, *, ended_ago: float = 0.0) -> str:
    """A done call of the rep with its recording; its id."""
    call_id = 500000 + n
    rep = {"id": 10, "name": "Rep 1", "email": REP_EMAIL}
    record = aircall_call(call_id, _started(ended_ago), duration=DURATION_SECONDS, user=rep)
    api.add_call(record, recording=mp3_bytes(1))
    return str(call_id)


def dialpad_call(state: DialpadState, n: int, *, ended_ago: float = 0.0) -> str:
    """An ended call of the rep with its call recording; its id."""
    call_id = 7000000000000000 + n
    started = _started(ended_ago)
    duration = timedelta(seconds=DURATION_SECONDS)
    recording_id = f"rec-fresh-{n}"
    state.add_call(
        call_proto(
            call_id,
            started,
            duration=duration,
            rep_email=REP_EMAIL,
            recordings=[recording_detail(recording_id, started, duration=duration)],
        )
    )
    state.add_audio("callrecording", recording_id, mp3_bytes(1))
    return str(call_id)


def twilio_call_recorded(api: FakeTwilio, n: int, *, ended_ago: float = 0.0) -> str:
    """A completed recording of an inbound call to the rep's number; the recording's SID."""
    recording_sid, call_sid = sid("RE", f"fresh-{n}"), sid("CA", f"fresh-{n}")
    started = _started(ended_ago)
    api.add(
        twilio_recording(recording_sid, call_sid, started, duration=DURATION_SECONDS),
        twilio_call(
            call_sid,
            started,
            from_="+15551230001",
            to=TWILIO_REP_NUMBER,
            duration=DURATION_SECONDS,
        ),
        mp3_bytes(1),
    )
    return recording_sid


_BY_STATE: tuple[tuple[type[Any], Callable[..., str]], ...] = (
    (ZoomPhone, zoom_call),
    (RingCentralState, ringcentral_call),
    (AircallApi, aircall_ended_call),
    (DialpadState, dialpad_call),
    (FakeTwilio, twilio_call_recorded),
)


def fresh_call(simulator: object, n: int, *, ended_ago: float = 0.0) -> str:
    """:func:`zoom_call`, :func:`ringcentral_call`... for whichever vendor's state
    ``simulator`` is; raises ``TypeError`` for a simulator that sends no events."""
    for state_type, add in _BY_STATE:
        if isinstance(simulator, state_type):
            return add(simulator, n, ended_ago=ended_ago)
    raise TypeError(f"{type(simulator).__name__} sends no webhook events")
