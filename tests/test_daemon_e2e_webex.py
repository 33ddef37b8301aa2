"""`siro-poller run` as a process against the Webex simulator and the Siro fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.webex_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    WebexSimulator,
    webex_recording,
)
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestWebex(DaemonProfileContract[WebexSimulator]):
    refresh_token = ""

    def simulator(self) -> AbstractContextManager[WebexSimulator]:
        return WebexSimulator()

    def settings(self, sim: WebexSimulator) -> dict[str, str]:
        # The refresh token the operator seeded once; the listing follows the Link header.
        self.refresh_token = sim.api.seed_refresh_token()
        return {
            "PROVIDER__KIND": "webex",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__CLIENT_ID": CLIENT_ID,
            "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            "PROVIDER__REFRESH_TOKEN": self.refresh_token,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{sim.media_host}"]',
        }

    def secrets(self, sim: WebexSimulator) -> list[str]:
        return [self.refresh_token, CLIENT_SECRET]

    def seed(self, sim: WebexSimulator) -> dict[str, Expected]:
        # Webex's recordings name their owner but no contact.
        expected: dict[str, Expected] = {}
        for n in range(5):
            rep = 1 + n % 2
            recording_id = f"9f1e{n:028x}"
            sim.api.add_recording(
                webex_recording(
                    recording_id,
                    STARTED + timedelta(minutes=n),
                    owner_email=f"rep{rep}@example.com",
                ),
                mp3_bytes(1),
            )
            expected[recording_id] = Expected(f"user-{rep}")
        return expected

    def check(self, sim: WebexSimulator, run: DaemonRun) -> None:
        # One refresh, never a replay; each link fetched fresh and used without the token.
        api = sim.api
        assert (api.issuer.refreshes, api.issuer.replays) == (1, 0)
        assert api.count("/v1/convergedRecordings/") == 5
        media = [r for r in api.media.requests if r.path.startswith("/media/")]
        assert len(media) == 5 and all(r.header("authorization") is None for r in media)
