"""Giving memory back to the operating system after large requests.

A request at the limits (MAX_IMAGES images as JSON arrays, MAX_SAMPLES samples) briefly needs much memory: the
parsed body as Python objects, the graphs' activations for the whole batch, the response. Freed, that memory stays
with the process: onnxruntime's CPU arena keeps the largest batch's activations for later runs, and glibc's malloc
keeps freed heap pages. So the service opens its sessions without the arena (package.session_options; its cost is
measured in docs/performance.md) and, after a large request, asks glibc to hand free pages back (`malloc_trim`), in
a worker thread, one trim at a time. A request is large when it moved more than TRIM_AFTER_BYTES or ran longer than
TRIM_AFTER_SECONDS: a large sample request takes seconds and much memory with a small body and answer, which the
bytes alone would miss (docs/performance.md, memory). Elsewhere than glibc, trimming does nothing.
"""

import ctypes
import ctypes.util
import threading
import time


def find_malloc_trim() -> ctypes._CFuncPtr | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


class MemoryRelease:
    """`after(size, seconds)` is told how many bytes each request moved and how long it ran. After a large one, a
    worker thread trims once a second for TRIM_WINDOW seconds: memory is freed not only when the request ends but
    also as its connection drains and closes and as concurrent requests finish, so a single trim right after it
    leaves much behind."""

    TRIM_INTERVAL, TRIM_WINDOW = 1.0, 10.0  # seconds

    def __init__(self, threshold_bytes: int, threshold_seconds: float):  # threshold_bytes 0: never trim
        self.threshold, self.threshold_seconds = threshold_bytes, threshold_seconds
        self.malloc_trim = find_malloc_trim() if threshold_bytes > 0 else None
        self.lock = threading.Lock()
        self.last_large = 0.0
        self.running = False

    def after(self, size: int, seconds: float) -> None:
        long = 0 < self.threshold_seconds <= seconds
        if self.malloc_trim is None or (size < self.threshold and not long):
            return
        with self.lock:
            self.last_large = time.monotonic()
            if self.running:
                return
            self.running = True
        threading.Thread(target=self._trim_while_recent, name="malloc-trim", daemon=True).start()

    def _trim_while_recent(self) -> None:
        while True:
            time.sleep(self.TRIM_INTERVAL)
            self.malloc_trim(0)
            with self.lock:
                if time.monotonic() - self.last_large > self.TRIM_WINDOW:
                    self.running = False
                    return
