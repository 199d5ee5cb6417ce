"""`python -m dlreg classify IMAGE [IMAGE ...] [--json]` and `python -m dlreg train-modality`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `classify` and `train-modality`."""
    classify = subparsers.add_parser(
        "classify", help="say which modality each image is (CT, MR-T1, MR-T1C, MR-T2, MR-FLAIR, unknown)",
        description="Classify head volumes from their voxels. A DICOM folder's metadata is "
                    "reported beside the prediction, and disagreement is flagged.")
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="image file or DICOM folder")
    classify.add_argument("--weights", default=None, help="classifier weights (default: bundled)")
    classify.add_argument("--device", default="cpu", help="auto, cpu, cuda, mps (default: cpu)")
    classify.add_argument("--json", action="store_true", help="print one JSON document")
    classify.set_defaults(func=run_classify)
    train = subparsers.add_parser(
        "train-modality", help="train the modality classifier (LOSO CV, calibration, weights + card)",
        description="Train the classifier on the labelled volumes found under --data, Colin27 "
                    "(mricron-data) and the InVesalius head CT (invesalius-examples).")
    train.add_argument("--out", required=True, help="weights file to write (.pt); the card goes beside it")
    train.add_argument("--data", default="../shared/data", help="folder of the labelled volumes")
    train.add_argument("--per-volume", type=int, default=12, help="augmented samples per volume")
    train.add_argument("--ood", type=int, default=60, help="synthetic out-of-distribution samples")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--no-loso", action="store_true", help="skip leave-one-subject-out CV")
    train.set_defaults(func=run_train)


def run_classify(args: argparse.Namespace) -> int:
    """Classify each image; text lines or one JSON document."""
    from dlreg.cli import print_json
    from dlreg.imaging.io import read_image
    from dlreg.modality.dicom import read_dicom_metadata
    from dlreg.modality.pipeline import classify_image

    results = {}
    for path in args.images:
        metadata = read_dicom_metadata(path) if Path(path).is_dir() else None
        results[path] = classify_image(read_image(path), weights=args.weights, dicom_metadata=metadata,
                                       device=args.device, name=str(path))
    if args.json:
        print_json({path: r.to_json() for path, r in results.items()})
        return 0
    for path, r in results.items():
        line = f"{path}: {r.label} (confidence {r.confidence:.2f})"
        if r.dicom_label:
            line += f"; DICOM: {r.dicom_label}" + (" - DISAGREES" if r.disagreement else "")
        if r.reason:
            line += f"; {r.reason}"
        print(line)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train and print the model card."""
    from dlreg.cli import print_json
    from dlreg.modality.training import train_modality
    from dlreg.progress import log_progress

    card = train_modality(args.out, data_root=args.data, per_volume=args.per_volume, n_ood=args.ood,
                          epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                          device=args.device, loso=not args.no_loso, progress=log_progress)
    print_json(card)
    return 0
