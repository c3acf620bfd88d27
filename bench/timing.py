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
