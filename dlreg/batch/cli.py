"""`python -m dlreg batch MANIFEST --output DIR`: a cohort on Dask, resumable, with a QC report."""

from __future__ import annotations

import argparse
import sys

EPILOG = """exit status: 0 every job done; 3 the batch ran to the end but some jobs failed
(results.csv says which and why); 2 nothing ran (bad manifest, option or scheduler);
130 interrupted (finished jobs are kept: run the same command again to finish the batch);
1 an unexpected error."""
# The command line's general --progress values (where the top-level parser has one) -> this command's.
GENERAL_PROGRESS = {"log": "bar", "json": "json", "none": "none"}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `batch`."""
    from dlreg.batch.progress import MODES

    batch = subparsers.add_parser(
        "batch", help="run a manifest of registrations and classifications on Dask (resumable, QC report)",
        description="Run every row of MANIFEST (CSV: id, task, fixed, moving or image, slice, and option "
                    "columns named as the options of register3d, register2d and classify) on a local Dask "
                    "cluster or an existing one. Writes DIR/jobs/ID/*, DIR/results.csv, DIR/results.jsonl "
                    "and DIR/report.html. Jobs finished by an earlier run with the same row and options "
                    "are kept.", epilog=EPILOG)
    batch.add_argument("manifest", help="CSV manifest, one job per row (paths relative to its folder)")
    batch.add_argument("--output", required=True, help="output folder (created; reused to resume)")
    batch.add_argument("--scheduler", help="a running Dask scheduler: its address (tcp://HOST:8786) or the file "
                                           "written by dask scheduler --scheduler-file (default: a local "
                                           "cluster on this machine)")
    batch.add_argument("--workers", type=int, default=None, help="local cluster: worker processes "
                                                                  "(default: one per core)")
    batch.add_argument("--save-images", action="store_true",
                       help="registrations also write the moving image resampled on the fixed grid")
    batch.add_argument("--progress", dest="batch_progress", choices=MODES, default=None,
                       help="bar (default): a progress bar with rate and ETA; json: one JSON line per event "
                            "(for a parent process); none. Both on stderr")
    batch.set_defaults(func=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    """Run the batch; the exit status says whether every job succeeded (see EPILOG)."""
    from dlreg.batch.api import EXIT_INTERRUPTED, execute_batch
    from dlreg.batch.progress import reporter_for
    from dlreg.errors import DLRegError

    if args.workers is not None and args.workers < 1:
        raise DLRegError("--workers must be at least 1")
    try:
        mode = args.batch_progress or GENERAL_PROGRESS.get(getattr(args, "progress", None), "bar")
        summary = execute_batch(args.manifest, args.output, reporter_for(mode), scheduler=args.scheduler,
                                n_workers=args.workers, save_images=args.save_images)
    except KeyboardInterrupt:
        print("interrupted: finished jobs are kept; run the same command again to finish the batch",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return summary.exit_code
