"""Dynamic batching, as Triton Inference Server does it: concurrent requests for the same graph are
merged into one onnxruntime run and their rows split back out afterwards.

One worker thread per graph takes everything queued (up to MAX_BATCH_SIZE rows). It waits for more
only while requests that announced themselves (`expect`) have not yet arrived, and never longer than
BATCH_DELAY_MS after the oldest one: a lone request runs at once, a burst runs as one batch. An
announcement ends when its request submits (the announcement travels with the request's context,
into the thread that submits), so a request never waits for itself. Requests rarely pause before they
submit, though: an event loop's submissions are held until the loop has run the tasks it has already
woken, so that the requests of one network read run as one batch. The queue is bounded; a full
queue refuses at once with OverloadedError (HTTP 503, Retry-After). Callers either block on their
rows (`batcher(feeds)`, from worker threads) or await the future of `submit` (from the event loop:
the hot routes skip the worker-thread hop, which cost more CPU here than the rest of the request).
An event loop's futures are its own, settled by one callback per batch: a thread-safe future per
request, wrapped for the loop, cost a wake-up of the loop each.
"""

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from service.errors import OverloadedError
from service.metrics import BATCH_SIZE, QUEUE_DEPTH

Feeds = dict[str, np.ndarray]
StopFn = Callable[[], bool]
Run = Callable[[Feeds, StopFn], list[np.ndarray]]  # (merged feeds, should_stop) -> outputs
Outcome = list[np.ndarray] | Exception  # a request's slice of every output, or why it failed


@dataclass
class Pending:
    feeds: Feeds
    rows: int
    arrived: float
    result: Future | asyncio.Future  # an asyncio future belongs to `loop` and is settled there
    should_stop: StopFn | None = None  # long work (sampling) stops once every request in its batch says so
    loop: asyncio.AbstractEventLoop | None = None

    def claim(self) -> bool:
        """False when the caller has given up (cancelled) before its rows ran."""
        if self.loop is None:
            return self.result.set_running_or_notify_cancel()
        return not self.result.cancelled()


@dataclass(eq=False)
class Announcement:
    batcher: "Batcher"
    waiting: bool = True  # announced and not yet submitted


ANNOUNCEMENTS: ContextVar[tuple[Announcement, ...]] = ContextVar("announcements", default=())


