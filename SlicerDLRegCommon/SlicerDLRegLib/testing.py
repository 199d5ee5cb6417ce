"""Helpers of the modules' in-Slicer self-tests."""

import hashlib
from typing import Callable

import slicer
import vtk


def loadSampleVolume(fileName: str):
    """Load one of dlreg's bundled sample volumes (dlreg/sampledata) into the scene."""
    from dlreg.sampledata import sample_path

    return slicer.util.loadVolume(str(sample_path(fileName)))


def volumeState(volumeNode) -> tuple:
    """What a registration must not change in an input volume: voxels, geometry, parent transform."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    voxels = hashlib.sha256(slicer.util.arrayFromVolume(volumeNode).tobytes()).hexdigest()
    geometry = tuple(matrix.GetElement(i, j) for i in range(4) for j in range(4))
    return voxels, geometry, volumeNode.GetTransformNodeID()


def recordProgress(steps: list, cancelAfter: int = -1) -> Callable[[float, str], bool]:
    """A progress callback for tests: appends fractions to `steps`; asks to stop after `cancelAfter` calls."""

    def progress(fraction: float, message: str) -> bool:
        steps.append(fraction)
        return cancelAfter < 0 or len(steps) < cancelAfter

    return progress
