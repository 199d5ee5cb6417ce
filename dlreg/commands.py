"""Sub-commands of `python -m dlreg` that are not tied to one pipeline: info, demo."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

from dlreg import __version__
from dlreg.cli import print_json
from dlreg.errors import DLRegError

# Packages whose versions `info` reports.
REPORTED_PACKAGES = ("numpy", "SimpleITK", "torch", "slicer-core", "vtk")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `info` and `demo`."""
    info = subparsers.add_parser("info", help="versions, compute device and bundled models",
                                 description="Show versions, the device 'auto' picks, and "
                                             "the bundled models with their checksums.")
    info.set_defaults(func=run_info)
    demo = subparsers.add_parser("demo", help="run the demo on the bundled sample data",
                                 description="Load the bundled sample data into a real MRML scene, "
                                             "check it and write pictures to the output folder.")
    demo.add_argument("--output", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--data", default=None, help="sample data folder (default: the bundled one)")
    demo.set_defaults(func=run_demo)


def run_info(args: argparse.Namespace) -> int:
    """Print versions, devices and bundled models as JSON."""
    from dlreg.device import describe_devices

    versions = {"dlreg": __version__, "python": platform.python_version()}
    for package in REPORTED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    print_json({"versions": versions, "device": describe_devices(), "models": bundled_models()})
    return 0


def bundled_models() -> list[dict]:
    """Each bundled model's card name, file, declared sha256 and whether the file matches it."""
    from dlreg.weights import MODELS_DIR, model_card, sha256_of

    models = []
    for card_path in sorted(MODELS_DIR.glob("*.json")):
        card = model_card(card_path.stem)
        path = MODELS_DIR / card["file"]
        models.append({"name": card_path.stem, "file": card["file"], "sha256": card["sha256"],
                       "verified": path.is_file() and sha256_of(path) == card["sha256"]})
    return models


def run_demo(args: argparse.Namespace) -> int:
    """The demo job on bundled data; prints where its outputs went."""
    try:
        from dlreg.mrml.demo import run
    except ImportError as exc:
        raise DLRegError(f"the demo runs in a real MRML scene, which needs the slicer-core wheel ({exc}): "
                         "pip install 'dlreg[mrml]'") from exc

    summary = run(args.output, data_folder=args.data)
    print_json(summary)
    return 0 if all(part["passed"] for part in (summary["identity_check"], summary["zeroshot"])) else 1
