"""`python -m dlreg <command>`: the same core as the Slicer modules, on files.

Each pipeline package contributes its sub-commands through a module that
defines `add_commands(subparsers)`; this file only wires them together and
turns user-facing errors into one-line messages with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import sys
from typing import Sequence

from dlreg.errors import DLRegError

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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="python -m dlreg",
        description="SlicerDLReg: learned medical image registration with uncertainty.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    for name in OPTIONAL_COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None:
            importlib.import_module(name).add_commands(subparsers)
    return parser


def print_json(payload: dict) -> None:
    """Write one JSON document to stdout (the machine-readable result)."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except DLRegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
