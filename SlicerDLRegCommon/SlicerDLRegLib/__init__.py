"""Slicer-side helpers shared by the SlicerDLReg modules (application code; dlreg never imports it).

Installed with the hidden SlicerDLRegCommon module, which every SlicerDLReg module lists as a
dependency, into the extension's scripted-modules folder where the dlreg package also lives;
the modules import it inside methods. Importing it also makes `import dlreg` work when the
modules run from a source checkout (Slicer's "additional module paths"), where dlreg sits at
the repository root.
"""

import importlib.util
import os
import sys

_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if importlib.util.find_spec("dlreg") is None and os.path.isfile(os.path.join(_SOURCE_ROOT, "dlreg", "__init__.py")):
    sys.path.append(_SOURCE_ROOT)

from SlicerDLRegLib.background import BackgroundRun  # noqa: E402
from SlicerDLRegLib.cohort import runCohort  # noqa: E402
from SlicerDLRegLib.dependencies import ensureDependencies  # noqa: E402
from SlicerDLRegLib.panel import ParameterPanel  # noqa: E402
from SlicerDLRegLib.samples import registerSampleData  # noqa: E402
from SlicerDLRegLib.testing import loadSampleVolume, recordProgress, volumeState  # noqa: E402

__all__ = ["BackgroundRun", "ParameterPanel", "ensureDependencies", "forgetPackages", "loadSampleVolume",
           "recordProgress", "registerSampleData", "runCohort", "volumeState"]


def forgetPackages() -> None:
    """Drop dlreg and this package from sys.modules so that the next import reads the files again."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("dlreg", __name__)]:
        del sys.modules[name]
