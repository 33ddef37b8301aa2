"""`siro-poller run` as a process against the Outreach simulator and the Siro fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.outreach_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OutreachSimulator,
    outreach_call,
)
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestOutreach(DaemonProfileContract[OutreachSimulator]):
    skipped = 1
    refresh_token = ""

    def simulator(self) -> AbstractContextManager[OutreachSimulator]:
        return OutreachSimulator()

    def settings(self, sim: OutreachSimulator) -> dict[str, str]:
        # The refresh token the operator seeded once; the listing follows links.next.
        self.refresh_token = sim.api.seed_refresh_token()
        return {
            "PROVIDER__KIND": "outreach",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__CLIENT_ID": CLIENT_ID,
            "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            "PROVIDER__REDIRECT_URI": REDIRECT_URI,
            "PROVIDER__REFRESH_TOKEN": self.refresh_token,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{sim.media_host}"]',
        }

    def secrets(self, sim: OutreachSimulator) -> list[str]:
        return [self.refresh_token, CLIENT_SECRET]

    def seed(self, sim: OutreachSimulator) -> dict[str, Expected]:
        api = sim.api
        api.add_user(10, "rep1@example.com", "Rep One")
        api.add_user(11, "rep2@example.com", "Rep Two")
        expected: dict[str, Expected] = {}
        for n in range(5):
            user_id, direction = (10, "outbound") if n % 2 == 0 else (11, "inbound")
            contact, rep_line = f"+1415555{n:04d}", "+17705559999"
            from_, to = (rep_line, contact) if direction == "outbound" else (contact, rep_line)
            record = outreach_call(
                100 + n,
                STARTED + timedelta(minutes=n),
                user_id=user_id,
                direction=direction,
                from_=from_,
                to=to,
            )
            api.add_call(record, mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5))
            expected[str(100 + n)] = Expected(f"user-{user_id - 9}", contact.removeprefix("+1"))
        api.add_call(outreach_call(200, STARTED + timedelta(minutes=9), outcome="Not Answered"))
        return expected

    def check(self, sim: OutreachSimulator, run: DaemonRun) -> None:
        # Two users, each looked up once; one refresh, never a replay; no token on the media host.
        api = sim.api
        assert api.count("/api/v2/users/") == 2
        assert (api.issuer.refreshes, api.issuer.replays) == (1, 0)
        media = [r for r in api.media.requests if r.path.startswith("/media/")]
        assert len(media) == 5 and all(r.header("authorization") is None for r in media)
