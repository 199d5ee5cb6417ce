"""`python -m dlreg register3d`: rigid registration of two head volumes from files."""

from __future__ import annotations

import argparse

from dlreg.cli import add_dicom_metadata_argument


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `register3d`."""
    from dlreg.rigid3d.options import RigidOptions

    reg = subparsers.add_parser(
        "register3d", help="rigid 3D registration of two head volumes (keypoint DCNN or the paper's DCNN + ANN)",
        description="Rigidly register MOVING to FIXED and write the fixed->moving LPS transform "
                    "(ITK convention: it lays the moving volume over the fixed one).")
    reg.add_argument("fixed", help="fixed volume (NIfTI, NRRD, MHA or a DICOM folder)")
    reg.add_argument("moving", help="moving volume")
    reg.add_argument("--output-transform", required=True, help="transform file to write (.tfm, .txt, .h5)")
    reg.add_argument("--output-image", help="write the moving volume resampled onto the fixed grid")
    RigidOptions.add_arguments(reg)
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    add_dicom_metadata_argument(reg)
    reg.set_defaults(func=run_register3d)


def run_register3d(args: argparse.Namespace) -> int:
    """Register two files; write the transform (and image); print a summary or JSON."""
    from dlreg.cli import dicom_metadata, print_json
    from dlreg.imaging.io import read_image, write_image
    from dlreg.imaging.outputs import StagedOutputs, check_output_paths
    from dlreg.imaging.resample import resample_to
    from dlreg.imaging.transforms import write_transform
    from dlreg.rigid3d.options import RigidOptions
    from dlreg.rigid3d.pipeline import register_images

    options = RigidOptions.from_namespace(args)
    check_output_paths([args.output_transform, args.output_image], inputs=[args.fixed, args.moving])
    fixed, moving = read_image(args.fixed), read_image(args.moving)
    metadata = dicom_metadata(args)
    result = register_images(fixed, moving, options, progress=args.report,
                             dicom=(metadata.get(args.fixed), metadata.get(args.moving)))
    if result.swapped:
        fixed, moving = moving, fixed
    with StagedOutputs() as outputs:  # both written, or neither
        outputs.add(args.output_transform, lambda temporary: write_transform(temporary, result.matrix))
        if args.output_image:
            registered = resample_to(moving, fixed, result.matrix)
            outputs.add(args.output_image, lambda temporary: write_image(registered, temporary))
    payload = result.to_json()
    if args.json:
        print_json(payload)
    else:
        p, u = payload["parameters"], payload["uncertainty"]
        print(("fixed and moving swapped by the modality classifier; " if result.swapped else "")
              + f"rotation (deg) {p['rx_deg']:.2f} {p['ry_deg']:.2f} {p['rz_deg']:.2f}  "
              f"translation (mm) {p['tx_mm']:.2f} {p['ty_mm']:.2f} {p['tz_mm']:.2f}  "
              f"uncertainty {u['rotation_deg']:.2f} deg / {u['corner_mm']:.2f} mm  "
              f"DSC {payload['metrics']['DSC']:.3f}  {payload['seconds']:.1f} s  "
              + ("LIKELY FAILED: " + "; ".join(payload["failure_reasons"]) if payload["likely_failed"] else
                 f"checks passed (failure score {payload['failure_score']:.2f} < 1)"))
    return 0
