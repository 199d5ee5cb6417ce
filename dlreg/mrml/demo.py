"""The `make demo` job: bundled sample data in a real MRML scene, registered and pictured.

1. Identity check: the stroke T1 and T2 share one grid (co-registered), so the
   identity transform node must lay the T2 exactly on itself through the whole
   node -> image -> resample -> node path.
2. Zero-shot registration: the T2 is misaligned by a known in-plane rotation
   and shift on the middle axial slice, registered back to the T1 (default
   mode, uncertainty n = 10), and the error against the known truth is
   measured at the slice's brain voxels. The Red view before, after and with
   the uncertainty heatmap is written as one PNG (T2 in magenta over the grey
   T1, then the heatmap in heat colours).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer.util

from dlreg.imaging.geometry import apply_matrix, index_to_physical, lps_ras_convert
from dlreg.imaging.io import read_image
from dlreg.imaging.resample import resample_to
from dlreg.imaging.slices import in_plane_axes, in_plane_rigid, slice_axis, slice_count
from dlreg.mrml.display import show_overlay
from dlreg.mrml.render import slice_view_rgba, write_png
from dlreg.mrml.scene import create_scene
from dlreg.mrml.transforms import resampled_volume_node
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.mrml.zeroshot import register_nodes
from dlreg.sampledata import sample_path
from dlreg.zeroshot.options import ZeroShotOptions

FIXED_FILE = "stroke_t1_2mm.nrrd"
MOVING_FILE = "stroke_t2_2mm.nrrd"
MISALIGNMENT = {"degrees": 10.0, "shift_px": (4.0, -3.0)}


def run(output_folder: str | Path, data_folder: str | Path | None = None) -> dict:
    """Run the demo; returns a summary with the checks' results and the files written."""
    start = time.perf_counter()
    fixed_image = read_image(sample_path(FIXED_FILE, data_folder))
    moving_image = read_image(sample_path(MOVING_FILE, data_folder))
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    context = create_scene()
    try:
        return _run_in_scene(context, fixed_image, moving_image, output, start)
    finally:
        context.close()


def _run_in_scene(context, fixed_image: sitk.Image, moving_image: sitk.Image, output: Path,
                  start: float) -> dict:
    fixed = volume_node_from_image(fixed_image, "stroke T1", scene=context.scene)
    moving = volume_node_from_image(moving_image, "stroke T2", scene=context.scene)
    identity = _identity_check(fixed, moving)

    k = slice_count(fixed_image, "axial") // 2
    truth = in_plane_rigid(fixed_image, "axial", k, **MISALIGNMENT)
    misaligned = volume_node_from_image(resample_to(moving_image, fixed_image, np.linalg.inv(truth)),
                                        "stroke T2 misaligned", scene=context.scene)
    result = register_nodes(fixed, misaligned, ZeroShotOptions(plane="axial", seed=0), slice_index=k)
    payload = result.payload
    error_mm = _error_at_brain_voxels(fixed_image, k, np.asarray(payload["matrix_lps_fixed_to_moving"]), truth)

    red = context.slice_logics["Red"]
    red.GetSliceNode().RotateToVolumePlane(fixed)
    centre = lps_ras_convert(index_to_physical(fixed_image, _slice_centre_index(fixed_image, k)))
    panels = []
    for foreground in (misaligned, result.output_volume):
        show_overlay(fixed, foreground, opacity=0.5, color_node_id="vtkMRMLColorTableNodeMagenta",
                     threshold=0.0)
        panels.append(slice_view_rgba(red, through_ras=centre))
    show_overlay(fixed, result.uncertainty_volume, opacity=0.5)
    panels.append(slice_view_rgba(red, through_ras=centre))
    picture = output / "zeroshot_before_after_uncertainty.png"
    write_png(np.concatenate(panels, axis=1), picture)
    return {
        "identity_check": identity,
        "zeroshot": {
            "slice": k,
            "misalignment": MISALIGNMENT,
            "median_error_mm": float(np.median(error_mm)),
            "max_error_mm": float(error_mm.max()),
            "predicted_error_px": payload["uncertainty"]["predicted_grid_error_px"],
            "metrics_before": payload["metrics_before"],
            "metrics_after": payload["metrics_after"],
            "registration_s": round(payload["elapsed_s"], 3),
            "passed": bool(np.median(error_mm) < fixed_image.GetSpacing()[0]),
        },
        "outputs": [str(picture)],
        "elapsed_s": round(time.perf_counter() - start, 3),
    }


def _identity_check(fixed, moving) -> dict:
    """Resample the moving node through the identity: every voxel must come back unchanged."""
    resampled = resampled_volume_node(moving, fixed, np.eye(4))
    difference = np.abs(slicer.util.arrayFromVolume(resampled) - slicer.util.arrayFromVolume(moving))
    return {"max_abs_voxel_difference": float(difference.max()), "passed": bool(difference.max() < 1e-3)}


def _slice_centre_index(image: sitk.Image, k: int) -> np.ndarray:
    axis = slice_axis(image, "axial")
    index = (np.asarray(image.GetSize(), float) - 1.0) / 2.0
    index[axis] = k
    return index


def _error_at_brain_voxels(image: sitk.Image, k: int, estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance (mm) between estimated and true moving positions of the slice's brain voxels."""
    axis = slice_axis(image, "axial")
    u, v = in_plane_axes(axis)
    pixels = np.take(sitk.GetArrayFromImage(image), k, axis=2 - axis)
    rows, cols = np.nonzero(pixels > np.percentile(pixels[pixels > 0], 10))
    index = np.zeros((len(rows), 3))
    index[:, u], index[:, v], index[:, axis] = cols, rows, k
    points = index_to_physical(image, index)
    return np.linalg.norm(apply_matrix(estimate, points) - apply_matrix(truth, points), axis=1)
