"""Zero-shot 2D multi-modal registration with uncertainty: the Slicer module (GUI and thin logic over dlreg)."""

from typing import Annotated, Optional, Union

import slicer
from slicer import vtkMRMLLinearTransformNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class ZeroShotRegistration(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Zero-Shot Registration"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = ["SlicerDLRegCommon"]
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.helpText = """
Registers a slice of the moving volume to the same slice of the fixed volume (affine, in the slice plane)
in a fraction of a second and without any training data: keypoints are the centres of mass of feature maps,
and a robust fit (or the paper's regressor) maps them to the transform. Randomly blackened copies of the
moving image give an uncertainty map of the registration, and a result that is probably wrong is flagged.
Pick the slice in the matching slice view (axial: Red, sagittal: Yellow, coronal: Green) or register all slices.
Results: a linear transform (apply it to the moving volume to lay it over the fixed one), the registered
volume and the uncertainty map. The work runs in a background process: the window stays responsive and
Cancel stops it at once. Try it on Sample Data > SlicerDLReg > DLRegStroke. Needs Slicer 5.4 or newer and PyTorch.
See <a href="https://github.com/SlicerDLReg/SlicerDLReg#zeroshotregistration">the documentation</a>.
"""
        self.parent.acknowledgementText = """
This module implements the method of A. Kori and G. Krishnamurthi,
"Zero Shot Learning for Multi-Modal Real Time Image Registration", arXiv:1908.06213, 2019.
"""


@parameterNodeWrapper
class ZeroShotRegistrationParameterNode:
    """Panel state, saved with the scene. The fields from mode to device are dlreg's ZeroShotOptions,
    one for one (camelCase); Testing/test_module_files.py fails if they drift apart."""

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    mode: Annotated[str, Choice(["default", "paper"]), Default("default")]
    estimator: Annotated[str, Choice(["auto", "mlp", "closed-form", "robust"]), Default("auto")]
    plane: Annotated[str, Choice(["axial", "coronal", "sagittal"]), Default("axial")]
    nBootstrap: Annotated[int, WithinRange(1, 100), Default(10)]
    nUncertainty: Annotated[int, WithinRange(0, 100), Default(10)]
    vggWeights: str  # a path; empty: the bundled VGG16 block
    seed: Annotated[int, WithinRange(0, 2147483647), Default(0)]
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    allSlices: bool
    outputTransform: vtkMRMLLinearTransformNode
    outputVolume: vtkMRMLScalarVolumeNode
    outputUncertainty: vtkMRMLScalarVolumeNode
    overlay: Annotated[str, Choice(["registered", "uncertainty", "none"]), Default("registered")]
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0), Default(0.5)]


class ZeroShotRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: the .ui bound to the parameter node; Apply starts a background run, Cancel stops it."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._panel = None
        self._run = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.uiWidget = slicer.util.loadUI(self.resourcePath("UI/ZeroShotRegistration.ui"))
        self.layout.addWidget(self.uiWidget)
        self.ui = slicer.util.childWidgetVariables(self.uiWidget)
        self.uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ZeroShotRegistrationLogic()
        from SlicerDLRegLib import BackgroundRun, ParameterPanel

        self._run = BackgroundRun(self.ui.progressBar, self.ui.cancelButton, [self.ui.applyButton],
                                  self._checkCanApply)
        self._panel = ParameterPanel(self, self.logic, self._checkCanApply, ("fixedVolume", "movingVolume"))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *_: self._run.cancel())
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self._panel.bind()

    def cleanup(self) -> None:
        self._run.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self._panel.bind()

    def exit(self) -> None:
        self._panel.unbind()

    def onReload(self) -> None:
        """Developer reload: the dlreg core is imported afresh too."""
        import SlicerDLRegLib

        SlicerDLRegLib.forgetPackages()
        ScriptedLoadableModuleWidget.onReload(self)

    def _checkCanApply(self) -> None:
        from dlreg.mrml.panel import pair_action

        p = self._panel.node if self._panel else None
        enabled, tip = pair_action(p.fixedVolume if p else None, p.movingVolume if p else None,
                                   running=bool(self._run and self._run.running))
        self.ui.applyButton.enabled = enabled
        self.ui.applyButton.toolTip = tip

    def onApplyButton(self) -> None:
        p = self._panel.node
        with slicer.util.tryWithErrorDisplay("Registration could not start.", waitCursor=True):
            from SlicerDLRegLib import ensureDependencies

            ensureDependencies(interactive=True)
            from dlreg.mrml.jobs import zeroshot_job
            from dlreg.zeroshot.options import ZeroShotOptions

            options = ZeroShotOptions.from_attributes(p)
            sliceIndex = "all" if p.allSlices else self.logic.sliceIndexInView(p.fixedVolume, options.plane)
            outputs = {"output_transform": p.outputTransform, "output_volume": p.outputVolume,
                       "output_uncertainty": p.outputUncertainty}
            job = zeroshot_job(p.fixedVolume, p.movingVolume, options, slice_index=sliceIndex, outputs=outputs)
            self._run.start(job, self._onDone, title="Zero-shot registration")

    def _onDone(self, result) -> None:
        p = self._panel.node
        p.outputTransform, p.outputVolume = result.transform_node, result.output_volume
        p.outputUncertainty = result.uncertainty_volume
        self.ui.resultTextEdit.setPlainText(result.summary_text())
        self.logic.showResult(result, p.fixedVolume, overlay=p.overlay, opacity=p.overlayOpacity)


class ZeroShotRegistrationLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over dlreg.mrml.zeroshot for the Python console and batch mode (runs in this process)."""

    sliceViews = {"axial": "Red", "sagittal": "Yellow", "coronal": "Green"}

    def getParameterNode(self) -> ZeroShotRegistrationParameterNode:
        return ZeroShotRegistrationParameterNode(super().getParameterNode())

    def process(self, fixedVolume, movingVolume, options=None, *, sliceIndex: Union[None, int, str] = None,
                outputTransform=None, outputVolume=None, outputUncertainty=None, progress=None,
                show: Optional[str] = None, interactive: bool = False, **changes):
        """Register the moving volume's slice(s) to the fixed volume's; inputs are left unchanged.

        options: a dlreg.zeroshot.ZeroShotOptions (keyword changes such as mode="paper" apply on top).
        sliceIndex: an index, "all", "view" (the slice shown in the plane's slice view) or None (one-slice
        images). Outputs left as None are created. The slice views change only with show="registered" or
        "uncertainty". Returns dlreg's result: transform_node, output_volume, uncertainty_volume, table_node,
        likely_failed and summary_text().
        """
        from SlicerDLRegLib import ensureDependencies

        ensureDependencies(interactive)
        from dlreg.mrml import zeroshot
        from dlreg.options import resolve
        from dlreg.zeroshot.options import ZeroShotOptions

        options = resolve(ZeroShotOptions, options, changes)
        if sliceIndex == "view":
            sliceIndex = self.sliceIndexInView(fixedVolume, options.plane)
        result = zeroshot.register_nodes(fixedVolume, movingVolume, options, slice_index=sliceIndex,
                                         output_transform=outputTransform, output_volume=outputVolume,
                                         output_uncertainty=outputUncertainty, progress=progress)
        if show:
            self.showResult(result, fixedVolume, overlay=show)
        return result

    def sliceIndexInView(self, volumeNode, plane: str) -> int:
        """Index of the `plane` slice of the volume at the centre of that plane's slice view."""
        from dlreg.mrml.volumes import slice_index_from_ras

        sliceToRAS = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNode" + self.sliceViews[plane]).GetSliceToRAS()
        return slice_index_from_ras(volumeNode, [sliceToRAS.GetElement(i, 3) for i in range(3)], plane)

    def showResult(self, result, fixedVolume, overlay: str = "registered", opacity: float = 0.5) -> None:
        """Show the registered volume or the uncertainty map over the fixed volume ("none": nothing)."""
        from dlreg.mrml.display import show_registration

        show_registration(fixedVolume, result.output_volume, result.uncertainty_volume, overlay, opacity)


