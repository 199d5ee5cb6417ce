"""`python -m dlreg register2d`: zero-shot registration of two files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dlreg.options import deprecated_alias


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `register2d`."""
    from dlreg.zeroshot.options import ZeroShotOptions

    reg = subparsers.add_parser(
        "register2d", help="zero-shot 2D affine registration with uncertainty",
        description="Register a 2D moving image (picture, DICOM frame, 1-slice volume, or one "
                    "slice of a volume) to a fixed one. JSON on stdout with --json.")
    reg.add_argument("fixed")
    reg.add_argument("moving")
    reg.add_argument("--output-transform", required=True, help="ITK transform file (fixed -> moving, LPS)")
    reg.add_argument("--output-image", help="moving image resampled on the fixed grid")
    reg.add_argument("--output-uncertainty", help="per-pixel variance map (px^2) on the fixed grid")
    reg.add_argument("--uncertainty", dest="output_uncertainty", help=argparse.SUPPRESS,
                     action=deprecated_alias("--output-uncertainty", "0.3"))
    reg.add_argument("--slice", help="slice index of the fixed volume in --plane, or 'all' "
                                     "(required for 3D volumes; 2D images need none)")
    ZeroShotOptions.add_arguments(reg)
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    reg.set_defaults(func=run_register2d)


def run_register2d(args: argparse.Namespace) -> int:
    """Read, register, write the transform (and images), print JSON."""
    from dlreg.cli import print_json
    from dlreg.imaging.io import read_image, write_image
    from dlreg.imaging.outputs import StagedOutputs, check_output_paths
    from dlreg.zeroshot.options import ZeroShotOptions
    from dlreg.zeroshot.slicewise import register_images

    options = ZeroShotOptions.from_namespace(args)
    slice_choice = args.slice if args.slice in (None, "all") else _slice_index(args.slice)
    images = [args.output_image, args.output_uncertainty]
    check_output_paths([args.output_transform, *images], inputs=[args.fixed, args.moving])
    fixed, moving = read_image(args.fixed), read_image(args.moving)
    result = register_images(fixed, moving, options, slice_index=slice_choice, progress=args.report)
    payload = result.to_json()
    with StagedOutputs() as outputs:  # all written, or none
        _stage_transforms(outputs, Path(args.output_transform), result, payload, fixed, moving)
        for path, image in zip(images, (result.resampled, result.uncertainty)):
            if path:
                outputs.add(path, lambda temporary, image=image: write_image(image, temporary))
    if args.json:
        print_json(payload)
    else:
        print(summary_text(result))
    return 0


def summary_text(result) -> str:
    """One line per registered slice: parameters, predicted error, confidence, time, the failure flag."""
    lines = []
    for item in result.slices:
        r = item.in_plane
        u = r.uncertainty_summary
        where = "" if result.single is not None else f"slice {item.slice_index}: "
        lines.append(f"{where}affine (a11 a12 tx a21 a22 ty) " + " ".join(f"{p:.4f}" for p in r.params)
                     + f"  predicted error {u['predicted_grid_error_px']:.2f} px  confidence {u['confidence']:.2f}"
                     + f"  {r.elapsed_s:.2f} s"
                     + ("  LIKELY FAILED: " + "; ".join(r.failure_reasons) if r.likely_failed else ""))
    return "\n".join(lines)


def _slice_index(text: str) -> int:
    from dlreg.errors import InputImageError

    try:
        return int(text)
    except ValueError:
        raise InputImageError(f"--slice must be an index or 'all', not '{text}'") from None


def _stage_transforms(outputs, path: Path, result, payload: dict, fixed, moving) -> None:
    """The transform file, or one per registered slice (NAME_slice042.tfm beside the given path)."""
    from dlreg.imaging.transforms import write_transform

    if result.single is None:
        suffix = "".join(path.suffixes) or ".tfm"
        stem = path.name[: len(path.name) - len("".join(path.suffixes))] if path.suffixes else path.name
        for item in result.slices:
            outputs.add(path.with_name(f"{stem}_slice{item.slice_index:03d}{suffix}"),
                        lambda temporary, m=item.matrix: write_transform(temporary, m))
        return
    matrix = result.single.matrix
    if fixed.GetSize()[2] == 1 and moving.GetSize()[2] == 1:
        # Two 2D images: the in-plane (x, y) part is the 2D physical transform.
        matrix = matrix[np.ix_([0, 1, 3], [0, 1, 3])]
        payload["matrix_lps_3x3"] = matrix.tolist()
    outputs.add(path, lambda temporary: write_transform(temporary, matrix))
