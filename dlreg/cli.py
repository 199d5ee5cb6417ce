"""`python -m dlreg <command>`: the same core as the Slicer modules, on files.

Each pipeline package contributes its sub-commands through a module that
defines `add_commands(subparsers)`; this file only wires them together and
turns user-facing errors into one-line messages with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import sys
from typing import Iterator, Sequence

from dlreg.errors import DLRegError
from dlreg.progress import json_progress, log_progress

# --progress: how a command reports its steps (the callback it passes to the pipeline)
PROGRESS = {"log": log_progress, "json": json_progress, "none": None}
_log = logging.getLogger("dlreg")

# Modules that add sub-commands, in the order `--help` lists them. The training commands
# are present where `dlreg.training` is installed (not in Slicer's inference-only install).
COMMAND_MODULES = (
    "dlreg.commands",
    "dlreg.zeroshot.cli",
    "dlreg.rigid3d.cli",
    "dlreg.modality.cli",
    "dlreg.batch.cli",
)
OPTIONAL_COMMAND_MODULES = ("dlreg.training.cli",)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command line."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = Parser(
        prog="python -m dlreg",
        description="SlicerDLReg: learned medical image registration with uncertainty.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress, library warnings and, on an unexpected failure, the traceback")
    parser.add_argument("--progress", choices=sorted(PROGRESS), default="log",
                        help="how progress is reported: log (with -v), json (one JSON line per step on stderr, "
                             "for a parent process) or none (default: log)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    for name in OPTIONAL_COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None:
            importlib.import_module(name).add_commands(subparsers)
    return parser


def add_dicom_metadata_argument(parser: argparse.ArgumentParser) -> None:
    """`--dicom-metadata FILE`: DICOM attributes of inputs that are not DICOM folders."""
    parser.add_argument("--dicom-metadata", metavar="JSON",
                        help="JSON file mapping an input path to its DICOM attributes (e.g. "
                             "{\"t1.nrrd\": {\"Modality\": \"MR\", \"SeriesDescription\": \"T1 MPRAGE\"}}), "
                             "for volumes converted from DICOM")


def dicom_metadata(args: argparse.Namespace) -> dict[str, dict]:
    """The --dicom-metadata file's mapping (empty without one)."""
    if not getattr(args, "dicom_metadata", None):
        return {}
    try:
        mapping = json.loads(open(args.dicom_metadata, encoding="utf-8").read())
    except OSError as exc:
        raise DLRegError(f"cannot read --dicom-metadata {args.dicom_metadata}: {exc.strerror}") from None
    except ValueError as exc:
        raise DLRegError(f"--dicom-metadata {args.dicom_metadata} is not JSON ({one_line(exc)})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, dict) for v in mapping.values()):
        raise DLRegError(f"--dicom-metadata {args.dicom_metadata} must map input paths to objects of attributes")
    return mapping


def print_json(payload: dict) -> None:
    """Write one JSON document to stdout (the machine-readable result)."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; return the process exit status.

    0: done; 2: a user error (bad input, options, weights, an output that cannot be
    written), one line on stderr; 1: an unexpected failure, one line (the traceback with -v);
    130: interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    args.report = PROGRESS[args.progress]
    try:
        with library_warnings_to_log(args.verbose):
            return int(args.func(args) or 0)
    except DLRegError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen library failure: one line, the details at -v
        _log.debug("unexpected failure", exc_info=True)
        print(f"error: unexpected failure ({type(exc).__name__}: {one_line(exc)}); run with -v for details",
              file=sys.stderr)
        return 1


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


@contextlib.contextmanager
def library_warnings_to_log(verbose: bool) -> Iterator[None]:
    """SimpleITK/ITK warnings go to stderr only with -v (they otherwise print multi-line dumps)."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(bool(verbose))
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)
