"""A real MRML scene wired as Slicer's application wires it, for use outside Slicer.

Inside Slicer, use `slicer.mrmlScene`. Outside (tests, the demo, the CLI with
the `slicer-core` wheel), `create_scene()` builds the scene with an
application logic, the Colors and Volumes module logics and the three slice
views (Red, Yellow, Green), and sets `slicer.mrmlScene` for `slicer.util`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import slicer
import vtk

SLICE_VIEWS = ("Red", "Yellow", "Green")
_ORIENTATIONS = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}


@dataclass
class SceneContext:
    """The scene and the logics that must stay alive with it."""

    scene: "slicer.vtkMRMLScene"
    application_logic: "slicer.vtkSlicerApplicationLogic"
    slice_logics: dict = field(default_factory=dict)
    module_logics: dict = field(default_factory=dict)

    def close(self) -> None:
        """Empty the scene and detach the logics from it, slice views first.

        Leaving the teardown to the garbage collector can destroy the scene
        before the logics that observe it, which crashes VTK.
        """
        self.scene.Clear(True)
        for logic in (*self.slice_logics.values(), *self.module_logics.values(), self.application_logic):
            logic.SetMRMLScene(None)
        self.slice_logics.clear()
        self.module_logics.clear()


def create_scene() -> SceneContext:
    """New scene with colour tables, volumes logic and Red/Yellow/Green slice views."""
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetTemporaryPath(tempfile.gettempdir())
    app.SetMRMLScene(scene)
    colors = slicer.vtkSlicerColorLogic()
    colors.SetMRMLApplicationLogic(app)
    # The wheel ships no colour files, only the built-in tables: silence the
    # colour logic's complaint about the missing folder while it loads them.
    verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        colors.SetMRMLScene(scene)
    finally:
        vtk.vtkLogger.SetStderrVerbosity(verbosity)
    app.SetColorLogic(colors)
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLApplicationLogic(app)
    volumes.SetMRMLScene(scene)
    app.SetModuleLogic("Colors", colors)
    app.SetModuleLogic("Volumes", volumes)
    context = SceneContext(scene, app, module_logics={"Colors": colors, "Volumes": volumes})
    for name in SLICE_VIEWS:
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLApplicationLogic(app)
        logic.SetMRMLScene(scene)
        logic.AddSliceNode(name).SetOrientation(_ORIENTATIONS[name])
        context.slice_logics[name] = logic
    slicer.mrmlScene = scene
    return context
