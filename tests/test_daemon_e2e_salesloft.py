"""`siro-poller run` as a process against the Salesloft simulator and the Siro fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from poller.simulators.audio import mp3_bytes, wav_bytes
from poller.simulators.salesloft_server import API_KEY, SalesloftSimulator, salesloft_cdr
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestSalesloft(DaemonProfileContract[SalesloftSimulator]):
    skipped = 1

    def simulator(self) -> AbstractContextManager[SalesloftSimulator]:
        return SalesloftSimulator()

    def settings(self, sim: SalesloftSimulator) -> dict[str, str]:
        # The listing walks Salesloft's next_page.
        return {
            "PROVIDER__KIND": "salesloft",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__TOKEN": API_KEY,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{sim.media_host}"]',
        }

    def secrets(self, sim: SalesloftSimulator) -> list[str]:
        return [API_KEY]

    def seed(self, sim: SalesloftSimulator) -> dict[str, Expected]:
        api = sim.api
        api.add_user(10, "rep1@example.com", "Rep One")
        api.add_user(11, "rep2@example.com", "Rep Two")
        expected: dict[str, Expected] = {}
        for n in range(5):
            user_id, direction = (10, "outbound") if n % 2 == 0 else (11, "inbound")
            contact = f"415555{n:04d}"
            other = "7705559999"
            from_, to = (other, contact) if direction == "outbound" else (contact, other)
            record = salesloft_cdr(
                100 + n,
                STARTED + timedelta(minutes=n),
                user_id=user_id,
                direction=direction,
                from_=from_,
                to=to,
            )
            api.add_call(record, mp3_bytes(1) if n % 2 == 0 else wav_bytes(0.5))
            expected[str(100 + n)] = Expected(f"user-{user_id - 9}", contact)
        api.add_call(salesloft_cdr(200, STARTED + timedelta(minutes=9), status="busy"))
        return expected

    def check(self, sim: SalesloftSimulator, run: DaemonRun) -> None:
        # Two users, each looked up once; no page past the last; no key on the media host.
        assert sim.api.count("/v2/users/") == 2
        media = [r for r in sim.api.media.requests if r.path.startswith("/media/")]
        assert len(media) == 5 and all(r.header("authorization") is None for r in media)
