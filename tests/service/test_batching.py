import asyncio
import threading
import time

import numpy as np
import pytest

from contract.errors import InvalidInputError, OverloadedError
from service.batching import Batcher


class Recorder:
    """A fake graph: doubles its input, records the batch sizes it ran, fails on negative rows."""

    def __init__(self, delay: float = 0.0):
        self.sizes: list[int] = []
        self.delay = delay

    def __call__(self, feeds: dict[str, np.ndarray], should_stop=None) -> list[np.ndarray]:
        x = feeds["x"]
        if (x < 0).any():
            raise ValueError("negative input")
        time.sleep(self.delay)
        self.sizes.append(len(x))
        return [x * 2, x.sum(axis=1)]


def make(run: Recorder, max_batch: int = 64, max_delay: float = 0.5, max_queue: int = 1000) -> Batcher:
    return Batcher(run, {"x": 0}, [0, 0], max_batch, max_delay, max_queue, ("test", "graph"))


def submit_all(batcher: Batcher, inputs: list[np.ndarray], expect: bool) -> list:
    results: list = [None] * len(inputs)

    def client(i: int) -> None:
        try:
            results[i] = batcher({"x": inputs[i]})
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    contexts = [batcher.expect() for _ in inputs] if expect else []
    for context in contexts:
        context.__enter__()
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    for context in contexts:
        context.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    return results


def test_announced_concurrent_requests_run_as_one_batch_and_get_their_own_rows() -> None:
    run = Recorder()
    batcher = make(run)
    inputs = [np.full((1 + i % 3, 4), float(i)) for i in range(12)]
    results = submit_all(batcher, inputs, expect=True)
    assert run.sizes == [sum(len(x) for x in inputs)]  # one onnxruntime run for all twelve
    for x, (doubled, sums) in zip(inputs, results, strict=True):
        assert np.array_equal(doubled, x * 2) and np.array_equal(sums, x.sum(axis=1))
    batcher.close()


def test_a_lone_request_does_not_wait_for_the_delay() -> None:
    batcher = make(Recorder(), max_delay=2.0)
    started = time.monotonic()
    batcher({"x": np.ones((1, 4))})
    assert time.monotonic() - started < 0.5
    batcher.close()


def test_an_announced_request_does_not_wait_for_itself() -> None:
    batcher = make(Recorder(), max_delay=2.0)
    started = time.monotonic()
    with batcher.expect():
        batcher({"x": np.ones((1, 4))})
    assert time.monotonic() - started < 0.5
    batcher.close()


def test_batches_never_exceed_the_maximum() -> None:
    run = Recorder()
    batcher = make(run, max_batch=4)
    submit_all(batcher, [np.ones((1, 2))] * 10, expect=True)
    assert max(run.sizes) <= 4 and sum(run.sizes) == 10
    batcher.close()


def test_a_bad_request_fails_alone() -> None:
    batcher = make(Recorder())
    inputs = [np.ones((1, 2)), -np.ones((1, 2)), np.ones((2, 2))]
    results = submit_all(batcher, inputs, expect=True)
    assert isinstance(results[1], ValueError)
    assert np.array_equal(results[0][0], inputs[0] * 2) and np.array_equal(results[2][0], inputs[2] * 2)
    batcher.close()


def test_a_bad_request_fails_alone_in_the_event_loop_too() -> None:
    run = Recorder()
    batcher = make(run)

    async def clients() -> list:
        loop = asyncio.get_running_loop()
        inputs = [np.ones((1, 2)), -np.ones((1, 2)), np.ones((2, 2))]
        futures = [batcher.submit({"x": x}, loop=loop) for x in inputs]  # one loop turn: one batch, which fails
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(clients())
    assert isinstance(results[1], ValueError) and run.sizes == [1, 2]  # then each ran alone; the bad one failed
    assert results[0][0].tolist() == [[2.0, 2.0]] and results[2][0].tolist() == [[2.0, 2.0]] * 2
    batcher.close()


def test_a_full_queue_refuses_at_once() -> None:
    run = Recorder(delay=0.3)
    batcher = make(run, max_batch=1, max_queue=2)
    results = submit_all(batcher, [np.ones((1, 2))] * 6, expect=False)
    refused = [r for r in results if isinstance(r, OverloadedError)]
    assert refused and all(r.status == 503 and r.headers["Retry-After"] for r in refused)
    assert len(refused) + len(run.sizes) == 6  # every request got exactly one answer
    batcher.close()


