"""Render a slice view's composited picture (background + foreground) without a GUI.

Uses the slice logic's own blending pipeline, the one that feeds Slicer's
slice views, so what is written is what a user would see in that view.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import vtk
from vtk.util import numpy_support


def slice_view_rgba(slice_logic, width: int = 256, height: int = 256,
                    through_ras: Sequence[float] | None = None) -> np.ndarray:
    """The blended RGBA picture of one slice view, fitted to its volumes, as [row, col, 4].

    `through_ras` moves the view's plane through that point after fitting.
    """
    slice_node = slice_logic.GetSliceNode()
    slice_node.SetDimensions(width, height, 1)
    slice_logic.FitSliceToAll()
    if through_ras is not None:
        slice_node.JumpSliceByOffsetting(*[float(v) for v in through_ras[:3]])
    producer = slice_logic.GetImageDataConnection().GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(0)
    cols, rows, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    # VTK rows run bottom-up; flip so row 0 is the top of the view.
    return pixels.reshape(rows, cols, -1)[::-1].copy()


def write_png(rgba: np.ndarray, path: str | os.PathLike) -> None:
    """Write a [row, col, 3|4] uint8 array as a PNG file."""
    rows, cols, channels = rgba.shape
    data = vtk.vtkImageData()
    data.SetDimensions(cols, rows, 1)
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(rgba[::-1]).reshape(-1, channels), deep=True)
    data.GetPointData().SetScalars(scalars)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(os.fspath(path))
    writer.SetInputData(data)
    writer.Write()
