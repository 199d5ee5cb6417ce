"""A module panel's parameter node: binding to the GUI, scene close, first volumes, path fields.

The three widgets share this lifecycle (enter/exit, scene start/end close, the wrapper's
connectGui), so it lives here once; each widget keeps one-line methods that Slicer calls.
Path fields are `str` parameters (empty: the bundled default; never the working directory)
shown in ctkPathLineEdit widgets that carry the dynamic property `DLRegPathParameter`: the
wrapper binds a ctkPathLineEdit only to a `pathlib.Path`, whose empty value reads as ".".
"""

from typing import Callable, Optional

import slicer
import vtk

PATH_PROPERTY = "DLRegPathParameter"


class ParameterPanel:
    """Keeps a widget's GUI bound to its logic's parameter node across scene changes."""

    def __init__(self, widget, logic, onModified: Callable[[], None], volumeFields: tuple = ()) -> None:
        self._widget = widget
        self._logic = logic
        self._onModified = onModified
        self._volumeFields = volumeFields
        self.node = None
        self._guiTag = None
        self._paths = [w for w in slicer.util.findChildren(widget.uiWidget, className="ctkPathLineEdit")
                       if w.property(PATH_PROPERTY)]
        for pathEdit in self._paths:
            pathEdit.connect("currentPathChanged(QString)", lambda text, w=pathEdit: self._pathEdited(w, text))
        widget.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *_: self.unbind())
        widget.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, lambda *_: self._sceneReopened())

    def bind(self) -> None:
        """Use the logic's parameter node; preselect the scene's first volumes for empty volume fields."""
        self._set(self._logic.getParameterNode())
        if self._volumeFields and not any(getattr(self.node, name) for name in self._volumeFields):
            for index, name in enumerate(self._volumeFields):
                setattr(self.node, name, slicer.mrmlScene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode"))

    def unbind(self) -> None:
        self._set(None)

    def _sceneReopened(self) -> None:
        if self._widget.parent.isEntered:
            self.bind()

    def _set(self, node: Optional[object]) -> None:
        if self.node is not None:
            self.node.disconnectGui(self._guiTag)
            self._widget.removeObserver(self.node, vtk.vtkCommand.ModifiedEvent, self._modified)
        self.node = node
        if node is not None:
            self._guiTag = node.connectGui(self._widget.ui)
            self._widget.addObserver(node, vtk.vtkCommand.ModifiedEvent, self._modified)
            self._modified()

    def _modified(self, caller=None, event=None) -> None:
        for pathEdit in self._paths:
            value = getattr(self.node, pathEdit.property(PATH_PROPERTY))
            if pathEdit.currentPath != value:
                blocked = pathEdit.blockSignals(True)
                pathEdit.currentPath = value
                pathEdit.blockSignals(blocked)
        self._onModified()

    def _pathEdited(self, pathEdit, text: str) -> None:
        if self.node is not None:
            setattr(self.node, pathEdit.property(PATH_PROPERTY), str(text).strip())

