"""Draw the README's module screenshots with the project's own slice-view rendering (no Slicer GUI).

Each picture is what a module's result looks like in Slicer's Red slice view, composited by
the real slice logic of the slicer-core wheel on the bundled sample volumes:
- ZeroShotRegistration: `make demo`'s before / after / uncertainty picture (copied from its run);
- RigidDCNNRegistration: a moved copy of the MNI T1 over the T1 before and after registration;
- ModalityClassifier: the four bundled volumes with the class the shipped model gives each.

    .venv/bin/python Utilities/make_screenshots.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dlreg.imaging.geometry import index_to_physical, lps_ras_convert
from dlreg.imaging.io import read_image
from dlreg.imaging.resample import resample_to
from dlreg.imaging.rigid import axis_angle_matrix, move_image
from dlreg.mrml import demo
from dlreg.mrml.display import show_overlay
from dlreg.mrml.modality import classify_nodes
from dlreg.mrml.render import slice_view_rgba, write_png
from dlreg.mrml.rigid3d import register_nodes
from dlreg.mrml.scene import create_scene
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.sampledata import sample_path

OUT = Path(__file__).resolve().parents[1] / "Resources" / "Screenshots"
MAGENTA = "vtkMRMLColorTableNodeMagenta"


def zero_shot() -> None:
    with tempfile.TemporaryDirectory() as folder:
        summary = demo.run(folder)
        shutil.copy(summary["outputs"][0], OUT / "ZeroShotRegistration.png")


def rigid() -> None:
    context = create_scene()
    try:
        image = read_image(sample_path("mni_t1_2mm.nrrd"))
        centre = np.mean(index_to_physical(image, np.array([[0, 0, 0], np.array(image.GetSize()) - 1.0])), axis=0)
        motion = np.eye(4)  # 12 degrees about the head's vertical axis, 8 mm and 6 mm in plane
        motion[:3, :3] = axis_angle_matrix([0.0, 0.0, 1.0], np.radians(12.0))
        motion[:3, 3] = centre + [8.0, -6.0, 0.0] - motion[:3, :3] @ centre
        moved = resample_to(move_image(image, motion), image, np.eye(4))  # the moved head on the T1's grid
        fixed = volume_node_from_image(image, "MNI T1", scene=context.scene)
        moving = volume_node_from_image(moved, "moved T1", scene=context.scene)
        result = register_nodes(fixed, moving, n_uncertainty=0)
        red = context.slice_logics["Red"]
        red.GetSliceNode().RotateToVolumePlane(fixed)
        through = lps_ras_convert(centre)
        panels = []
        for foreground in (moving, result.output_volume):
            show_overlay(fixed, foreground, opacity=0.5, color_node_id=MAGENTA, threshold=0.0)
            panels.append(slice_view_rgba(red, through_ras=through))
        write_png(np.concatenate(panels, axis=1), OUT / "RigidDCNNRegistration.png")
    finally:
        context.close()


def modality() -> None:
    context = create_scene()
    try:
        names = ["mni_t1_2mm.nrrd", "stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", "stroke_flair_2mm.nrrd"]
        nodes = [volume_node_from_image(read_image(sample_path(n)), n, scene=context.scene) for n in names]
        results = classify_nodes(nodes)
        red = context.slice_logics["Red"]
        panels = []
        for node, result in zip(nodes, results):
            red.GetSliceCompositeNode().SetForegroundVolumeID(None)
            red.GetSliceCompositeNode().SetBackgroundVolumeID(node.GetID())
            red.GetSliceNode().RotateToVolumePlane(node)
            picture = Image.fromarray(slice_view_rgba(red)[..., :3])
            ImageDraw.Draw(picture).text((6, 6), f"{node.GetName()}: {result.label}", fill=(255, 221, 51))
            panels.append(np.asarray(picture))
        write_png(np.concatenate(panels, axis=1), OUT / "ModalityClassifier.png")
    finally:
        context.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for draw in (zero_shot, rigid, modality):
        draw()
        print(f"drew {draw.__name__}")


if __name__ == "__main__":
    main()
