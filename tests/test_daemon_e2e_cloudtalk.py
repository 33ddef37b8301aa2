"""`siro-poller run` as a process against the CloudTalk simulator and the Siro fake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from poller.simulators.audio import wav_bytes
from poller.simulators.cloudtalk_server import (
    KEY_ID,
    KEY_SECRET,
    CloudTalkApi,
    cloudtalk_agent,
    cloudtalk_call,
)
from poller.simulators.kit import serve
from tests.profile_e2e import STARTED, DaemonProfileContract, DaemonRun, Expected


class TestCloudTalk(DaemonProfileContract[CloudTalkApi]):
    skipped = 1

    @contextmanager
    def simulator(self) -> Iterator[CloudTalkApi]:
        api = CloudTalkApi()
        with serve(api):
            yield api

    def settings(self, sim: CloudTalkApi) -> dict[str, str]:
        # The listing walks pages up to responseData.pageCount.
        return {
            "PROVIDER__KIND": "cloudtalk",
            "PROVIDER__BASE_URL": sim.url,
            "PROVIDER__USERNAME": KEY_ID,
            "PROVIDER__PASSWORD": KEY_SECRET,
        }

    def secrets(self, sim: CloudTalkApi) -> list[str]:
        return [KEY_SECRET]

    def seed(self, sim: CloudTalkApi) -> dict[str, Expected]:
        agents = [
            cloudtalk_agent(7, "rep1@example.com", "Rep One"),
            cloudtalk_agent(8, "rep2@example.com", "Rep Two"),
        ]
        expected: dict[str, Expected] = {}
        for n in range(5):
            agent = agents[n % 2]
            contact = f"1415555{n:04d}"
            call = cloudtalk_call(
                100 + n,
                STARTED + timedelta(minutes=n),
                agent=agent,
                call_type="outgoing" if n % 2 == 0 else "incoming",
                external=int(contact),
            )
            sim.add_call(call, wav_bytes(0.5))
            expected[str(100 + n)] = Expected(f"user-{n % 2 + 1}", contact)
        sim.add_call(
            cloudtalk_call(200, STARTED + timedelta(minutes=9), agent=agents[0], recorded=False)
        )
        return expected

    def check(self, sim: CloudTalkApi, run: DaemonRun) -> None:
        # Each recording fetched once, from its own path.
        assert sim.count("/api/calls/recording/") == 5
