"""Scalar volume nodes <-> SimpleITK images with exact geometry.

A node's IJKToRAS matrix holds spacing, origin and direction (oblique and
flipped axes included); the image gets the same geometry in LPS. Voxel arrays
are copied, so the input node is never modified through the image.
"""

from __future__ import annotations

from typing import Generator

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util
import vtk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import LPS_TO_RAS, index_to_physical_matrix, lps_ras_convert, with_geometry
from dlreg.imaging.io import validate_scalar_image
from dlreg.imaging.slices import slice_index_at


def ijk_to_ras(node) -> np.ndarray:
    """The node's IJKToRAS matrix as a numpy array."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def image_from_volume_node(node, *, validate: bool = True) -> sitk.Image:
    """A copy of a scalar volume node as a float32 SimpleITK image in LPS.

    The node's own geometry is used; a parent transform is not applied (the
    registration result replaces the moving node's parent transform).
    """
    image = sitk.Cast(volume_image(node), sitk.sitkFloat32)
    if validate:
        validate_scalar_image(image, f"volume '{node.GetName()}'")
    return image


def volume_image(node) -> sitk.Image:
    """A copy of a scalar volume node's voxels (their own type) and geometry (LPS), in one copy."""
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputImageError("a scalar volume node is needed")
    if node.GetImageData() is None:
        raise InputImageError(f"volume '{node.GetName()}' has no image data")
    if node.IsA("vtkMRMLVectorVolumeNode") or node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InputImageError(f"volume '{node.GetName()}' is a vector volume; a scalar volume is needed")
    index_to_lps = LPS_TO_RAS @ ijk_to_ras(node)
    spacing = np.linalg.norm(index_to_lps[:3, :3], axis=0)
    return with_geometry(slicer.util.arrayFromVolume(node), spacing, index_to_lps[:3, 3],
                         index_to_lps[:3, :3] / spacing)


def update_volume_node_from_image(node, image: sitk.Image):
    """Set a volume node's voxels and geometry from a (3D) image; returns the node."""
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayViewFromImage(image))  # the node copies it
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(LPS_TO_RAS @ index_to_physical_matrix(image)))
    node.Modified()
    return node


def volume_node_from_image(image: sitk.Image, name: str, scene=None, node=None):
    """A new (or the given) scalar volume node holding the image, with display nodes."""
    steps = volume_node_steps(image, name, scene, node)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def volume_node_steps(image: sitk.Image, name: str, scene=None, node=None) -> Generator[None, None, object]:
    """`volume_node_from_image` as event-loop steps (`node = yield from ...`): the voxels, a pause,
    then the display nodes, whose automatic window/level reads every voxel."""
    scene = scene or slicer.mrmlScene
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    update_volume_node_from_image(node, image)
    yield None
    node.CreateDefaultDisplayNodes()
    return node


def slice_index_from_ras(node, ras_point, plane: str) -> int:
    """Index of the `plane` slice of the volume nearest a RAS point (e.g. a slice view's centre)."""
    size = node.GetImageData().GetDimensions()
    return slice_index_at(LPS_TO_RAS @ ijk_to_ras(node), size, plane,
                          lps_ras_convert(np.asarray(ras_point, float)[:3]))
