"""The zero-shot pipeline's options: one definition shared by the API, CLI, Slicer module and batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dlreg.options import Options, OptionsError, device_option, option, seed_option

MODES = ("default", "paper")
ESTIMATORS = ("auto", "mlp", "closed-form", "robust")
PLANES = ("axial", "coronal", "sagittal")
MAX_RUNS = 100  # bootstrap sets and uncertainty runs: bounded so that memory stays bounded


@dataclass(frozen=True)
class ZeroShotOptions(Options):
    """How `dlreg.zeroshot` registers two 2D images (or slices of two volumes)."""

    mode: str = option("default", "default: contrast-invariant keypoints, robust fit and NGF refinement; "
                                  "paper: the literal method (VGG conv1, 95 percent threshold, MLP)", choices=MODES)
    estimator: str = option("auto", "transformation estimator; auto: mlp in paper mode, robust in default mode",
                            choices=ESTIMATORS)
    plane: str = option("axial", "slice plane of 3D volumes", choices=PLANES)
    n_bootstrap: int = option(10, "bootstrap sets of keypoints averaged", minimum=1, maximum=MAX_RUNS)
    n_uncertainty: int = option(10, "uncertainty runs with randomly blackened pixels (0 or 1: none)",
                                minimum=0, maximum=MAX_RUNS)
    vgg_weights: Optional[str] = option(None, "torchvision VGG16/VGG19 weights file or torch hub cache folder "
                                              "for paper mode (default: the bundled VGG16 block)",
                                        metavar="PATH", path=True)
    seed: int = seed_option()
    device: str = device_option()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vgg_weights is not None and self.mode != "paper":
            raise OptionsError("option vgg_weights is used only in paper mode (mode default uses fixed, "
                               "contrast-invariant filters): choose mode paper or leave vgg_weights unset")
