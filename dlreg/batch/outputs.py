"""A job's outputs: its folder and its record.

Every output is written atomically (`dlreg.imaging.outputs`: a temporary file in the target
folder, flushed, renamed). A job's `record.json` is written last: a job folder without one
holds no result, whatever other files it has. Temporary files left by a killed process are
removed (`remove_partial`) before the job runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dlreg.imaging.outputs import write_text

JOBS_FOLDER = "jobs"
RECORD = "record.json"


def job_folder(output: str | os.PathLike, job_id: str) -> Path:
    """The folder of one job's outputs: OUTPUT/jobs/ID."""
    return Path(output) / JOBS_FOLDER / job_id


def write_record(folder: Path, record: dict) -> Path:
    """Write a job's record (its result) last and atomically."""
    return write_text(folder / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(folder: Path) -> dict | None:
    """A job's record, or None when there is none (or it cannot be read: the job runs again)."""
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
