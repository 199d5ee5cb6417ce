"""Seconds per named stage of a run (the rigid pipeline's stage times, a batch job's read/run/write)."""

from __future__ import annotations

import time


class StageClock:
    """Seconds spent in each named stage, each measured from the end of the previous one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def stage(self, name: str) -> None:
        """Close stage `name` now."""
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now
