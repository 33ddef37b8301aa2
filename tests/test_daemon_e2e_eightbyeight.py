"""`siro-poller run` as a process against the 8x8 simulator and the Siro fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.eightbyeight_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    EightByEightSimulator,
    call_recording,
)
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestEightByEight(DaemonProfileContract[EightByEightSimulator]):
    # A call of ten minutes ago whose recording is still being stored when first listed, and
    # is stored while the daemon runs: the lookback lists it again.
    pending = 1

    def simulator(self) -> AbstractContextManager[EightByEightSimulator]:
        return EightByEightSimulator()

    def settings(self, sim: EightByEightSimulator) -> dict[str, str]:
        # The listing walks pageKey until lastPage.
        return {
            "PROVIDER__KIND": "8x8",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__CLIENT_ID": CLIENT_ID,
            "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
        }

    def secrets(self, sim: EightByEightSimulator) -> list[str]:
        return [CLIENT_SECRET]

    def seed(self, sim: EightByEightSimulator) -> dict[str, Expected]:
        expected: dict[str, Expected] = {}
        for n in range(5):
            rep = 1 if n % 2 == 0 else 2
            contact = f"+1415555{n:04d}"
            object_id = f"8x8-obj-{n}"
            item = call_recording(
                object_id,
                STARTED + timedelta(minutes=n),
                user_email=f"rep{rep}@example.com",
                user_name=f"Rep {rep}",
                direction="OUTBOUND" if n % 2 == 0 else "INBOUND",
                address=contact,
            )
            sim.api.add(item, mp3_bytes(1))
            expected[object_id] = Expected(f"user-{rep}", contact.lstrip("+"))
        recent = datetime.now(UTC) - timedelta(minutes=10)
        sim.api.add(call_recording("8x8-late", recent, state="PENDING"))
        return expected

    def while_running(self, sim: EightByEightSimulator, run: DaemonRun) -> None:
        sim.api.make_available("8x8-late", mp3_bytes(1))
        run.wait_for(lambda: run.counts()["uploaded"] == 6, 60, "the late recording's upload")

    def check(self, sim: EightByEightSimulator, run: DaemonRun) -> None:
        # One token for the whole run (8x8's lasts 1799 s).
        assert sim.api.tokens.minted == 1