class ZeroShotRegistrationTest(ScriptedLoadableModuleTest):
    """Runs the registration on the extension's bundled stroke MR volumes inside Slicer."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    @staticmethod
    def centre(volumeNode):
        """RAS centre of a volume's bounds."""
        import numpy as np

        bounds = [0.0] * 6
        volumeNode.GetRASBounds(bounds)
        return (np.array(bounds[::2]) + np.array(bounds[1::2])) / 2

    def runTest(self) -> None:
        self.setUp()
        self.test_RecoversKnownInPlaneShift()
        self.setUp()
        self.test_MultiModalOutputsAndCancel()
        self.setUp()
        self.test_BackgroundRunMakesTheSameNodes()

    def test_RecoversKnownInPlaneShift(self) -> None:
        """The MNI T1 (axis-aligned) against itself shifted in the axial plane: the transform must undo the shift."""
        import numpy as np
        from SlicerDLRegLib import loadSampleVolume, recordProgress, volumeState

        from dlreg.mrml.volumes import slice_index_from_ras

        self.delayDisplay("Registering a shifted copy of the MNI T1")
        fixed = loadSampleVolume("mni_t1_2mm.nrrd")
        moving = slicer.modules.volumes.logic().CloneVolume(slicer.mrmlScene, fixed, "shifted")
        shift = np.array([6.0, -4.0, 0.0])  # RAS mm, within the axial plane
        moving.SetOrigin(*(np.array(fixed.GetOrigin()) + shift))
        centre = self.centre(fixed)
        before = [volumeState(fixed), volumeState(moving)]
        steps = []
        result = ZeroShotRegistrationLogic().process(
            fixed, moving, sliceIndex=slice_index_from_ras(fixed, centre, "axial"), n_uncertainty=2,
            progress=recordProgress(steps))
        self.assertEqual([volumeState(fixed), volumeState(moving)], before)
        self.assertEqual(steps[-1], 1.0)
        self.assertFalse(result.likely_failed)
        transform = result.transform_node
        self.assertEqual(transform.GetNodeReferenceID(transform.GetFixedNodeReferenceRole()), fixed.GetID())
        self.assertEqual(transform.GetNodeReferenceID(transform.GetMovingNodeReferenceRole()), moving.GetID())
        # The transform lays the moving volume over the fixed one: moving point p + shift -> fixed point p.
        matrix = slicer.util.arrayFromTransformMatrix(transform, toWorld=True)
        for offset in ([0, 0, 0], [40, 0, 0], [0, 40, 0], [-30, -30, 0]):
            point = np.append(centre + offset + shift, 1.0)
            np.testing.assert_allclose((matrix @ point)[:3], centre + offset, atol=3.0)
        self.delayDisplay("Test passed")

    def test_MultiModalOutputsAndCancel(self) -> None:
        """FLAIR to T1: outputs on the fixed grid, a finite non-negative uncertainty map, the views untouched
        until shown; Cancel stops the run."""
        import numpy as np
        from SlicerDLRegLib import loadSampleVolume, recordProgress

        from dlreg.errors import CancelledError
        from dlreg.mrml.volumes import slice_index_from_ras

        fixed = loadSampleVolume("stroke_t1_2mm.nrrd")
        moving = loadSampleVolume("stroke_flair_2mm.nrrd")
        composite = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceCompositeNodeRed")
        foregroundBefore = composite.GetForegroundVolumeID()
        logic = ZeroShotRegistrationLogic()
        middle = slice_index_from_ras(fixed, self.centre(fixed), "axial")
        result = logic.process(fixed, moving, sliceIndex=middle, n_uncertainty=3)
        self.assertEqual(composite.GetForegroundVolumeID(), foregroundBefore)  # console calls show nothing
        self.assertTrue(result.summary_text())
        self.assertEqual(result.output_volume.GetImageData().GetDimensions(), fixed.GetImageData().GetDimensions())
        uncertainty = slicer.util.arrayFromVolume(result.uncertainty_volume)
        self.assertTrue(np.all(np.isfinite(uncertainty)) and uncertainty.min() >= 0)
        logic.showResult(result, fixed, overlay="uncertainty")
        self.assertEqual(composite.GetForegroundVolumeID(), result.uncertainty_volume.GetID())
        steps = []
        with self.assertRaises(CancelledError):
            logic.process(fixed, moving, sliceIndex="all", n_uncertainty=3,
                          progress=recordProgress(steps, cancelAfter=2))
        self.assertEqual(len(steps), 2)
        self.delayDisplay("Test passed")

    def test_BackgroundRunMakesTheSameNodes(self) -> None:
        """The panel's path: the same registration in a child process gives the same transform."""
        import numpy as np
        from SlicerDLRegLib import loadSampleVolume

        from dlreg.mrml.jobs import run_job, zeroshot_job
        from dlreg.zeroshot.options import ZeroShotOptions

        fixed = loadSampleVolume("stroke_t1_2mm.nrrd")
        moving = loadSampleVolume("stroke_t2_2mm.nrrd")
        options = ZeroShotOptions(n_uncertainty=2)
        here = ZeroShotRegistrationLogic().process(fixed, moving, options, sliceIndex=35)
        there = run_job(zeroshot_job(fixed, moving, options, slice_index=35))
        np.testing.assert_allclose(slicer.util.arrayFromTransformMatrix(there.transform_node),
                                   slicer.util.arrayFromTransformMatrix(here.transform_node), atol=1e-6)
        self.delayDisplay("Test passed")
