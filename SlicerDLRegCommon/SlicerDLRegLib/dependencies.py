"""What the modules need beyond Slicer: PyTorch (through the PyTorch extension) and scikit-image.

Nothing is installed at import time or in a constructor: `ensureDependencies` runs just
before the first registration, asks first (interactive), and otherwise says what to do.
The modules load without either package, so a missing one is explained, not a silent failure.
"""

import importlib.util
from typing import Optional

import slicer

PYTORCH_HELP = ("SlicerDLReg needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager "
                "(View > Extensions Manager), restart Slicer, and press Apply again; its PyTorch Utils module "
                "installs a build that matches your GPU.")
PIP_PACKAGES = {"skimage": "scikit-image>=0.21"}  # import name -> requirement


def ensureDependencies(interactive: bool = False, extra: Optional[dict] = None) -> None:
    """Make torch, scikit-image and the `extra` packages ({import name: requirement}) importable,
    after asking (interactive); else raise saying how."""
    wanted = {**PIP_PACKAGES, **(extra or {})}
    missing = [name for name in ("torch", *wanted) if importlib.util.find_spec(name) is None]
    if "torch" in missing:
        _installTorch(interactive)
    pipMissing = [wanted[name] for name in missing if name in wanted]
    if pipMissing:
        _pipInstall(pipMissing, interactive)


def _installTorch(interactive: bool) -> None:
    if not interactive or not hasattr(slicer.modules, "pytorchutils"):
        raise RuntimeError(PYTORCH_HELP)
    import PyTorchUtils

    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
        raise RuntimeError("SlicerDLReg needs PyTorch, which was not installed.")


def _pipInstall(requirements: list, interactive: bool) -> None:
    text = " ".join(requirements)
    if not interactive:
        raise RuntimeError(f"SlicerDLReg needs {text}: run slicer.util.pip_install('{text}') in the Python console.")
    if not slicer.util.confirmOkCancelDisplay(f"SlicerDLReg needs {text}, which is not installed. Install it now?"):
        raise RuntimeError(f"SlicerDLReg needs {text}, which was not installed.")
    slicer.util.pip_install(text)
