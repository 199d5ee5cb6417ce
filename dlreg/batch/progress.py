"""Progress of a batch: a terminal bar (tqdm), JSON lines for programs, or the project's callback.

Every reporter gets `start(total, to_run, skipped)`, `job(record)` after each finished job (returning
False asks the batch to stop) and `end(summary)`. `--progress json` prints one JSON object per
line on stderr, flushed at once, that a Slicer module or any program can read as it comes. Each
line has the project's progress-line keys, "progress" (fraction of the jobs to run) and "message",
and the batch's own fields:

    {"progress": 0.0, "message": "25 of 40 jobs to run", "event": "start", "total": 40, "to_run": 25,
     "skipped": 15}
    {"progress": 0.04, "message": "1/25 s01_t2 done", "event": "job", "id": "s01_t2", "task": "register3d",
     "status": "done", "likely_failed": false, "reason": "", "done": 1, "to_run": 25,
     "jobs_per_minute": 21.3, "eta_seconds": 67.6}
    {"progress": 1.0, "message": "40 jobs: 39 done, 1 failed, ...", "event": "end", "succeeded": 39,
     "failed": 1, "not_run": 0, "ran": 25, "exit_code": 3, "results": "OUT/results.csv",
     "report": "OUT/report.html"}
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Optional, TextIO

from dlreg.errors import DLRegError
from dlreg.progress import ProgressCallback

if TYPE_CHECKING:
    from dlreg.batch.api import BatchSummary

MODES = ("bar", "json", "none")


class Reporter:
    """Silent reporter; the base of the others. Counts finished jobs and their rate."""

    def __init__(self) -> None:
        self.total = self.to_run = self.finished = 0
        self._start = time.perf_counter()

    def start(self, total: int, to_run: int, skipped: int) -> None:
        """`total` manifest rows, `to_run` jobs to run now, `skipped` jobs finished by an earlier run."""
        self.total, self.to_run, self._start = total, to_run, time.perf_counter()

    def job(self, record: dict) -> bool:
        self.finished += 1
        return True

    def end(self, summary: BatchSummary) -> None:
        """Called once, after the tables and the report are written."""

    def rate_per_minute(self) -> float:
        """Jobs finished per minute in this run so far."""
        elapsed = time.perf_counter() - self._start
        return 60.0 * self.finished / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> Optional[float]:
        rate = self.rate_per_minute()
        return 60.0 * (self.to_run - self.finished) / rate if rate > 0 else None


class BarReporter(Reporter):
    """A tqdm bar on stderr: jobs done of those to run, rate, ETA and the number failed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream, self.bar, self.failed = stream or sys.stderr, None, 0

    def start(self, total: int, to_run: int, skipped: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError as exc:
            raise DLRegError(f"the progress bar needs tqdm ({exc}): pip install 'dlreg[batch]', "
                             "or use --progress json or none") from None
        super().start(total, to_run, skipped)
        done = f" ({skipped} already done)" if skipped else ""
        self.bar = tqdm(total=to_run, unit="job", desc=f"batch{done}", file=self.stream, dynamic_ncols=True,
                        smoothing=0.1)

    def job(self, record: dict) -> bool:
        super().job(record)
        self.failed += record["status"] == "failed"
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)
        return True

    def end(self, summary: BatchSummary) -> None:
        if self.bar is not None:
            self.bar.close()
        print(summary.describe(), file=self.stream)


class JsonReporter(Reporter):
    """One JSON object per line (see the module docstring)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr

    def _emit(self, fraction: float, message: str, payload: dict) -> None:
        self.stream.write(json.dumps({"progress": round(fraction, 4), "message": message, **payload}) + "\n")
        self.stream.flush()

    def start(self, total: int, to_run: int, skipped: int) -> None:
        super().start(total, to_run, skipped)
        self._emit(0.0, f"{to_run} of {total} jobs to run",
                   {"event": "start", "total": total, "to_run": to_run, "skipped": skipped})

    def job(self, record: dict) -> bool:
        super().job(record)
        eta = self.eta_seconds()
        self._emit(self.finished / max(self.to_run, 1), f"{self.finished}/{self.to_run} {record['id']} "
                   f"{record['status']}",
                   {"event": "job", "id": record["id"], "task": record["task"], "status": record["status"],
                    "likely_failed": bool(record.get("likely_failed")), "reason": record.get("reason", ""),
                    "done": self.finished, "to_run": self.to_run,
                    "jobs_per_minute": round(self.rate_per_minute(), 2),
                    "eta_seconds": None if eta is None else round(eta, 1)})
        return True

    def end(self, summary: BatchSummary) -> None:
        self._emit(1.0, summary.describe(), {"event": "end", **summary.counts(), "exit_code": summary.exit_code,
                                             "results": str(summary.results_csv),
                                             "report": str(summary.report_html)})


class CallbackReporter(Reporter):
    """The project's `progress(fraction, message) -> keep_going` protocol (Slicer, scripts)."""

    def __init__(self, progress: ProgressCallback) -> None:
        super().__init__()
        self.progress = progress

    def start(self, total: int, to_run: int, skipped: int) -> None:
        super().start(total, to_run, skipped)
        self._ask(0.0, f"{to_run} of {total} jobs to run")

    def job(self, record: dict) -> bool:
        super().job(record)
        return self._ask(self.finished / max(self.to_run, 1),
                         f"{self.finished}/{self.to_run}: {record['id']} {record['status']}")

    def _ask(self, fraction: float, message: str) -> bool:
        keep_going = self.progress(fraction, message)
        return keep_going is None or bool(keep_going)


def reporter_for(mode: str) -> Reporter:
    """The reporter of a `--progress` mode."""
    return {"bar": BarReporter, "json": JsonReporter, "none": Reporter}[mode]()
