"""The worker's stages: a row's download, then its upload, with slots per host.

A download waits on the provider, an upload on Siro's API and on the storage its signed URL
points to (Google Cloud Storage for Siro). Each host has ``worker.concurrency`` slots of its
own, taken around its requests only: a row takes a download slot (if its recording is not in
the spool yet) and gives it up when the download ends; then a storage slot for the signed URL
and the PUT (a Siro slot around the signed-URL request, so that the URL is fresh when the PUT
starts), and a Siro slot again for the create. All of it runs in the one thread that works the
row: a row is never worked by two threads, and per host no more than ``concurrency`` requests
run at once.

Slots per host, not per step, matter because an upload makes three requests to two hosts: with
one slot held from the signed URL to the create, ``concurrency`` uploads at once would leave
Siro's API idle during every PUT and the storage idle during every create, and the state
writes in between would hold the slot too.

The drain loop claims rows only while the rows "ahead" (waiting for a download slot,
downloading, or downloaded and waiting for their first storage slot) are fewer than
``concurrency``. The pool has ``3 x concurrency`` threads, so at most that many rows are in
flight, at most ``concurrency`` of them downloading, and the spool holds at most that many
recordings of this worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from poller.domain.records import Call


class Stages:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._downloads = threading.BoundedSemaphore(concurrency)
        self._storage = threading.BoundedSemaphore(concurrency)
        self._siro = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._ahead: set[int] = set()  # rows claimed that have held no storage slot yet
        self._freed: Future[None] = Future()

    @property
    def threads(self) -> int:
        """Threads enough to keep every host's slots busy: a thread per download slot, and two
        per upload (one in a storage slot, one in a Siro slot or in a state write between)."""
        return 3 * self.concurrency

    @property
    def claim_batch(self) -> int:
        """How much room the drain loop waits for while rows are in flight: a claim is a
        transaction of its own, and claiming each row alone cost one per row. A quarter of the
        slots keeps the download stage nearly full when downloads are the slow part."""
        return max(1, self.concurrency // 4)

    def room(self) -> int:
        """How many rows a claim may take now."""
        with self._lock:
            return self.concurrency - len(self._ahead)

    def room_freed(self) -> Future[None]:
        """Done once a row has left the rows ahead after this call: the drain loop waits on it
        with the rows' futures, so that it claims as soon as there is room (taken before it
        reads ``room``, it misses no wake-up)."""
        with self._lock:
            if self._freed.done():
                self._freed = Future()
            return self._freed

    def admit(self, call_id: int) -> None:
        """A claimed row enters, ahead of the upload stage until it takes a storage slot."""
        with self._lock:
            self._ahead.add(call_id)

    @contextmanager
    def download(self) -> Iterator[None]:
        with self._downloads:
            yield

    @contextmanager
    def storage(self, call_id: int) -> Iterator[None]:
        """A slot for the row's PUT to Siro's storage (and the signed URL it needs): the row
        is no longer ahead of the upload stage."""
        with self._storage:
            self._leave_ahead(call_id)
            yield

    @contextmanager
    def siro(self) -> Iterator[None]:
        """A slot for one request to Siro's API."""
        with self._siro:
            yield

    def leave(self, call_id: int) -> None:
        """The row's turn is over, in whichever stage it ended."""
        self._leave_ahead(call_id)

    def _leave_ahead(self, call_id: int) -> None:
        with self._lock:
            if call_id not in self._ahead:
                return
            self._ahead.discard(call_id)
            if not self._freed.done():
                self._freed.set_result(None)


class InFlight:
    """The rows a drain has handed to its threads: each row's future, and since when."""

    def __init__(
        self, pool: ThreadPoolExecutor, stages: Stages, process: Callable[[Call], None]
    ) -> None:
        self.pool = pool
        self.stages = stages
        self.process = process
        self.futures: dict[Future[None], int] = {}
        self.since: dict[int, float] = {}  # monotonic time each row was handed to its thread
        # Rows claimed again while their turn here still runs: taken up once it is over.
        self.reclaimed: set[int] = set()

    def __len__(self) -> int:
        return len(self.futures)

    def ids(self) -> set[int]:
        return set(self.since)

    def submit(self, call: Call) -> None:
        self.stages.admit(call.id)
        self.futures[self.pool.submit(self.process, call)] = call.id
        self.since[call.id] = time.monotonic()

    def finished(self, future: Future[None]) -> int:
        call_id = self.futures.pop(future)
        del self.since[call_id]
        return call_id