def test_a_full_queue_refuses_announcements_too() -> None:
    batcher = make(Recorder(delay=0.5), max_batch=1, max_queue=1)
    threads = [threading.Thread(target=batcher, args=({"x": np.ones((1, 2))},)) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # the first runs, the second waits in the queue: it is full
    with pytest.raises(OverloadedError, match="queue is full"), batcher.expect():
        pass
    for thread in threads:
        thread.join(5)
    with batcher.expect():  # room again
        pass
    batcher.close()


def test_closed_batcher_refuses() -> None:
    batcher = make(Recorder())
    batcher.close()
    with pytest.raises(OverloadedError, match="shutting down"):
        batcher({"x": np.ones((1, 2))})


def test_a_cancelled_submission_is_skipped_and_the_worker_goes_on() -> None:
    run = Recorder(delay=0.3)
    batcher = make(run, max_batch=1)
    first = batcher.submit({"x": np.ones((1, 2))})  # occupies the worker
    time.sleep(0.05)
    cancelled = batcher.submit({"x": np.full((1, 2), 5.0)})
    assert cancelled.cancel()  # its caller went away while it waited in the queue
    assert np.array_equal(batcher({"x": np.ones((1, 2))})[0], np.full((1, 2), 2.0))
    assert first.result(5) is not None and run.sizes == [1, 1]  # the cancelled rows never ran
    batcher.close()


def test_the_event_loop_awaits_its_rows_instead_of_blocking_a_thread() -> None:
    batcher = make(Recorder())

    async def clients() -> list:
        loop = asyncio.get_running_loop()
        futures = [batcher.submit({"x": np.full((1, 2), float(i))}, loop=loop) for i in range(2)]
        assert all(asyncio.isfuture(f) and f.get_loop() is loop for f in futures)  # the loop's own, no wrapping
        return await asyncio.gather(*futures)

    results = asyncio.run(clients())
    assert [r[0].tolist() for r in results] == [[[0.0, 0.0]], [[2.0, 2.0]]]
    batcher.close()


def test_a_cancelled_task_s_rows_are_skipped() -> None:
    run = Recorder(delay=0.3)
    batcher = make(run, max_batch=1)

    async def clients() -> list:
        loop = asyncio.get_running_loop()
        first = batcher.submit({"x": np.ones((1, 2))}, loop=loop)  # occupies the worker
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit({"x": np.full((1, 2), 5.0)}, loop=loop))
        await asyncio.sleep(0)
        gone.cancel()  # the client hung up while its rows waited in the queue
        last = batcher.submit({"x": np.ones((1, 2))}, loop=loop)
        return await asyncio.gather(first, last)

    results = asyncio.run(clients())
    assert [r[0].tolist() for r in results] == [[[2.0, 2.0]], [[2.0, 2.0]]] and run.sizes == [1, 1]
    batcher.close()


def test_requests_that_one_loop_iteration_submits_run_as_one_batch() -> None:
    run = Recorder()
    batcher = make(run, max_delay=2.0)

    async def burst() -> float:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        # As after one network read: several tasks submit before the loop gets back to its callbacks. The worker
        # would otherwise take the first lone row at once; no request announced itself to make it wait.
        futures = [batcher.submit({"x": np.full((1, 2), float(i))}, loop=loop) for i in range(5)]
        time.sleep(0.1)  # the loop stays busy: the worker must keep waiting for it
        await asyncio.gather(*futures)
        return time.monotonic() - started

    assert asyncio.run(burst()) < 1.0  # released by the loop, long before the 2 s delay
    assert run.sizes == [5]
    batcher.close()


def test_a_loop_that_never_gets_back_holds_nothing_beyond_the_delay() -> None:
    run = Recorder()
    batcher = make(run, max_delay=0.2)
    loop = asyncio.new_event_loop()
    orphan = batcher.submit({"x": np.ones((1, 2))}, loop=loop)
    loop.close()  # its release callback never runs, nor does anything that awaited the orphan
    time.sleep(0.3)
    started = time.monotonic()
    assert np.array_equal(batcher({"x": np.full((1, 2), 3.0)})[0], np.full((1, 2), 6.0))
    assert time.monotonic() - started < 0.1  # not held: the hold lapsed with the delay
    assert sum(run.sizes) == 2 and not orphan.done()  # its rows ran; its closed loop could not be told
    batcher.close()


def two_input_batcher(run) -> Batcher:
    return Batcher(run, {"x": 0, "y": 1}, [0], 64, 0.5, 1000, ("test", "pair"))


def test_a_request_whose_inputs_disagree_on_the_batch_size_is_refused_before_it_queues() -> None:
    batcher = two_input_batcher(lambda feeds, _: [feeds["x"] + feeds["y"].sum(0)])
    with pytest.raises(InvalidInputError, match="disagree on the batch size"):
        batcher.submit({"x": np.ones((2, 3)), "y": np.ones((4, 3, 3))})  # y's batch axis is 1: 3 rows, not 2
    with pytest.raises(InvalidInputError, match="do not match"):
        batcher.submit({"x": np.ones((2, 3))})
    assert batcher.queued_units == 0
    batcher.close()


def test_requests_that_cannot_be_concatenated_run_in_separate_batches() -> None:
    run = Recorder()
    batcher = make(run)
    inputs = [np.ones((1, 4)), np.ones((2, 3)), np.full((1, 4), 2.0), np.ones((1, 3))]
    results = submit_all(batcher, inputs, expect=True)
    assert sorted(run.sizes) == [2, 3]  # the 4-wide rows together, the 3-wide rows together, nothing failed
    for x, (doubled, _) in zip(inputs, results, strict=True):
        assert np.array_equal(doubled, x * 2)
    batcher.close()


def test_outputs_that_do_not_split_back_by_rows_are_never_handed_out_merged() -> None:
    sizes = []

    def summed(feeds, _):  # an output without a batch axis: its rows belong to no one request
        sizes.append(len(feeds["x"]))
        return [feeds["x"] * 2, feeds["x"].sum(axis=0, keepdims=True)]

    batcher = make(summed)
    inputs = [np.full((1, 2), float(i)) for i in range(4)]
    results = submit_all(batcher, inputs, expect=True)
    assert sizes[0] == 4 and sizes[1:] == [1, 1, 1, 1]  # tried merged, then each alone
    for x, (doubled, total) in zip(inputs, results, strict=True):
        assert np.array_equal(doubled, x * 2) and np.array_equal(total, x)
    batcher.close()


def test_a_request_larger_than_a_batch_runs_in_slices_of_at_most_a_batch() -> None:
    run = Recorder()
    batcher = make(run, max_batch=4)
    x = np.arange(20.0).reshape(10, 2)
    doubled, sums = batcher({"x": x})
    assert run.sizes == [4, 4, 2]  # the graphs' working memory is that of 4 rows, not 10
    assert np.array_equal(doubled, x * 2) and np.array_equal(sums, x.sum(axis=1))
    batcher.close()
