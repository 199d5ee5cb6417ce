"""The `make demo` job: bundled sample data in a real MRML scene, checked and pictured.

Loads the co-registered stroke T1 (fixed) and T2 (moving) volumes, checks that
the identity transform node lays the moving volume exactly on itself through
the whole node -> image -> resample -> node path, and writes the Red, Yellow
and Green slice views of the fixed/moving overlay as one PNG.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import slicer.util

from dlreg.imaging.io import read_image
from dlreg.mrml.display import show_overlay
from dlreg.mrml.render import slice_view_rgba, write_png
from dlreg.mrml.scene import SLICE_VIEWS, create_scene
from dlreg.mrml.transforms import resampled_volume_node, transform_node_from_matrix
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.sampledata import sample_path

FIXED_FILE = "stroke_t1_2mm.nrrd"
MOVING_FILE = "stroke_t2_2mm.nrrd"


def run(output_folder: str | Path, data_folder: str | Path | None = None) -> dict:
    """Run the demo; returns a summary with the check's result and the files written."""
    start = time.perf_counter()
    fixed_image = read_image(sample_path(FIXED_FILE, data_folder))
    moving_image = read_image(sample_path(MOVING_FILE, data_folder))
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    context = create_scene()
    fixed = volume_node_from_image(fixed_image, "stroke T1", scene=context.scene)
    moving = volume_node_from_image(moving_image, "stroke T2", scene=context.scene)
    identity = transform_node_from_matrix(np.eye(4), fixed, moving, name="identity")
    resampled = resampled_volume_node(moving, fixed, np.eye(4))
    difference = np.abs(slicer.util.arrayFromVolume(resampled) - slicer.util.arrayFromVolume(moving))
    show_overlay(fixed, moving, opacity=0.5)
    views = [slice_view_rgba(context.slice_logics[name]) for name in SLICE_VIEWS]
    picture = output / "overlay_fixed_moving.png"
    write_png(np.concatenate(views, axis=1), picture)
    return {
        "fixed": fixed.GetName(),
        "moving": moving.GetName(),
        "transform_node": identity.GetName(),
        "identity_check": {
            "max_abs_voxel_difference": float(difference.max()),
            "passed": bool(difference.max() < 1e-3),
        },
        "outputs": [str(picture)],
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
