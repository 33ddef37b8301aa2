"""`siro-poller run` as a process against the JustCall simulator and the Siro fake."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.justcall_server import API_KEY, API_SECRET, JustCallSimulator, justcall_call
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestJustCall(DaemonProfileContract[JustCallSimulator]):
    skipped = 1

    def simulator(self) -> AbstractContextManager[JustCallSimulator]:
        return JustCallSimulator()

    def settings(self, sim: JustCallSimulator) -> dict[str, str]:
        # The listing follows next_page_link.
        return {
            "PROVIDER__KIND": "justcall",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__API_KEY": API_KEY,
            "PROVIDER__API_SECRET": API_SECRET,
            "PROVIDER__TIME_ZONE": "America/New_York",
            "PROVIDER__DOWNLOAD_HOSTS": json.dumps(sim.download_hosts),
        }

    def secrets(self, sim: JustCallSimulator) -> list[str]:
        return [API_KEY, API_SECRET]

    def seed(self, sim: JustCallSimulator) -> dict[str, Expected]:
        expected: dict[str, Expected] = {}
        for n in range(5):
            rep, direction = (1, "Outgoing") if n % 2 == 0 else (2, "Incoming")
            contact = f"+1415555{n:04d}"
            record = justcall_call(
                100 + n,
                STARTED + timedelta(minutes=n),
                agent_id=1307 + rep,
                agent_email=f"rep{rep}@example.com",
                agent_name=f"Rep {rep}",
                direction=direction,
                contact_number=contact,
            )
            sim.api.add_call(record, mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5))
            expected[str(100 + n)] = Expected(f"user-{rep}", contact)
        sim.api.add_call(justcall_call(200, STARTED + timedelta(minutes=9), kind="Missed"))
        return expected

    def check(self, sim: JustCallSimulator, run: DaemonRun) -> None:
        # No page past the last (six calls, pages of two); no secret left the API host.
        api = sim.api
        listing_pages = [r.param("page") for r in api.requests if r.path == "/v2.1/calls"]
        assert "4" not in listing_pages
        elsewhere = [*api.web.requests, *api.media.requests]
        assert len([r for r in api.media.requests if r.path.startswith("/media/")]) == 5
        assert all(r.header("authorization") is None for r in elsewhere)