class Batcher:
    def __init__(
        self,
        run: Run,
        input_axes: dict[str, int],
        output_axes: list[int],
        max_batch: int,
        max_delay: float,
        max_queue: int,
        labels: tuple[str, str],
    ):
        self.run, self.input_axes, self.output_axes = run, input_axes, output_axes
        self.max_batch, self.max_delay, self.max_queue = max_batch, max_delay, max_queue
        self.queue: deque[Pending] = deque()
        self.queued_rows = 0
        self.expected = 0  # requests that announced themselves and have not submitted yet
        # An event loop's submissions wait for the tasks that loop has already woken: until it releases them,
        # or the delay passes (a loop that never gets back, closed or stuck, holds nothing longer).
        self.held_until = 0.0
        self.condition = threading.Condition()
        self.depth = QUEUE_DEPTH.labels(*labels)
        self.batch_size = BATCH_SIZE.labels(*labels)
        self.closed = False
        self.worker = threading.Thread(target=self._work, name=f"batcher-{'.'.join(labels)}", daemon=True)
        self.worker.start()

    @contextmanager
    def expect(self) -> Iterator[None]:
        """Announce a request that will submit soon, so a forming batch waits for it (bounded by the delay)."""
        announcement = Announcement(self)
        with self.condition:
            self._check_room(1)  # a full queue refuses here, before the request takes a worker thread
            self.expected += 1
        token = ANNOUNCEMENTS.set((*ANNOUNCEMENTS.get(), announcement))
        try:
            yield
        finally:
            ANNOUNCEMENTS.reset(token)
            with self.condition:
                self._arrived(announcement)
                self._wake_if_ready()

    def _check_room(self, rows: int) -> None:
        if self.closed:
            raise OverloadedError("the service is shutting down")
        # An empty queue admits any one request, so a request larger than the bound still runs alone.
        if self.queued_rows and self.queued_rows + rows > self.max_queue:
            raise OverloadedError(f"the inference queue is full ({self.queued_rows} rows waiting); retry shortly")

    def _held(self) -> bool:
        return time.monotonic() < self.held_until

    def _wake_if_ready(self) -> None:
        """Wake the worker only when it can act: a first request in an empty queue, or a forming batch that
        is full or waits for no one else; while an event loop holds the batch, `_release` wakes it instead.
        Each wake-up is a thread switch, dearer than most of a request."""
        if self.queued_rows >= self.max_batch or (
            self.queue and not self._held() and (len(self.queue) == 1 or self.expected == 0)
        ):
            self.condition.notify()

    def _release(self) -> None:
        with self.condition:
            self.held_until = 0.0
            if self.queue:
                self.condition.notify()

    def _arrived(self, announcement: Announcement) -> None:
        if announcement.waiting:
            announcement.waiting = False
            self.expected -= 1

    def __call__(self, feeds: Feeds, should_stop: StopFn | None = None) -> list[np.ndarray]:
        """Blocks until this request's rows have been run; returns its slice of every output."""
        return self.submit(feeds, should_stop).result()

    def submit(
        self, feeds: Feeds, should_stop: StopFn | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> Future | asyncio.Future:
        """Queues this request's rows; the future holds its slice of every output once they have run.

        From an event loop (`loop`), the future is that loop's, and the batch is held until the loop gets
        back to its callbacks.
        """
        rows = next(array.shape[self.input_axes[name]] for name, array in feeds.items())
        result = Future() if loop is None else loop.create_future()
        pending = Pending(feeds, rows, time.monotonic(), result, should_stop, loop)
        with self.condition:
            self._check_room(rows)
            for announcement in ANNOUNCEMENTS.get():
                if announcement.batcher is self:
                    self._arrived(announcement)
            self.queue.append(pending)
            self.queued_rows += rows
            self.depth.set(self.queued_rows)
            if loop is not None and self.max_delay and not self._held():  # no delay, nothing to hold
                self.held_until = pending.arrived + self.max_delay
                loop.call_soon(self._release)
            self._wake_if_ready()
        return pending.result

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify()
        self.worker.join(timeout=5)

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)

    def _next_batch(self) -> list[Pending] | None:
        with self.condition:
            while not self.queue:
                if self.closed:
                    return None
                self.condition.wait()
            while self.queued_rows < self.max_batch and (self.expected > 0 or self._held()):
                remaining = self.queue[0].arrived + self.max_delay - time.monotonic()
                if remaining <= 0:
                    break
                self.condition.wait(remaining)
            batch, rows = [], 0
            while self.queue and (not batch or rows + self.queue[0].rows <= self.max_batch):
                pending = self.queue.popleft()
                self.queued_rows -= pending.rows
                if pending.claim():
                    batch.append(pending)
                    rows += pending.rows
            self.depth.set(self.queued_rows)
            return batch

    def _run(self, batch: list[Pending]) -> None:
        def should_stop() -> bool:
            return all(p.should_stop is not None and p.should_stop() for p in batch)

        if len(batch) == 1:
            self._settle([(batch[0], self._run_alone(batch[0], should_stop))])
            return
        try:
            outputs = self.run(self._merge(batch), should_stop)
        except Exception:
            # One request's bad input must not fail the others: run each on its own to find it.
            self._settle([(pending, self._run_alone(pending, should_stop)) for pending in batch])
            return
        self.batch_size.observe(sum(p.rows for p in batch))
        self._settle(self._split(batch, outputs))

    def _run_alone(self, pending: Pending, should_stop: StopFn) -> Outcome:
        try:
            outputs = self.run(pending.feeds, should_stop)
        except Exception as error:  # re-raised where the caller waits
            return error
        self.batch_size.observe(pending.rows)
        return outputs

    def _merge(self, batch: list[Pending]) -> Feeds:
        return {
            name: np.concatenate([p.feeds[name] for p in batch], axis=axis) for name, axis in self.input_axes.items()
        }

    def _split(self, batch: list[Pending], outputs: list[np.ndarray]) -> list[tuple[Pending, Outcome]]:
        outcomes, start = [], 0
        for pending in batch:
            stop = start + pending.rows
            rows = slice(start, stop)
            parts = [out[(slice(None),) * axis + (rows,)] for out, axis in zip(outputs, self.output_axes, strict=True)]
            outcomes.append((pending, parts))
            start = stop
        return outcomes

    @staticmethod
    def _settle(outcomes: list[tuple[Pending, Outcome]]) -> None:
        """Hands each caller its outcome: a waiting thread at once, an event loop's futures in one callback."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outcome]]] = defaultdict(list)
        for pending, outcome in outcomes:
            if pending.loop is None:
                set_outcome(pending.result, outcome)
            else:
                by_loop[pending.loop].append((pending.result, outcome))
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):  # the loop has closed: no one awaits these any more
                loop.call_soon_threadsafe(set_outcomes, settled)


def set_outcome(future: Future | asyncio.Future, outcome: Outcome) -> None:
    if future.done():  # an awaiting task was cancelled meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def set_outcomes(settled: list[tuple[asyncio.Future, Outcome]]) -> None:
    for future, outcome in settled:
        set_outcome(future, outcome)
