"""ZeroShotRegistration on a real MRML scene: transform, outputs, overlay, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer.util

from dlreg.errors import InputImageError, MismatchedInputsError
from dlreg.imaging.geometry import apply_matrix, index_to_physical, lps_ras_convert
from dlreg.imaging.io import read_image
from dlreg.imaging.resample import resample_to
from dlreg.imaging.slices import in_plane_rigid, slice_axis
from dlreg.mrml.display import show_overlay
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.mrml.zeroshot import register_nodes
from dlreg.sampledata import sample_path

SLICE = 40  # an axial slice through the middle of the MNI brain
FAST = {"n_uncertainty": 3, "seed": 0}


def moved_copy(image: sitk.Image, fixed: sitk.Image, truth: np.ndarray) -> sitk.Image:
    """`image` seen through the fixed->moving `truth`: moving(truth(p)) = image(p)."""
    return resample_to(image, fixed, np.linalg.inv(truth))


@pytest.fixture(scope="module")
def mni():
    return read_image(sample_path("mni_t1_2mm.nrrd"))


def test_transform_node_lays_moving_on_fixed_at_keypoints(mrml, mni):
    truth = in_plane_rigid(mni, "axial", SLICE, 8.0, (4.0, -3.0))
    fixed = volume_node_from_image(mni, "fixed", scene=mrml.scene)
    moving = volume_node_from_image(moved_copy(mni, mni, truth), "moving", scene=mrml.scene)
    before = slicer.util.arrayFromVolume(moving).copy()
    out = register_nodes(fixed, moving, slice_index=SLICE, **FAST)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(moving), before)
    node = out.transform_node
    assert node.GetNodeReference(node.GetFixedNodeReferenceRole()) is fixed
    assert node.GetNodeReference(node.GetMovingNodeReferenceRole()) is moving
    # Keypoints of the fixed slice (brain voxels), in RAS; their true moving positions go back onto them.
    rows, cols = np.nonzero(slicer.util.arrayFromVolume(fixed)[SLICE] > 60)
    pick = np.random.default_rng(0).choice(len(rows), 20, replace=False)
    fixed_lps = index_to_physical(mni, np.stack([cols[pick], rows[pick], np.full(20, SLICE)], 1).astype(float))
    moving_ras = lps_ras_convert(apply_matrix(truth, fixed_lps))
    to_world = node.GetTransformToParent()
    placed = np.array([to_world.TransformPoint(p.tolist()) for p in moving_ras])
    errors = np.linalg.norm(placed - lps_ras_convert(fixed_lps), axis=1)
    assert np.median(errors) < 0.5 * mni.GetSpacing()[0] and errors.max() < mni.GetSpacing()[0]


def test_outputs_and_overlay(mrml, mni):
    truth = in_plane_rigid(mni, "axial", SLICE, -5.0, (-3.0, 2.0))
    fixed = volume_node_from_image(mni, "fixed", scene=mrml.scene)
    moving = volume_node_from_image(moved_copy(mni, mni, truth), "moving", scene=mrml.scene)
    out = register_nodes(fixed, moving, slice_index=SLICE, **FAST)
    assert out.output_volume.GetImageData().GetDimensions() == fixed.GetImageData().GetDimensions()
    registered = slicer.util.arrayFromVolume(out.output_volume)[SLICE]
    target = slicer.util.arrayFromVolume(fixed)[SLICE]
    misaligned = slicer.util.arrayFromVolume(moving)[SLICE]
    assert np.abs(registered - target).mean() < 0.5 * np.abs(misaligned - target).mean()
    heat = slicer.util.arrayFromVolume(out.uncertainty_volume)
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat[SLICE].max() > 0
    assert not heat[SLICE + 1].any()  # only the registered slice has a heatmap
    composites = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")
    assert composites and all(c.GetForegroundVolumeID() is None for c in composites)  # views untouched
    show_overlay(fixed, out.uncertainty_volume, opacity=0.5)  # showing is a separate, explicit step
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == fixed.GetID()
        assert composite.GetForegroundVolumeID() == out.uncertainty_volume.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.5)
    assert out.table_node.GetNumberOfRows() == 1
    assert "dice" in out.summary_text()


def axial_block(image: sitk.Image, first: int, count: int) -> sitk.Image:
    """`count` axial slices of an image from `first` on, geometry kept."""
    axis = slice_axis(image, "axial")
    index, size = [0, 0, 0], list(image.GetSize())
    index[axis], size[axis] = first, count
    return sitk.RegionOfInterest(image, size, index)


def test_slicewise_registration_fills_a_table(mrml):
    # The top of the brain and beyond: the last slices hold no anatomy and are skipped, not fatal.
    t1 = axial_block(read_image(sample_path("stroke_t1_2mm.nrrd")), 60, 10)
    t2 = axial_block(read_image(sample_path("stroke_t2_2mm.nrrd")), 60, 10)
    fixed = volume_node_from_image(t1, "T1", scene=mrml.scene)
    moving = volume_node_from_image(t2, "T2", scene=mrml.scene)
    out = register_nodes(fixed, moving, slice_index="all", n_uncertainty=2, n_bootstrap=3)
    assert out.transform_node is None
    rows = out.table_node.GetNumberOfRows()
    skipped = {int(k): why for k, why in out.payload["skipped"].items()}
    assert rows >= 2 and rows + len(skipped) == 10
    assert {8, 9} <= set(skipped) and all(skipped.values())  # slices 68, 69
    assert "one transform per slice" in out.summary_text()


def test_bad_inputs(mrml, mni):
    fixed = volume_node_from_image(mni, "fixed", scene=mrml.scene)
    with pytest.raises(InputImageError, match="choose a slice index"):
        register_nodes(fixed, fixed, **FAST)
    blank = sitk.Image(mni) * 0
    with pytest.raises(InputImageError, match="blank"):
        register_nodes(fixed, volume_node_from_image(blank, "blank", scene=mrml.scene), slice_index=SLICE)
    far = sitk.Image(mni)
    far.SetOrigin(np.add(mni.GetOrigin(), (1000.0, 0.0, 0.0)).tolist())
    with pytest.raises(MismatchedInputsError, match="do not overlap"):
        register_nodes(fixed, volume_node_from_image(far, "far", scene=mrml.scene), slice_index=SLICE)


def test_pictures_of_different_sizes_are_refused():
    from dlreg.zeroshot.slicewise import register_images

    picture = read_image(sample_path("stroke_t1_axial.png"))
    with pytest.raises(MismatchedInputsError, match="differ in size"):
        register_images(picture, picture[:100, :100, :])


def test_small_slices_are_registered_on_an_upsampled_grid():
    """An 80x62 px slice of a 2 mm volume with 10 degrees of rotation (the demo's case)."""
    from dlreg.imaging.slices import extract_slice
    from dlreg.zeroshot import register_arrays

    t1 = read_image(sample_path("stroke_t1_2mm.nrrd"))
    truth = in_plane_rigid(t1, "axial", 35, 10.0, (4.0, -3.0))
    moving = moved_copy(read_image(sample_path("stroke_t2_2mm.nrrd")), t1, truth)
    fixed_pixels, _ = extract_slice(t1, "axial", 35)
    moving_pixels, _ = extract_slice(moving, "axial", 35)
    result = register_arrays(fixed_pixels, moving_pixels, n_uncertainty=2)
    assert result.details["working_upsampling"] == 3  # ceil(128 / 62)
    assert result.uncertainty_map.shape == fixed_pixels.shape and result.resampled.shape == fixed_pixels.shape
    angle = np.rad2deg(np.arctan2(result.matrix[1, 0], result.matrix[0, 0]))
    assert abs(angle - 10.0) < 0.5
