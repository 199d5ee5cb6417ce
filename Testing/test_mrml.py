"""dlreg.mrml on a real MRML scene from the slicer-core wheel (no stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import slicer.util
import vtk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import (
    LPS_TO_RAS,
    apply_matrix,
    image_corners,
    index_to_physical_matrix,
    rigid_to_matrix,
)
from dlreg.imaging.io import read_image
from dlreg.imaging.transforms import read_transform, write_transform
from dlreg.mrml.display import show_overlay
from dlreg.mrml.render import slice_view_rgba
from dlreg.mrml.transforms import matrix_from_transform_node, resampled_volume_node, transform_node_from_matrix
from dlreg.mrml.volumes import ijk_to_ras, image_from_volume_node, slice_index_from_ras, volume_node_from_image


def all_voxel_positions(matrix: np.ndarray, size) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in size], indexing="ij"), -1)
    return apply_matrix(matrix, grid.reshape(-1, 3))


def test_volume_round_trip_keeps_every_voxel_position(mrml, geometry_variant):
    node = volume_node_from_image(geometry_variant, "variant", scene=mrml.scene)
    back = image_from_volume_node(node)
    size = geometry_variant.GetSize()
    before = all_voxel_positions(index_to_physical_matrix(geometry_variant), size)
    after = all_voxel_positions(index_to_physical_matrix(back), size)
    assert np.abs(before - after).max() < 1e-6
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(geometry_variant))


def test_node_geometry_is_ras_of_the_lps_image(mrml, geometry_variant):
    """Fails if the LPS <-> RAS sign flip is dropped anywhere on the way into MRML."""
    node = volume_node_from_image(geometry_variant, "variant", scene=mrml.scene)
    index = (3.0, 5.0, 7.0)
    lps = np.array(geometry_variant.TransformContinuousIndexToPhysicalPoint(index))
    ras = ijk_to_ras(node) @ np.array([*index, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_slicer_storage_writes_the_geometry_simpleitk_reads(mrml, tmp_path, geometry_variant):
    """Slicer's own NRRD writer and SimpleITK agree on the node's physical geometry."""
    node = volume_node_from_image(geometry_variant, "variant", scene=mrml.scene)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "by_slicer.nrrd"))
    assert storage.WriteData(node)
    written = read_image(tmp_path / "by_slicer.nrrd")
    np.testing.assert_allclose(index_to_physical_matrix(written), index_to_physical_matrix(geometry_variant),
                               atol=1e-6)


def test_input_node_is_not_modified_through_the_image(mrml, stroke_t1):
    node = volume_node_from_image(stroke_t1, "input", scene=mrml.scene)
    before = slicer.util.arrayFromVolume(node).copy()
    image = image_from_volume_node(node)
    image[0, 0, 0] = 12345.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before)


def test_bad_nodes(mrml):
    with pytest.raises(InputImageError, match="scalar volume node"):
        image_from_volume_node(None)
    empty = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(InputImageError, match="no image data"):
        image_from_volume_node(empty)
    slicer.util.updateVolumeFromArray(empty, np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InputImageError, match="blank"):
        image_from_volume_node(empty)
    vector = mrml.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(vector, np.ones((4, 4, 4, 3), np.float32))
    with pytest.raises(InputImageError, match="vector volume"):
        image_from_volume_node(vector)


def ground_truth_pair(mrml, image, matrix):
    """Fixed and moving nodes where moving = fixed seen through the fixed->moving `matrix`."""
    fixed = volume_node_from_image(image, "fixed", scene=mrml.scene)
    moving_image = sitk.Image(image)
    moving_image.SetOrigin(np.add(image.GetOrigin(), (5.0, -3.0, 2.0)).tolist())
    moving = volume_node_from_image(moving_image, "moving", scene=mrml.scene)
    return fixed, moving


def test_itk_file_simpleitk_and_mrml_agree_at_corners(mrml, tmp_path, geometry_variant):
    matrix = rigid_to_matrix([0.2, -0.1, 0.3, 4.0, -7.0, 2.5], center=(10.0, 20.0, -5.0))
    path = write_transform(tmp_path / "result.tfm", matrix)
    by_sitk = sitk.ReadTransform(str(path))
    fixed, moving = ground_truth_pair(mrml, geometry_variant, matrix)
    node = transform_node_from_matrix(read_transform(path), fixed, moving)
    to_world = node.GetTransformToParent()
    for corner in image_corners(geometry_variant):
        moving_point = np.array(by_sitk.TransformPoint(corner.tolist()))
        # The node moves the moving volume onto the fixed one: moving point -> fixed point.
        placed = np.array(to_world.TransformPoint((moving_point * [-1, -1, 1]).tolist()))
        np.testing.assert_allclose(placed, corner * [-1, -1, 1], atol=1e-6)


def test_our_node_equals_the_node_slicer_loads_from_the_same_file(mrml, tmp_path, stroke_t1):
    matrix = rigid_to_matrix([0.1, 0.25, -0.3, 6.0, 1.0, -4.0], center=(5.0, 5.0, 5.0))
    path = write_transform(tmp_path / "result.h5", matrix)
    fixed, moving = ground_truth_pair(mrml, stroke_t1, matrix)
    ours = transform_node_from_matrix(matrix, fixed, moving)
    loaded = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "loaded")
    storage = slicer.vtkMRMLTransformStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(loaded)
    theirs, mine = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    loaded.GetMatrixTransformToParent(theirs)
    ours.GetMatrixTransformToParent(mine)
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(mine), slicer.util.arrayFromVTKMatrix(theirs),
                               atol=1e-9)
    np.testing.assert_allclose(matrix_from_transform_node(ours), matrix, atol=1e-12)


def test_transform_node_references_and_hardening(mrml, stroke_t1):
    matrix = rigid_to_matrix([0.05, -0.08, 0.12, 3.0, -2.0, 4.0], center=(0.0, 10.0, 0.0))
    fixed, moving = ground_truth_pair(mrml, stroke_t1, matrix)
    node = transform_node_from_matrix(matrix, fixed, moving)
    assert node.GetNodeReference(node.GetFixedNodeReferenceRole()) is fixed
    assert node.GetNodeReference(node.GetMovingNodeReferenceRole()) is moving
    hardened = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "hardened")
    hardened.Copy(moving)
    hardened.SetAndObserveTransformNodeID(node.GetID())
    slicer.vtkSlicerTransformLogic().hardenTransform(hardened)
    # Each moving voxel, once hardened, sits where the fixed point mapping to it lies.
    moving_ras = ijk_to_ras(moving)
    hardened_ras = ijk_to_ras(hardened)
    for index in ([0, 0, 0, 1], [30, 40, 20, 1], [60, 5, 50, 1]):
        fixed_point_lps = np.linalg.solve(matrix, LPS_TO_RAS @ moving_ras @ index)
        np.testing.assert_allclose(hardened_ras @ index, LPS_TO_RAS @ fixed_point_lps, atol=1e-6)


def test_resampled_volume_node_matches_a_known_shift(mrml, stroke_t1):
    fixed = volume_node_from_image(stroke_t1, "fixed", scene=mrml.scene)
    step = np.asarray(stroke_t1.GetDirection()).reshape(3, 3)[:, 2] * stroke_t1.GetSpacing()[2]
    shift = np.eye(4)
    shift[:3, 3] = 3 * step
    before = slicer.util.arrayFromVolume(fixed).copy()
    out = resampled_volume_node(fixed, fixed, shift, name="shifted")
    np.testing.assert_allclose(slicer.util.arrayFromVolume(out)[:-3], before[3:], atol=1e-3)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(fixed), before)
    np.testing.assert_allclose(ijk_to_ras(out), ijk_to_ras(fixed), atol=1e-9)


def test_slice_index_from_ras(mrml, stroke_t1):
    node = volume_node_from_image(stroke_t1, "fixed", scene=mrml.scene)
    ras = ijk_to_ras(node) @ np.array([11.0, 22.0, 33.0, 1.0])
    from dlreg.imaging.slices import slice_axis

    assert slice_index_from_ras(node, ras, "axial") == [11, 22, 33][slice_axis(stroke_t1, "axial")]


def heatmap_node(mrml, image, value=5.0):
    heat = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.float32)
    heat[:, 40:70, 30:60] = value
    heat_image = sitk.GetImageFromArray(heat)
    heat_image.CopyInformation(image)
    return volume_node_from_image(heat_image, "uncertainty", scene=mrml.scene)


def test_overlay_sets_every_slice_view(mrml, mni_t1):
    background = volume_node_from_image(mni_t1, "fixed", scene=mrml.scene)
    foreground = heatmap_node(mrml, mni_t1)
    show_overlay(background, foreground, opacity=0.5)
    composites = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")
    assert len(composites) == 3
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == background.GetID()
        assert composite.GetForegroundVolumeID() == foreground.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.5)
    assert foreground.GetDisplayNode().GetColorNodeID() == "vtkMRMLPETProceduralColorNodePET-Heat"


def changed_pixels(mrml, background, foreground) -> np.ndarray:
    """Pixels of the Red view that the overlay changes (opacity 0.5 against 0)."""
    show_overlay(background, foreground, opacity=0.5)
    red = mrml.slice_logics["Red"]
    with_heat = slice_view_rgba(red, 128, 128).astype(int)
    red.GetSliceCompositeNode().SetForegroundOpacity(0.0)
    without = slice_view_rgba(red, 128, 128).astype(int)
    return np.abs(with_heat[..., :3] - without[..., :3]).sum(-1) > 30


def test_blend_changes_only_where_the_heatmap_is_high(mrml, mni_t1):
    background = volume_node_from_image(mni_t1, "fixed", scene=mrml.scene)
    changed = changed_pixels(mrml, background, heatmap_node(mrml, mni_t1, value=5.0))
    # The hot block covers 30x30 of 91x109 voxels in-plane: a clear minority of the view changes.
    assert 0.02 < changed.mean() < 0.3
    # Below the threshold the heatmap is transparent: a near-zero map changes nothing.
    quiet = heatmap_node(mrml, mni_t1, value=5.0)
    array = slicer.util.arrayFromVolume(quiet)
    array[:] = 0.0
    array[0, 0, 0] = 5.0  # one hot voxel far from the Red slice keeps the range
    slicer.util.arrayFromVolumeModified(quiet)
    assert not changed_pixels(mrml, background, quiet).any()
