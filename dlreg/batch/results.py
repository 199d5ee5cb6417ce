"""The results tables: OUTPUT/results.csv and its JSON-lines twin OUTPUT/results.jsonl.

One row per manifest row, in manifest order. `status` is done, failed (with `reason`) or
pending (not run: the batch was interrupted). The CSV holds the flat columns of `COLUMNS`
(lists joined with "; ", empty where a column does not apply); each JSON line holds the
same fields typed, plus the task's full result (`details`), the options and the output
files. A finished job's row comes from its stored record, so re-running a batch leaves the
rows of finished jobs byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable

from dlreg.imaging.outputs import write_text

COLUMNS = (
    "id", "task", "status", "reason",
    "fixed", "moving", "image", "slice",
    "transform", "registered_image",
    "predicted_class", "confidence", "note", "swapped",
    "uncertainty", "uncertainty_unit", "rotation_deg", "translation_mm", "corner_mm",
    "grid_error_px", "max_variance_px2", "dsc",
    "likely_failed", "failure_reasons",
    "seconds", "read_seconds", "run_seconds", "write_seconds", "worker", "key",
)
CSV_NAME, JSONL_NAME = "results.csv", "results.jsonl"


def flat_row(record: dict) -> dict[str, str]:
    """A record as the CSV's text cells."""
    files = record.get("files") or {}
    values = {**record, "transform": files.get("transform"), "registered_image": files.get("registered_image")}
    return {column: _cell(values.get(column)) for column in COLUMNS}


def write_results(output: str | Path, records: Iterable[dict]) -> tuple[Path, Path]:
    """Write results.csv and results.jsonl (each atomically); return their paths."""
    records = list(records)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat_row(r) for r in records)
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    output = Path(output)
    return write_text(output / CSV_NAME, text.getvalue()), write_text(output / JSONL_NAME, lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return str(value)
