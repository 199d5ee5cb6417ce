"""`python -m dlreg register2d` and `python -m dlreg train-affine-mlp`."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the zero-shot sub-commands."""
    reg = subparsers.add_parser(
        "register2d", help="zero-shot 2D affine registration with uncertainty",
        description="Register a 2D moving image (picture, DICOM frame, 1-slice volume, or one "
                    "axial slice of a volume) to a fixed one. JSON on stdout with --json.")
    reg.add_argument("fixed")
    reg.add_argument("moving")
    reg.add_argument("--output-transform", required=True, help="ITK transform file (fixed -> moving, LPS)")
    reg.add_argument("--output-image", help="moving image resampled on the fixed grid")
    reg.add_argument("--uncertainty", help="per-pixel variance map (px^2) on the fixed grid")
    reg.add_argument("--mode", choices=["default", "paper"], default="default")
    reg.add_argument("--estimator", choices=["auto", "mlp", "closed-form", "robust"], default="auto")
    reg.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial",
                     help="slice plane for 3D volumes (default: axial)")
    reg.add_argument("--slice", help="slice index of the fixed volume in --plane, or 'all' "
                                     "(required for 3D volumes; 2D images need none)")
    reg.add_argument("--n-bootstrap", type=int, default=10)
    reg.add_argument("--n-uncertainty", type=int, default=10)
    reg.add_argument("--vgg-weights", help="torchvision VGG16/VGG19 weights file or torch hub cache folder")
    reg.add_argument("--seed", type=int, default=0)
    reg.add_argument("--device", default="auto")
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    reg.set_defaults(func=run_register2d)

    train = subparsers.add_parser(
        "train-affine-mlp", help="train the paper's affine MLP on synthetic keypoints",
        description="Train the MLP estimator on X ~ U[0,1], M ~ U[-1,1], Y = M X and write the "
                    "weights with a JSON model card next to them.")
    train.add_argument("--out", default="affine_mlp_paper.pt")
    train.add_argument("--steps", type=int, default=20000)
    train.add_argument("--batch", type=int, default=512)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.set_defaults(func=run_train)


def run_register2d(args: argparse.Namespace) -> int:
    """Read, register, write the transform (and images), print JSON."""
    from dlreg.cli import print_json
    from dlreg.imaging.io import read_image, write_image
    from dlreg.imaging.transforms import write_transform
    from dlreg.progress import log_progress
    from dlreg.zeroshot.slicewise import register_images

    slice_choice = args.slice if args.slice in (None, "all") else _slice_index(args.slice)
    fixed, moving = read_image(args.fixed), read_image(args.moving)
    result = register_images(fixed, moving, plane=args.plane, slice_index=slice_choice,
                             mode=args.mode, estimator=args.estimator, n_bootstrap=args.n_bootstrap,
                             n_uncertainty=args.n_uncertainty, vgg_weights=args.vgg_weights,
                             seed=args.seed, device=args.device, progress=log_progress)
    payload = result.to_json()
    if result.single is not None:
        matrix = result.single.matrix
        if fixed.GetSize()[2] == 1 and moving.GetSize()[2] == 1:
            # Two 2D images: the in-plane (x, y) part is the 2D physical transform.
            matrix = matrix[np.ix_([0, 1, 3], [0, 1, 3])]
            payload["matrix_lps_3x3"] = matrix.tolist()
        write_transform(args.output_transform, matrix)
    else:
        _write_per_slice_transforms(Path(args.output_transform), result)
    if args.output_image:
        write_image(result.resampled, args.output_image)
    if args.uncertainty:
        write_image(result.uncertainty, args.uncertainty)
    if args.json:
        print_json(payload)
    return 0


def _slice_index(text: str) -> int:
    from dlreg.errors import InputImageError

    try:
        return int(text)
    except ValueError:
        raise InputImageError(f"--slice must be an index or 'all', not '{text}'") from None


def _write_per_slice_transforms(path: Path, result) -> None:
    """One transform file per registered slice: NAME_slice042.tfm beside the given path."""
    from dlreg.imaging.transforms import write_transform

    suffix = "".join(path.suffixes) or ".tfm"
    stem = path.name[: len(path.name) - len("".join(path.suffixes))] if path.suffixes else path.name
    for item in result.slices:
        write_transform(path.with_name(f"{stem}_slice{item.slice_index:03d}{suffix}"), item.matrix)


def run_train(args: argparse.Namespace) -> int:
    """Train the MLP and write weights plus model card."""
    from dlreg.cli import print_json
    from dlreg.progress import log_progress
    from dlreg.zeroshot.training import save_model, train_affine_mlp

    model, metrics = train_affine_mlp(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                                      device=args.device, progress=log_progress)
    recipe = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed}
    print_json(save_model(model, metrics, Path(args.out), recipe))
    return 0
