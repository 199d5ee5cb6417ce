"""Registration results as linear transform nodes, and resampled output volumes.

The core's result maps fixed LPS points to moving LPS points (the ITK
resampling convention). Slicer stores that mapping as the transform *from
parent*: a node holding it, applied to the moving volume, lays the moving
volume over the fixed one, exactly as when Slicer loads the same ITK file.
"""

from __future__ import annotations

import numpy as np
import slicer
import slicer.util
import vtk

from dlreg.imaging.geometry import lps_ras_convert
from dlreg.imaging.resample import resample_to
from dlreg.imaging.transforms import check_homogeneous
from dlreg.mrml.volumes import image_from_volume_node, volume_node_from_image


def transform_node_from_matrix(matrix_lps: np.ndarray, fixed_node, moving_node,
                               name: str = "Registration", node=None, scene=None):
    """A linear transform node from a 4x4 fixed->moving LPS matrix, tagged with its fixed/moving nodes."""
    matrix_lps = check_homogeneous(matrix_lps)
    scene = scene or fixed_node.GetScene()
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", scene.GenerateUniqueName(name))
    node.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(lps_ras_convert(matrix_lps)))
    node.SetNodeReferenceID(node.GetFixedNodeReferenceRole(), fixed_node.GetID())
    node.SetNodeReferenceID(node.GetMovingNodeReferenceRole(), moving_node.GetID())
    return node


def matrix_from_transform_node(node) -> np.ndarray:
    """The fixed->moving LPS matrix held by a linear transform node."""
    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformFromParent(matrix)
    return lps_ras_convert(slicer.util.arrayFromVTKMatrix(matrix))


def resampled_volume_node(moving_node, fixed_node, matrix_lps: np.ndarray, name: str | None = None,
                          node=None, interpolator: str = "linear"):
    """The moving volume resampled on the fixed grid through the result (a new node by default)."""
    moving = image_from_volume_node(moving_node)
    fixed = image_from_volume_node(fixed_node, validate=False)
    image = resample_to(moving, fixed, matrix_lps, interpolator=interpolator)
    return volume_node_from_image(image, name or f"{moving_node.GetName()} registered",
                                  scene=fixed_node.GetScene(), node=node)
