"""`siro-poller run` as a process against the Quo simulator and the Siro fake."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.quo_server import API_KEY, QuoSimulator, quo_call
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestQuo(DaemonProfileContract[QuoSimulator]):
    skipped = 1

    def simulator(self) -> AbstractContextManager[QuoSimulator]:
        return QuoSimulator()

    def settings(self, sim: QuoSimulator) -> dict[str, str]:
        # The listing follows nextCursor to the end.
        return {
            "PROVIDER__KIND": "quo",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__API_KEY": API_KEY,
            "PROVIDER__DOWNLOAD_HOSTS": json.dumps(sim.recording_hosts),
        }

    def secrets(self, sim: QuoSimulator) -> list[str]:
        return [API_KEY]

    def seed(self, sim: QuoSimulator) -> dict[str, Expected]:
        api = sim.api
        api.add_user("US1", "rep1@example.com")
        api.add_user("US2", "rep2@example.com")
        expected: dict[str, Expected] = {}
        for n in range(5):
            user, siro_user = ("US1", "user-1") if n % 2 == 0 else ("US2", "user-2")
            contact = f"+1415555{n:04d}"
            call = quo_call(
                f"AC{n}",
                STARTED + timedelta(minutes=n),
                user_id=user,
                direction="incoming" if n % 2 == 0 else "outgoing",
                contact=contact,
            )
            # The last call was paused and resumed: two segments, the first goes to Siro.
            api.add_call(call, mp3_bytes(1), *([mp3_bytes(2)] if n == 4 else []))
            expected[f"AC{n}"] = Expected(siro_user, contact[2:])
        api.add_call(
            quo_call("ACMISSED", STARTED + timedelta(minutes=9), user_id="US1", status="missed")
        )
        return expected

    def check(self, sim: QuoSimulator, run: DaemonRun) -> None:
        # Each user looked up once, not once per call; each call's recording list asked for and
        # its first segment fetched, without the API key.
        api = sim.api
        assert api.count("/users/") == 2
        # (A download retried under load asks for a fresh signed URL again: at least once each.)
        assert {r.path for r in api.requests if r.path.startswith("/calls/AC")} == {
            f"/calls/AC{n}/recordings" for n in range(5)
        }
        media = [r for r in api.media.requests if r.path.startswith("/media/")]
        assert {r.path for r in media} == {f"/media/rec-AC{n}-0" for n in range(5)}
        assert all(r.header("authorization") is None for r in media)
