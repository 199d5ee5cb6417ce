"""Read a batch manifest: a CSV with one job per row, parsed into the pipelines' own options.

Columns: `id` (required; a file-name-safe name, unique), `task` (register3d, register2d or
classify; default classify when `image` is given, else register3d), `fixed` and `moving`
(registrations) or `image` (classify), `slice` (register2d on volumes: the fixed volume's
slice index in the `plane` option), and any option of the task's options class by its field
name (`n_uncertainty`, `order`, `plane`, ...), parsed with `Options.from_strings`. Empty cells
keep the default. Relative paths are relative to the manifest's folder.

A problem with the manifest as a whole (unreadable, no `id` column, an unknown column, a
duplicate or unsafe id) is a `ManifestError`. A problem with one row (unknown task, missing
input column, an option that the task does not have or a bad value) makes that row a
`RowFailure` with a one-line reason; the other rows still run.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path
from typing import Mapping, Union

from dlreg.batch.jobs import REGISTRATION_TASKS, TASK_OPTIONS, Job, RowFailure
from dlreg.errors import DLRegError

ROW_COLUMNS = ("id", "task", "fixed", "moving", "image", "slice")
INPUT_COLUMNS = ("fixed", "moving", "image")
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

Row = Union[Job, RowFailure]


class ManifestError(DLRegError, ValueError):
    """The manifest as a whole cannot be used (not one row: those become RowFailures)."""


class RowError(DLRegError, ValueError):
    """One manifest row cannot become a job."""


def option_columns() -> set[str]:
    """Every option name of every task: the option columns a manifest may have."""
    return {f.name for cls in TASK_OPTIONS.values() for f in dataclasses.fields(cls)}


def read_manifest(path: str | os.PathLike, *, save_images: bool = False) -> list[Row]:
    """The manifest's rows as jobs (or row failures), in file order.

    `save_images`: registration jobs also write the moving image resampled on the fixed grid.
    """
    path = Path(path)
    rows = _read_rows(path)
    seen: set[str] = set()
    out: list[Row] = []
    for line, row in rows:
        job_id = _job_id(row, line, seen, path)
        out.append(parse_row(row, job_id, path.parent, save_images))
    return out


def parse_row(row: Mapping[str, str], job_id: str, base: Path, save_images: bool) -> Row:
    """One row (column -> text) as a Job, or a RowFailure naming its problem."""
    inputs = {role: _absolute(base, row[role]) for role in INPUT_COLUMNS if _text(row, role)}
    task = _text(row, "task") or ("classify" if "image" in inputs else "register3d")
    try:
        if task not in TASK_OPTIONS:
            raise RowError(f"unknown task '{task}': use one of {', '.join(TASK_OPTIONS)}")
        _check_inputs(task, inputs)
        options = TASK_OPTIONS[task].from_strings(
            {name: text for name, text in row.items() if name not in ROW_COLUMNS and (text or "").strip()})
        slice_index = _slice(task, _text(row, "slice"))
    except DLRegError as exc:
        return RowFailure(job_id, task, str(exc), inputs)
    return Job(job_id, task, options, slice=slice_index, save_image=save_images and task in REGISTRATION_TASKS,
               **inputs)


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    _check_header(header, path)
    for line, row in rows:
        if None in row:
            raise ManifestError(f"{path} line {line} has more values than the header has columns")
    return rows


def _check_header(header: list[str], path: Path) -> None:
    if "id" not in header:
        raise ManifestError(f"manifest {path} needs an 'id' column (header: {', '.join(header) or 'empty'})")
    known = set(ROW_COLUMNS) | option_columns()
    unknown = [name for name in header if name not in known]
    if unknown:
        raise ManifestError(f"manifest {path}: unknown column(s) {', '.join(unknown)}; known are "
                            f"{', '.join(ROW_COLUMNS)} and the options {', '.join(sorted(option_columns()))}")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ManifestError(f"manifest {path}: column(s) {', '.join(duplicated)} appear more than once")


def _job_id(row: Mapping[str, str], line: int, seen: set[str], path: Path) -> str:
    job_id = _text(row, "id")
    if not SAFE_ID.fullmatch(job_id):
        raise ManifestError(f"{path} line {line}: id '{job_id}' must be 1-128 letters, digits, '.', '_' or '-' "
                            "starting with a letter or digit (it names the job's output folder)")
    if job_id in seen:
        raise ManifestError(f"{path} line {line}: id '{job_id}' is used twice")
    seen.add(job_id)
    return job_id


def _check_inputs(task: str, inputs: Mapping[str, str]) -> None:
    needed = ("fixed", "moving") if task in REGISTRATION_TASKS else ("image",)
    missing = [role for role in needed if role not in inputs]
    extra = [role for role in inputs if role not in needed]
    if missing:
        raise RowError(f"a {task} row needs the column(s) {', '.join(missing)}")
    if extra:
        raise RowError(f"a {task} row takes {' and '.join(needed)}, not {', '.join(extra)}")


def _slice(task: str, text: str) -> int | None:
    if not text:
        return None
    if task != "register2d":
        raise RowError(f"slice applies to register2d rows, not {task}")
    try:
        index = int(text)
    except ValueError:
        raise RowError(f"slice '{text}' is not a slice index (one slice per row)") from None
    if index < 0:
        raise RowError(f"slice {index} is negative")
    return index


def _text(row: Mapping[str, str], column: str) -> str:
    return (row.get(column) or "").strip()


def _absolute(base: Path, text: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(text.strip())))
