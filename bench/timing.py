"""The one timing rule every bench shares: a warm-up run, then the median of the repeats."""

import statistics
import time
from collections.abc import Callable


def median_seconds(work: Callable[[], object], repeats: int, synchronize: Callable[[], None] = lambda: None) -> float:
    """`synchronize` waits for queued device work (torch.cuda.synchronize), so a run is timed to its end."""
    work()
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def alternating_seconds(works: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each work's time in every repeat, the works run one after the other within a repeat (after one warm-up
    each), so that a ratio of two works taken repeat by repeat sees the same minute of the machine's drift."""
    for work in works.values():
        work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return times
