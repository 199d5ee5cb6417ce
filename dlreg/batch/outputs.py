"""Atomic job outputs: a file appears under its final name complete or not at all.

Every output is written to a temporary file in its target folder, flushed and fsynced,
then renamed over the final name (`os.replace`, atomic on one file system), and the
folder is fsynced so that the rename survives a crash. A job's `record.json` is written
last: a job folder without one holds no result, whatever other files it has. Temporary
files left by a killed process are removed before the job runs again.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

JOBS_FOLDER = "jobs"
RECORD = "record.json"
TEMP_MARK = ".partial-"


def job_folder(output: str | os.PathLike, job_id: str) -> Path:
    """The folder of one job's outputs: OUTPUT/jobs/ID."""
    return Path(output) / JOBS_FOLDER / job_id


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same suffixes, so writers pick the same format) that becomes
    `path` when the block ends without error; on error it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    stem = path.name[: len(path.name) - len(suffix)]
    temp = path.with_name(f".{stem}{TEMP_MARK}{secrets.token_hex(4)}{suffix}")
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    _fsync(path.parent)


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Run `writer(temporary_path)` and move the file it wrote to `path` atomically."""
    with atomic_path(path) as temp:
        writer(temp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8, newlines as given) atomically."""
    return write_atomic(path, lambda temp: temp.write_bytes(text.encode("utf-8")))


def write_record(folder: Path, record: dict) -> Path:
    """Write a job's record (its result) last and atomically."""
    return write_text_atomic(folder / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(folder: Path) -> dict | None:
    """A job's record, or None when there is none (or it cannot be read: the job runs again)."""
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remove_partial(folder: Path) -> list[Path]:
    """Remove temporary files that a killed writer left in `folder`; return them."""
    leftovers = sorted(folder.glob(f".*{TEMP_MARK}*")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    if path.is_dir() and os.name != "posix":  # Windows cannot open a folder for fsync
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
