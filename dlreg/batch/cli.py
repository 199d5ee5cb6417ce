"""`python -m dlreg batch MANIFEST --output DIR`: a cohort on Dask, resumable, with a QC report."""

from __future__ import annotations

import argparse
import sys

EPILOG = """exit status: 0 every job done; 1 some jobs failed (results.csv says which and why);
2 nothing ran (bad manifest, option or scheduler); 130 interrupted (finished jobs are kept:
run the same command again to finish the batch)."""


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
    batch.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://HOST:8786 "
                                           "(default: a local cluster on this machine)")
    batch.add_argument("--workers", type=int, default=None, help="local cluster: worker processes "
                                                                  "(default: one per core)")
    batch.add_argument("--save-images", action="store_true",
                       help="registrations also write the moving image resampled on the fixed grid")
    batch.add_argument("--progress", choices=MODES, default="bar",
                       help="bar: terminal progress bar on stderr; json: one JSON line per event on stdout")
    batch.set_defaults(func=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    """Run the batch; the exit status says whether every job succeeded (see EPILOG)."""
    from dlreg.batch.api import EXIT_INTERRUPTED, execute_batch
    from dlreg.batch.progress import reporter_for
    from dlreg.errors import DLRegError

    if args.workers is not None and args.workers < 1:
        raise DLRegError("--workers must be at least 1")
    try:
        summary = execute_batch(args.manifest, args.output, reporter_for(args.progress), scheduler=args.scheduler,
                                n_workers=args.workers, save_images=args.save_images)
    except KeyboardInterrupt:
        print("interrupted: finished jobs are kept; run the same command again to finish the batch",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return summary.exit_code
