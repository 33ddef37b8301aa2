"""`siro-poller run` as a process against the Freshcaller simulator and the Siro fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.freshcaller_server import API_KEY, FreshcallerSimulator, freshcaller_call
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestFreshcaller(DaemonProfileContract[FreshcallerSimulator]):
    def simulator(self) -> AbstractContextManager[FreshcallerSimulator]:
        return FreshcallerSimulator()

    def settings(self, sim: FreshcallerSimulator) -> dict[str, str]:
        # The listing walks pages to meta.total_pages.
        return {
            "PROVIDER__KIND": "freshcaller",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__API_KEY": API_KEY,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{sim.media_host}"]',
        }

    def secrets(self, sim: FreshcallerSimulator) -> list[str]:
        return [API_KEY]

    def seed(self, sim: FreshcallerSimulator) -> dict[str, Expected]:
        api = sim.api
        api.add_user(10, "rep1@example.com", "Rep One")
        api.add_user(11, "rep2@example.com", "Rep Two")
        expected: dict[str, Expected] = {}
        for n in range(5):
            agent, direction = (10, "outgoing") if n % 2 == 0 else (11, "incoming")
            contact = f"+1415555{n:04d}"
            record = freshcaller_call(
                100 + n,
                STARTED + timedelta(minutes=n),
                agent_id=agent,
                agent_name=f"Rep {agent}",
                direction=direction,
                customer_number=contact,
            )
            api.add_call(record, mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5))
            expected[str(100 + n)] = Expected(f"user-{agent - 9}", contact)
        return expected

    def check(self, sim: FreshcallerSimulator, run: DaemonRun) -> None:
        # The user list read once; no page past the last; no key on the media host.
        api = sim.api
        assert api.count("/api/v1/users") == 1
        listing_pages = [r.param("page") for r in api.requests if r.path == "/api/v1/calls"]
        assert "4" not in listing_pages
        media = [r for r in api.media.requests if r.path.startswith("/media/")]
        assert len(media) == 5 and all(r.header("x-api-auth") is None for r in media)
