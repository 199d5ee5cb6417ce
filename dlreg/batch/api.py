"""`run_batch`: the whole batch in one call (the CLI, Slicer's Python console and scripts use it).

Reads the manifest, keeps the jobs already finished with the same row and options, runs the
rest on Dask, then writes OUTPUT/results.csv, OUTPUT/results.jsonl and OUTPUT/report.html.
The tables and the report are written even when the run is interrupted, from every record
there is; running the same call again finishes the batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from dlreg.batch.jobs import Job, RowFailure, base_record
from dlreg.batch.manifest import read_manifest
from dlreg.batch.outputs import job_folder, read_record
from dlreg.batch.progress import CallbackReporter, Reporter
from dlreg.batch.report import REPORT_NAME, write_report
from dlreg.batch.results import CSV_NAME, write_results
from dlreg.errors import CancelledError
from dlreg.progress import ProgressCallback

# Exit codes of `python -m dlreg batch` (and BatchSummary.exit_code).
# 1 stays what it is for every command (an unexpected failure), 2 a user error.
EXIT_OK = 0             # every job done
EXIT_UNUSABLE = 2       # nothing ran: a bad manifest or option, or no scheduler (the message says what)
EXIT_SOME_FAILED = 3    # the batch ran to the end, but some jobs failed (results.csv says which and why)
EXIT_INTERRUPTED = 130  # Ctrl-C: finished jobs are kept; the same command finishes the batch


@dataclass
class BatchSummary:
    """What a batch did: one record per manifest row, in manifest order."""

    output: Path
    records: list[dict]
    ran: int  # jobs run by this call (the others were done before, failed in the manifest, or not run)

    @property
    def results_csv(self) -> Path:
        return self.output / CSV_NAME

    @property
    def report_html(self) -> Path:
        return self.output / REPORT_NAME

    def counts(self) -> dict[str, int]:
        """succeeded, failed, not_run, and how many were run by this call."""
        status = [r["status"] for r in self.records]
        return {"succeeded": status.count("done"), "failed": status.count("failed"),
                "not_run": status.count("pending"), "ran": self.ran}

    @property
    def exit_code(self) -> int:
        counts = self.counts()
        if counts["not_run"]:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if counts["failed"] else EXIT_OK

    def describe(self) -> str:
        """One line for people."""
        c = self.counts()
        return (f"{len(self.records)} jobs: {c['succeeded']} done, {c['failed']} failed, {c['not_run']} not run "
                f"({c['ran']} run now); results {self.results_csv}, report {self.report_html}")


def run_batch(manifest: str | os.PathLike, output: str | os.PathLike, *, scheduler: str | None = None,
              n_workers: int | None = None, save_images: bool = False,
              progress: ProgressCallback | None = None) -> BatchSummary:
    """Run every job of `manifest` into the folder `output`; return the summary.

    `scheduler`: an existing Dask scheduler's address (tcp://HOST:PORT) or scheduler file; default: a local
    cluster of `n_workers` single-threaded processes (default: one per core). `save_images`:
    registrations also write the moving image resampled on the fixed grid. `progress`: the
    project's `progress(fraction, message) -> keep_going` callback; returning False cancels
    the jobs not yet finished (CancelledError, after the tables are written).
    """
    reporter = CallbackReporter(progress) if progress is not None else Reporter()
    return execute_batch(manifest, output, reporter, scheduler=scheduler, n_workers=n_workers,
                         save_images=save_images)


def execute_batch(manifest: str | os.PathLike, output: str | os.PathLike, reporter: Reporter, *,
                  scheduler: str | None = None, n_workers: int | None = None,
                  save_images: bool = False) -> BatchSummary:
    """`run_batch` with any reporter (the CLI's bar or JSON lines)."""
    from dlreg.batch.driver import dask_client, run_on_dask

    rows = read_manifest(manifest, save_images=save_images)
    output = Path(output).absolute()
    output.mkdir(parents=True, exist_ok=True)
    records = {row.id: known_record(row, output) for row in rows}
    todo = [row for row in rows if isinstance(row, Job) and records[row.id]["status"] != "done"]
    skipped = sum(isinstance(row, Job) for row in rows) - len(todo)
    reporter.start(len(rows), len(todo), skipped)
    ran = 0
    try:
        if todo:
            with dask_client(scheduler, n_workers) as client:
                for record in run_on_dask(client, todo, output):
                    records[record["id"]] = record
                    ran += 1
                    if not reporter.job(record):
                        raise CancelledError(f"batch cancelled after {ran} of {len(todo)} jobs; "
                                             "run it again to finish")
    finally:
        summary = BatchSummary(output, [records[row.id] for row in rows], ran)
        write_results(output, summary.records)
        write_report(output, summary.records, str(manifest))
    reporter.end(summary)
    return summary


def known_record(row: Union[Job, RowFailure], output: Path) -> dict:
    """A row's record before running: its failure, its stored result when finished with the same
    row and options and all its files present, else pending."""
    if isinstance(row, RowFailure):
        return {"id": row.id, "task": row.task, "key": "", "status": "failed", "reason": row.reason,
                **row.inputs, "files": {}}
    stored = read_record(job_folder(output, row.id))
    if (stored and stored.get("status") == "done" and stored.get("key") == row.key
            and all((output / path).is_file() for path in stored.get("files", {}).values())):
        return stored
    return base_record(row)
