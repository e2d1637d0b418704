"""Peak memory of a server while it is under load: the resident set size of its process and
all its children (the API process, vLLM's engine core and workers), sampled in a background
thread."""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import psutil

INTERVAL_S = 0.2


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and its descendants now (processes that end meanwhile count 0)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


class PeakRss:
    """`with PeakRss(pid) as peak: ...` then `peak.mib`: the largest tree RSS seen in the block
    (sampled every INTERVAL_S, and once at its start and end)."""

    def __init__(self, pid: int, interval_s: float = INTERVAL_S) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self.pid))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))

    @property
    def mib(self) -> float:
        return self.peak / 2**20
