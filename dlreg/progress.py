"""One progress/cancel protocol for all long work.

A progress callback is `progress(fraction, message) -> keep_going`. The widget
maps it to a progress bar, batch mode to logging, tests to a list. Returning
False (or anything falsy other than None) cancels the job.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from dlreg.errors import CancelledError

ProgressCallback = Callable[[float, str], Optional[bool]]

_log = logging.getLogger("dlreg")


def log_progress(fraction: float, message: str) -> bool:
    """Default callback: log the step and keep going."""
    _log.info("%3.0f%% %s", 100.0 * fraction, message)
    return True


def report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """Report a step; raise CancelledError when the callback asks to stop."""
    if progress is None:
        return
    keep_going = progress(min(max(float(fraction), 0.0), 1.0), message)
    if keep_going is not None and not keep_going:
        raise CancelledError(f"cancelled by the user at: {message}")
