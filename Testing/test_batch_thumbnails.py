"""QC thumbnails: viewing orientation, and the 3D uncertainty map never understates the spread."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.batch import thumbnails
from dlreg.imaging.geometry import apply_matrix
from dlreg.imaging.rigid import random_rigid
from dlreg.rigid3d.pipeline import spread


def test_rigid_bound_map_is_an_upper_bound_of_the_true_spread(mni_t1):
    grid = thumbnails.display_grid(mni_t1, size=16)
    center = np.array([3.0, -20.0, 10.0])
    rng = np.random.default_rng(0)
    base = random_rigid(rng, 10.0, 5.0)
    samples = [base] + [base @ random_rigid(rng, 3.0, 3.0) for _ in range(8)]
    summary = spread(samples, np.zeros((1, 3)), center)  # the pipeline's own summary of the spread
    bound = thumbnails.rigid_bound_map(grid, center, summary["rotation_deg"], summary["translation_mm"])
    points = np.array([grid.TransformIndexToPhysicalPoint(idx) for idx in np.ndindex(16, 16, 16)])
    truth = np.sqrt(np.mean([np.sum((apply_matrix(t, points) - apply_matrix(base, points)) ** 2, axis=1)
                             for t in samples[1:]], axis=0))
    bound_at_points = bound.transpose(2, 1, 0).reshape(-1)  # [z, y, x] -> the ndindex (x, y, z) order
    assert np.all(bound_at_points >= truth - 1e-9)
    assert np.median(bound_at_points / truth) < 2.0  # and not a loose one


def test_three_planes_are_anatomically_oriented():
    volume = np.zeros((8, 8, 8), np.float32)  # [z, y, x] on an LPS-aligned display grid
    volume[7, :, :] += 1.0   # superior
    volume[:, 0, :] += 2.0   # anterior (small y)
    axial, coronal, sagittal = thumbnails.three_planes(volume)
    assert coronal[0].mean() > coronal[-1].mean() and sagittal[0].mean() > sagittal[-1].mean()  # superior up
    assert axial[0].mean() > axial[-1].mean()  # anterior up


def test_slices_of_oblique_volumes_turn_to_the_viewing_orientation(stroke_t1):
    pixels = np.arange(62 * 80, dtype=np.float32).reshape(80, 62)  # an axial slice: rows j, cols i
    turned = thumbnails.oriented(pixels, stroke_t1, "axial")
    # the stroke grid's i runs to the patient's right (-x) and j to anterior (-y): both flipped
    assert np.array_equal(turned, pixels[::-1, ::-1])
    picture = sitk.Image(62, 80, 1, sitk.sitkFloat32)  # a picture without geometry stays as it is
    assert np.array_equal(thumbnails.oriented(pixels, picture, "axial"), pixels)


def test_overlay_and_heat_colours():
    fixed, moving = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    rgb = thumbnails.overlay_rgb(fixed, moving)
    assert rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [255, 0, 255]
    heat = thumbnails.heat_rgb(np.ones((1, 3)), np.array([[0.0, 5.0, 5.0]]), 5.0, np.array([[1, 1, 0]], bool))
    assert heat[0, 1].tolist() == [255, 255, 255]  # at the top of the scale: white
    assert heat[0, 2].tolist() == [153, 153, 153]  # outside the mask: the dimmed grey picture
