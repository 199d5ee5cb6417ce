"""`python -m dlreg classify IMAGE [IMAGE ...] [--json]`: the modality of each volume."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlreg.cli import add_dicom_metadata_argument


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `classify`."""
    from dlreg.modality.options import ModalityOptions

    classify = subparsers.add_parser(
        "classify", help="say which modality each image is (CT, MR-T1, MR-T1C, MR-T2, MR-FLAIR, unknown)",
        description="Classify head volumes from their voxels (CT by its Hounsfield units, the MR contrast "
                    "by a network). A DICOM folder's header is combined with the voxels, and disagreement "
                    "is flagged; anything else is 'unknown' with the reason.")
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="image file or DICOM folder")
    ModalityOptions.add_arguments(classify, exclude=("prefer_fixed",))
    classify.add_argument("--json", action="store_true", help="print one JSON document")
    add_dicom_metadata_argument(classify)
    classify.set_defaults(func=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    """Classify each image; text lines or one JSON document."""
    from dlreg.cli import dicom_metadata, print_json
    from dlreg.imaging.io import read_image
    from dlreg.modality.dicom import read_dicom_metadata
    from dlreg.modality.options import ModalityOptions
    from dlreg.modality.pipeline import classify_image

    options = ModalityOptions.from_namespace(args)
    given = dicom_metadata(args)
    results = {}
    for path in args.images:
        metadata = read_dicom_metadata(path) if Path(path).is_dir() else given.get(path)
        results[path] = classify_image(read_image(path), options, dicom_metadata=metadata, name=str(path))
    if args.json:
        print_json({path: r.to_json() for path, r in results.items()})
        return 0
    for path, r in results.items():
        print(f"{path}: {r.summary()}")
    return 0
