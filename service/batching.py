"""Dynamic batching, as Triton Inference Server does it: concurrent requests for the same graph are
merged into one onnxruntime run and their rows split back out afterwards.

One worker thread per graph takes everything queued (up to MAX_BATCH_SIZE rows; a row of a size-free graph, an
image larger than the training size, counts as the training-size images its pixels make up, so that a batch's
memory stays bounded whatever the size: `row_units`). It waits for more
only while requests that announced themselves (`expect`) have not yet arrived, and never longer than
BATCH_DELAY_MS after the oldest one: a lone request runs at once, a burst runs as one batch. An
announcement ends when its request submits (the announcement travels with the request's context,
into the thread that submits), so a request never waits for itself. Requests rarely pause before they
submit, though: an event loop's submissions are held until the loop has run the tasks it has already
woken, so that the requests of one network read run as one batch. The queue is bounded; a full
queue refuses at once with OverloadedError (HTTP 503, Retry-After). Callers either block on their
rows (`batcher(feeds)`, from worker threads) or await the future of `submit` (from the event loop:
the hot routes skip the worker-thread hop, dearer than the rest of the request).
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

from contract.errors import InvalidInputError, OverloadedError
from service.metrics import BATCH_SIZE, QUEUE_DEPTH

Feeds = dict[str, np.ndarray]
Signature = tuple[tuple[str, str, tuple[int, ...]], ...]  # per input: name, dtype, shape without the batch axis
StopFn = Callable[[], bool]
RunFn = Callable[[Feeds, StopFn], list[np.ndarray]]  # (merged feeds, should_stop) -> outputs
UnitsFn = Callable[[Feeds], int]  # what one row of these feeds counts for against MAX_BATCH_SIZE
Outcome = list[np.ndarray] | Exception  # a request's slice of every output, or why it failed


def batch_rows(feeds: Feeds, input_axes: dict[str, int]) -> int:
    """The one batch size that every input agrees on. A request whose inputs disagree is refused here, before it
    can join a batch: concatenated with others, its rows could add up to a consistent total and be split back
    wrongly, handing other clients' rows to it and its rows to them."""
    if set(feeds) != set(input_axes):
        raise InvalidInputError(f"inputs {sorted(feeds)} do not match the graph's {sorted(input_axes)}")
    rows = {}
    for name, axis in input_axes.items():
        if feeds[name].ndim <= axis:
            raise InvalidInputError(f"input {name} has {feeds[name].ndim} dimensions; its batch axis is {axis}")
        rows[name] = feeds[name].shape[axis]
    if len(set(rows.values())) != 1:
        sizes = ", ".join(f"{name} {count}" for name, count in rows.items())
        raise InvalidInputError(f"the inputs disagree on the batch size ({sizes} rows)")
    return next(iter(rows.values()))


def signature(feeds: Feeds, input_axes: dict[str, int]) -> Signature:
    """What two requests must share to run as one batch: every input's dtype and its shape off the batch axis."""
    return tuple(
        (name, feeds[name].dtype.str, feeds[name].shape[:axis] + feeds[name].shape[axis + 1 :])
        for name, axis in sorted(input_axes.items())
    )


