"""`siro-poller run` as a process against the Vonage simulator and the Siro fake."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.vonage_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    VonageSimulator,
    company_recording,
)
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected

# Vonage names a recording's rep by extension: 101 is a user's (found by email through the
# Provisioning API), 102 has no user and is mapped in siro.rep_map.
EXTENSIONS = {"101": "user-1", "102": "user-2"}


class TestVonage(DaemonProfileContract[VonageSimulator]):
    def simulator(self) -> AbstractContextManager[VonageSimulator]:
        return VonageSimulator()

    def settings(self, sim: VonageSimulator) -> dict[str, str]:
        # The listing walks the pages to total_pages.
        return {
            "PROVIDER__KIND": "vonage",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__USERNAME": USERNAME,
            "PROVIDER__PASSWORD": PASSWORD,
            "PROVIDER__CLIENT_ID": CLIENT_ID,
            "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            "SIRO__REP_MAP__EXTENSION": json.dumps({"102": "user-2"}),
        }

    def secrets(self, sim: VonageSimulator) -> list[str]:
        return [PASSWORD, CLIENT_SECRET]

    def seed(self, sim: VonageSimulator) -> dict[str, Expected]:
        api = sim.api
        api.add_extension("101", "rep1@example.com", "Rep One")
        api.add_extension("102", None, "Front desk")
        expected: dict[str, Expected] = {}
        for n in range(5):
            extension = "101" if n % 2 == 0 else "102"
            contact = f"1415555{n:04d}"
            at = STARTED + timedelta(minutes=n)
            if n % 2 == 0:
                item = company_recording(100 + n, at, extension=extension, dnis=contact)
            else:
                item = company_recording(
                    100 + n, at, direction="INBOUND", extension=extension, caller_id=contact
                )
            api.add(item, mp3_bytes(1))
            expected[str(100 + n)] = Expected(EXTENSIONS[extension], contact)
        return expected

    def check(self, sim: VonageSimulator, run: DaemonRun) -> None:
        # One password grant for the run (a token lives a day).
        grants = [r for r in sim.api.issuer.requests if r["form"].get("grant_type") == "password"]
        assert len(grants) == 1
