"""When the service hands freed memory back to the OS: after requests that moved many bytes or ran long."""

import threading

from service.memory import MemoryRelease


def counting_release(threshold_bytes: int, threshold_seconds: float) -> tuple[MemoryRelease, threading.Event]:
    release = MemoryRelease(threshold_bytes, threshold_seconds)
    trimmed = threading.Event()
    release.malloc_trim = lambda _pad: trimmed.set() or 1
    release.TRIM_INTERVAL, release.TRIM_WINDOW = 0.01, 0.05
    return release, trimmed


def test_a_large_body_or_a_long_request_starts_trimming_and_a_short_small_one_does_not() -> None:
    for size, seconds, expected in [(10, 0.01, False), (2048, 0.01, True), (10, 3.0, True)]:
        release, trimmed = counting_release(1024, 0.25)
        release.after(size, seconds)
        assert trimmed.wait(1) is expected, (size, seconds)


def test_without_a_duration_threshold_only_bytes_count() -> None:
    release, trimmed = counting_release(1024, 0.0)
    release.after(10, 60.0)
    assert not trimmed.wait(0.2)