@dataclass
class Pending:
    feeds: Feeds
    rows: int
    units: int  # rows x what each row counts for
    signature: Signature
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
        run: RunFn,
        input_axes: dict[str, int],
        output_axes: list[int],
        max_batch: int,
        max_delay: float,
        max_queue: int,
        labels: tuple[str, str],
        row_units: UnitsFn | None = None,
    ):
        self.run, self.input_axes, self.output_axes, self.row_units = run, input_axes, output_axes, row_units
        self.max_batch, self.max_delay, self.max_queue = max_batch, max_delay, max_queue
        self.queue: deque[Pending] = deque()
        self.queued_units = 0
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

    def _check_room(self, units: int) -> None:
        if self.closed:
            raise OverloadedError("the service is shutting down")
        # An empty queue admits any one request, so a request larger than the bound still runs alone.
        if self.queued_units and self.queued_units + units > self.max_queue:
            raise OverloadedError(f"the inference queue is full ({self.queued_units} rows waiting); retry shortly")

    def _held(self) -> bool:
        return time.monotonic() < self.held_until

    def _wake_if_ready(self) -> None:
        """Wake the worker only when it can act: a first request in an empty queue, or a forming batch that
        is full or waits for no one else; while an event loop holds the batch, `_release` wakes it instead.
        Each wake-up is a thread switch, dearer than most of a request."""
        if self.queued_units >= self.max_batch or (
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
        rows = batch_rows(feeds, self.input_axes)
        units = rows * self.units_per_row(feeds)
        result = Future() if loop is None else loop.create_future()
        arrived = time.monotonic()
        pending = Pending(feeds, rows, units, signature(feeds, self.input_axes), arrived, result, should_stop, loop)
        with self.condition:
            self._check_room(units)
            for announcement in ANNOUNCEMENTS.get():
                if announcement.batcher is self:
                    self._arrived(announcement)
            self.queue.append(pending)
            self.queued_units += units
            self.depth.set(self.queued_units)
            if loop is not None and self.max_delay and not self._held():  # no delay, nothing to hold
                self.held_until = pending.arrived + self.max_delay
                loop.call_soon(self._release)
            self._wake_if_ready()
        return pending.result

    def units_per_row(self, feeds: Feeds) -> int:
        return 1 if self.row_units is None else max(1, self.row_units(feeds))

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify()
        self.worker.join(timeout=5)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:
                self._run(batch)
            del batch  # while the worker waits for the next batch, this one's arrays are nobody's to keep

    def _next_batch(self) -> list[Pending] | None:
        with self.condition:
            while not self.queue:
                if self.closed:
                    return None
                self.condition.wait()
            while self.queued_units < self.max_batch and (self.expected > 0 or self._held()):
                remaining = self.queue[0].arrived + self.max_delay - time.monotonic()
                if remaining <= 0:
                    break
                self.condition.wait(remaining)
            batch, units, skipped = [], 0, deque()
            # The oldest request leads; later ones join it only if they fit and look alike, the rest keep their order.
            while self.queue and units < self.max_batch:
                pending = self.queue.popleft()
                if batch and (pending.signature != batch[0].signature or units + pending.units > self.max_batch):
                    skipped.append(pending)
                    continue
                self.queued_units -= pending.units
                if pending.claim():
                    batch.append(pending)
                    units += pending.units
            self.queue.extendleft(reversed(skipped))
            self.depth.set(self.queued_units)
            return batch

    def _run(self, batch: list[Pending]) -> None:
        def should_stop() -> bool:
            return all(p.should_stop is not None and p.should_stop() for p in batch)

        if len(batch) == 1:
            self._settle([(batch[0], self._run_alone(batch[0], should_stop))])
            return
        try:
            outcomes = self._split(batch, self.run(self._merge(batch), should_stop))
        except Exception:
            # One request's bad input must not fail the others, nor may outputs that cannot be split back by rows
            # reach anyone: run each request on its own instead.
            self._settle([(pending, self._run_alone(pending, should_stop)) for pending in batch])
            return
        self.batch_size.observe(sum(p.rows for p in batch))
        self._settle(outcomes)

    def _run_alone(self, pending: Pending, should_stop: StopFn) -> Outcome:
        """One request's rows, at most max_batch units at a time (one row at least): a request larger than a batch
        runs in slices, so that the graphs' working memory is bounded by MAX_BATCH_SIZE, not by the request limits."""
        step = max(1, self.max_batch // (pending.units // pending.rows))
        try:
            parts = []
            for start in range(0, pending.rows, step):
                rows = slice(start, start + step)
                feeds = {
                    name: array[(slice(None),) * self.input_axes[name] + (rows,)]
                    for name, array in pending.feeds.items()
                }
                parts.append(self.run(feeds, should_stop))
                self.batch_size.observe(min(step, pending.rows - start))
        except Exception as error:  # re-raised where the caller waits
            return error
        if len(parts) == 1:
            return parts[0]
        by_output = zip(*parts, strict=True)
        return [np.concatenate(outputs, axis=axis) for outputs, axis in zip(by_output, self.output_axes, strict=True)]

    def _merge(self, batch: list[Pending]) -> Feeds:
        return {
            name: np.concatenate([p.feeds[name] for p in batch], axis=axis) for name, axis in self.input_axes.items()
        }

    def _split(self, batch: list[Pending], outputs: list[np.ndarray]) -> list[tuple[Pending, Outcome]]:
        total = sum(p.rows for p in batch)
        if len(outputs) != len(self.output_axes) or any(
            out.ndim <= axis or out.shape[axis] != total for out, axis in zip(outputs, self.output_axes, strict=True)
        ):
            raise ValueError(f"the outputs of a {total}-row batch do not have {total} rows on their batch axes")
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
