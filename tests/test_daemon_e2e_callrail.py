"""`siro-poller run` as a process against the CallRail simulator and the Siro fake."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.callrail_server import (
    ACCOUNT_ID,
    API_KEY,
    CallRailSimulator,
    callrail_call,
)
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestCallRail(DaemonProfileContract[CallRailSimulator]):
    skipped = 1

    def simulator(self) -> AbstractContextManager[CallRailSimulator]:
        return CallRailSimulator()

    def settings(self, sim: CallRailSimulator) -> dict[str, str]:
        # The listing walks pages up to total_pages.
        return {
            "PROVIDER__KIND": "callrail",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
            "PROVIDER__API_KEY": API_KEY,
            "PROVIDER__DOWNLOAD_HOSTS": json.dumps(sim.recording_hosts),
            "PROVIDER__REQUESTS_PER_MINUTE": "16",
        }

    def secrets(self, sim: CallRailSimulator) -> list[str]:
        return [API_KEY]

    def seed(self, sim: CallRailSimulator) -> dict[str, Expected]:
        expected: dict[str, Expected] = {}
        for n in range(5):
            email, siro_user = (
                ("rep1@example.com", "user-1") if n % 2 == 0 else ("rep2@example.com", "user-2")
            )
            customer = f"+1415555{n:04d}"
            call = callrail_call(
                f"CAL{n}",
                STARTED + timedelta(minutes=n),
                agent_email=email,
                direction="inbound" if n % 2 == 0 else "outbound",
                customer=customer,
            )
            sim.api.add_call(call, mp3_bytes(1))
            expected[f"CAL{n}"] = Expected(siro_user, customer[2:])
        sim.api.add_call(callrail_call("CALMISSED", STARTED + timedelta(minutes=9), answered=False))
        return expected

    def check(self, sim: CallRailSimulator, run: DaemonRun) -> None:
        # Each recording asked for once and followed to the audio without the API key.
        api = sim.api
        assert api.count(f"/v3/a/{ACCOUNT_ID}/calls/") == 5
        followed = api.app.requests + [
            r for r in api.media.requests if r.path.startswith("/media/")
        ]
        assert len(followed) == 10 and all(r.header("authorization") is None for r in followed)
