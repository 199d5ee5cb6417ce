"""Run jobs on Dask: a local cluster on this machine, or an existing cluster's scheduler.

The local cluster has one worker process per core with one thread each (the jobs set
torch's and SimpleITK's thread counts to one, `execute.threads_limited`). Jobs travel as
paths and options; each worker reads its inputs and writes the outputs itself, so the
output folder must be reachable at the same path from the client and every worker (a
shared file system on a cluster). A job whose worker dies is rescheduled by Dask on
another worker (up to the scheduler's `distributed.scheduler.allowed-failures`, 3 by
default); after that it is recorded as failed and the batch goes on.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from dlreg.batch.jobs import Job, base_record
from dlreg.batch.outputs import job_folder, write_record
from dlreg.errors import DLRegError

CONNECT_TIMEOUT_S = 30


class SchedulerError(DLRegError, RuntimeError):
    """The Dask scheduler cannot be reached or started."""


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None) -> Iterator:
    """A Dask client: of the scheduler at `scheduler` (tcp://HOST:PORT, or the JSON file that
    `dask scheduler --scheduler-file` writes), or of a new local cluster with `n_workers`
    single-threaded worker processes (default: one per core); closed afterwards."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SchedulerError(f"the batch engine needs Dask ({exc}): pip install 'dlreg[batch]'") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's start/stop chatter is not for users
    if scheduler:
        where = {"scheduler_file": scheduler} if os.path.isfile(scheduler) else {"address": scheduler}
        try:
            client = Client(**where, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    workers = n_workers or os.cpu_count() or 1
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def run_on_dask(client, jobs: Sequence[Job], output: str | Path) -> Iterator[dict]:
    """Submit every job and yield each job's record as it finishes; pending jobs are cancelled
    when the caller stops early (closing the generator) or is interrupted."""
    from distributed import as_completed

    by_key = {f"dlreg-{job.id}-{job.key}": job for job in jobs}
    futures = [client.submit(run_on_worker, job, str(output), key=key, pure=False) for key, job in by_key.items()]
    try:
        for future in as_completed(futures):
            yield outcome(future, by_key[future.key], output)
    finally:
        client.cancel(futures)


def run_on_worker(job: Job, output: str) -> dict:
    """`execute.run_job`, imported where the job runs: the client never needs torch."""
    from dlreg.batch.execute import run_job

    return run_job(job, output)


def outcome(future, job: Job, output: str | Path) -> dict:
    """The record of a finished future; an error outside the job (its worker died) is recorded here."""
    if future.status == "finished":
        return future.result()
    from distributed import KilledWorker

    error = future.exception()
    if isinstance(error, KilledWorker):
        reason = "the worker running this job died each time it was tried (killed, or out of memory)"
    else:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
    record = {**base_record(job), "status": "failed", "reason": reason}
    write_record(job_folder(output, job.id), record)
    return record
