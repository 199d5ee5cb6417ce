"""One progress/cancel protocol for all long work.

A progress callback is `progress(fraction, message) -> keep_going`. The widget
maps it to a progress bar, batch mode to logging, tests to a list. Returning
False (or anything falsy other than None) cancels the job.

A child process (`python -m dlreg --progress json ...`, the Slicer modules' background
runs) reports through `json_progress`: one JSON object per line on stderr,
{"progress": fraction, "message": text}; `parse_progress_line` reads it back.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Callable, Optional

from dlreg.errors import CancelledError

ProgressCallback = Callable[[float, str], Optional[bool]]

_log = logging.getLogger("dlreg")


def log_progress(fraction: float, message: str) -> bool:
    """Default callback: log the step and keep going."""
    _log.info("%3.0f%% %s", 100.0 * fraction, message)
    return True


def json_progress(fraction: float, message: str) -> bool:
    """Report one step as a JSON line on stderr (for a parent process) and keep going."""
    sys.stderr.write(json.dumps({"progress": round(float(fraction), 4), "message": message}) + "\n")
    sys.stderr.flush()
    return True


def parse_progress_line(line: str) -> tuple[float, str] | None:
    """(fraction, message) of a `json_progress` line; None for any other line (e.g. an error)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or "progress" not in event:
        return None
    return float(event["progress"]), str(event.get("message", ""))


def scaled(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """A callback for one part of a job: its fractions 0..1 are reported as start..end."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """Report a step; raise CancelledError when the callback asks to stop."""
    if progress is None:
        return
    keep_going = progress(min(max(float(fraction), 0.0), 1.0), message)
    if keep_going is not None and not keep_going:
        raise CancelledError(f"cancelled by the user at: {message}")
