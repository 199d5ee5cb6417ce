"""The modality classifier's options: one definition shared by the API, CLI, Slicer module and batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dlreg.modality.classes import CLASSES, MR_T1
from dlreg.options import Options, device_option, option


@dataclass(frozen=True)
class ModalityOptions(Options):
    """How `dlreg.modality` classifies volumes and orders two of them."""

    weights: Optional[str] = option(None, "classifier weights file from train-modality (default: bundled)",
                                    metavar="PATH", path=True)
    prefer_fixed: str = option(MR_T1, "when ordering two volumes, the class to make the fixed image",
                               choices=CLASSES)
    device: str = device_option()
