"""Slicer-side helpers shared by the three SlicerDLReg modules (application code, never imported by dlreg).

Installed with the ZeroShotRegistration module into the extension's scripted-modules
folder, where the dlreg package also lives; the modules import it inside methods.
Importing it also makes `import dlreg` work when the modules run from a source
checkout (Slicer's "additional module paths"), where dlreg sits at the repository root.
"""

import contextlib
import hashlib
import importlib.util
import os
import sys
from typing import Callable, Iterator, Sequence

import slicer
import vtk

_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if importlib.util.find_spec("dlreg") is None and os.path.isfile(os.path.join(_SOURCE_ROOT, "dlreg", "__init__.py")):
    sys.path.append(_SOURCE_ROOT)


def ensureTorch(interactive: bool = False) -> None:
    """Make torch importable: if it is missing, install it through the PyTorch extension after asking (GUI only)."""
    if importlib.util.find_spec("torch") is not None:
        return
    if not interactive:
        raise RuntimeError("PyTorch is not installed: install it from the PyTorch Utils module, then run again.")
    import PyTorchUtils

    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
        raise RuntimeError("SlicerDLReg needs PyTorch, which was not installed.")


def forgetPackages() -> None:
    """Drop dlreg and this package from sys.modules so that the next import reads the files again."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("dlreg", __name__)]:
        del sys.modules[name]


class ProgressReporter:
    """The `progress(fraction, message) -> keep_going` callback of a panel: a progress bar and a Cancel button."""

    def __init__(self, progressBar, cancelButton, busyWidgets: Sequence) -> None:
        self._bar = progressBar
        self._cancelButton = cancelButton
        self._busyWidgets = list(busyWidgets)
        self._cancelled = False
        cancelButton.enabled = False
        cancelButton.connect("clicked(bool)", self.cancel)

    def __call__(self, fraction: float, message: str) -> bool:
        self._bar.value = round(100 * fraction)
        self._bar.format = f"{message}  %p%"
        slicer.app.processEvents()  # draws the bar and delivers a Cancel click
        return not self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    @contextlib.contextmanager
    def running(self) -> Iterator["ProgressReporter"]:
        """One job: Cancel enabled, the busy widgets disabled; a cancel by the user ends it quietly."""
        from dlreg.errors import CancelledError

        self._cancelled = False
        self._cancelButton.enabled = True
        for widget in self._busyWidgets:
            widget.enabled = False
        try:
            self(0.0, "Starting")
            yield self
            self(1.0, "Done")
        except CancelledError:
            self._bar.format = "Cancelled"
        finally:
            self._cancelButton.enabled = False
            for widget in self._busyWidgets:
                widget.enabled = True


def loadSampleVolume(fileName: str):
    """Load one of the extension's bundled sample volumes (Resources/SampleData) into the scene."""
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
