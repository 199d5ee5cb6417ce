"""`python -m dlreg register3d` and `python -m dlreg train-rigid`."""

from __future__ import annotations

import argparse

from dlreg.progress import log_progress
from dlreg.rigid3d.model import ESTIMATORS


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `register3d` and `train-rigid`."""
    reg = subparsers.add_parser(
        "register3d", help="rigid 3D registration of two head volumes (keypoint DCNN or the paper's DCNN + ANN)",
        description="Rigidly register MOVING to FIXED and write the fixed->moving LPS transform "
                    "(ITK convention: it lays the moving volume over the fixed one).")
    reg.add_argument("fixed", help="fixed volume (NIfTI, NRRD, MHA or a DICOM folder)")
    reg.add_argument("moving", help="moving volume")
    reg.add_argument("--output-transform", required=True, help="transform file to write (.tfm, .txt, .h5)")
    reg.add_argument("--output-image", help="write the moving volume resampled onto the fixed grid")
    reg.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                     help="mutual-information refinement after the prediction (default: on)")
    reg.add_argument("--pca-prealign", action=argparse.BooleanOptionalAction, default=True,
                     help="principal-axes pre-alignment for large misalignments (default: on)")
    reg.add_argument("--uncertainty", type=int, default=8, help="perturbed predictions for the uncertainty")
    reg.add_argument("--estimator", choices=ESTIMATORS, default="keypoints",
                     help="keypoints: network landmarks + closed-form fit (default); ann: the paper's DCNN + ANN")
    reg.add_argument("--weights", help="weights file from train-rigid for the estimator (default: bundled)")
    reg.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    reg.add_argument("--seed", type=int, default=0)
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    reg.set_defaults(func=run_register3d)

    train = subparsers.add_parser(
        "train-rigid", help="train a 3D rigid estimator on a folder or CSV of volumes",
        description="--estimator ann (the paper's): build the augmented set, train the DCNN, then the "
                    "Bayesian-regularised ANN; write rigid3d_model.pt and its JSON card to OUTPUT. "
                    "--estimator keypoints: train the keypoint DCNN on pairs drawn on the fly; write "
                    "rigid3d_keypoints.pt and its card.")
    train.add_argument("data", help="folder (one sub-folder per subject) or CSV with fixed,moving[,split]")
    train.add_argument("--output", required=True, help="output folder (checkpoints, weights, card)")
    train.add_argument("--estimator", choices=ESTIMATORS, default="keypoints")
    train.add_argument("--epochs", type=int, default=30, help="ann: epochs; keypoints: hundreds of steps")
    train.add_argument("--augment", type=int, default=8, help="ann: synthetic copies per pair")
    train.add_argument("--lr", type=float, default=None, help="default: 1e-3 (ann), 2e-3 (keypoints)")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--device", default="auto")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.set_defaults(func=run_train)


def run_register3d(args: argparse.Namespace) -> int:
    """Register two files; write the transform (and image); print a summary or JSON."""
    from dlreg.cli import print_json
    from dlreg.imaging.io import read_image, write_image
    from dlreg.imaging.resample import resample_to
    from dlreg.imaging.transforms import write_transform
    from dlreg.rigid3d.pipeline import register_images

    fixed, moving = read_image(args.fixed), read_image(args.moving)
    result = register_images(fixed, moving, refine=args.refine, pca_prealign=args.pca_prealign,
                             n_uncertainty=args.uncertainty, weights=args.weights,
                             estimator=args.estimator, device=args.device,
                             seed=args.seed, progress=log_progress)
    write_transform(args.output_transform, result.matrix)
    if args.output_image:
        write_image(resample_to(moving, fixed, result.matrix), args.output_image)
    payload = result.to_json()
    if args.json:
        print_json(payload)
    else:
        p, u = payload["parameters"], payload["uncertainty"]
        print(f"rotation (deg) {p['rx_deg']:.2f} {p['ry_deg']:.2f} {p['rz_deg']:.2f}  "
              f"translation (mm) {p['tx_mm']:.2f} {p['ty_mm']:.2f} {p['tz_mm']:.2f}  "
              f"uncertainty {u['rotation_deg']:.2f} deg / {u['corner_mm']:.2f} mm  "
              f"DSC {payload['metrics']['DSC']:.3f}  {payload['seconds']:.1f} s"
              + ("  LOW CONFIDENCE: " + "; ".join(payload["warnings"]) if payload["low_confidence"] else ""))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train and print where the weights went."""
    from dlreg.rigid3d import keypoint_training, training

    if args.estimator == "keypoints":
        weights = keypoint_training.train_from_folder(
            args.data, args.output, steps=100 * args.epochs, batch=args.batch_size, lr=args.lr or 2e-3,
            device=args.device, seed=args.seed, progress=log_progress, resume=not args.no_resume)
    else:
        weights = training.train_from_folder(args.data, args.output, epochs=args.epochs, n_augment=args.augment,
                                             lr=args.lr or 1e-3, batch_size=args.batch_size, device=args.device,
                                             seed=args.seed, progress=log_progress, resume=not args.no_resume)
    print(weights)
    return 0
