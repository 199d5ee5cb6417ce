"""SlicerDLReg common: a hidden module that carries the helpers the three SlicerDLReg modules share."""

import os

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# parameterNodeWrapper (the modules' parameter nodes) came with Slicer 5.4.
MINIMUM_SLICER = (5, 4)


class SlicerDLRegCommon(ScriptedLoadableModule):
    """Hidden module: installs SlicerDLRegLib for the other modules and registers the sample data."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SlicerDLReg Common"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.hidden = True
        self.parent.helpText = """
Shared helpers of the SlicerDLReg modules (background runs, dependency installation, sample data).
SlicerDLReg needs Slicer 5.4 or newer.
"""
        self.parent.acknowledgementText = """
Part of the SlicerDLReg extension. Sample data: MNI ICBM152 2009a template and a chronic-stroke MR series
(see dlreg/sampledata/LICENSES.md).
"""
        slicer.app.connect("startupCompleted()", self._onStartupCompleted)

    def _onStartupCompleted(self) -> None:
        version = (slicer.app.majorVersion, slicer.app.minorVersion)
        if version < MINIMUM_SLICER:
            slicer.util.warningDisplay(f"SlicerDLReg needs Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or newer; "
                                       f"this is {version[0]}.{version[1]}.")
            return
        import SlicerDLRegLib

        icon = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "SlicerDLRegCommon.png")
        SlicerDLRegLib.registerSampleData(icon)
