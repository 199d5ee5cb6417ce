"""The rigid 3D pipeline's options: one definition shared by the API, CLI, Slicer module and batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dlreg.options import Options, device_option, option, seed_option

ESTIMATORS = ("keypoints", "ann")
ORDERS = ("manual", "auto")
# Perturbed predictions of the uncertainty: each holds two 64^3 canonical volumes, so the
# count is bounded to keep memory bounded (README: peak memory).
MAX_UNCERTAINTY_RUNS = 64


@dataclass(frozen=True)
class RigidOptions(Options):
    """How `dlreg.rigid3d` registers two head volumes."""

    estimator: str = option("keypoints", "keypoints: network landmarks + closed-form fit; "
                                         "ann: the paper's DCNN + Bayesian-regularised ANN", choices=ESTIMATORS)
    refine: bool = option(True, "mutual-information refinement after the prediction")
    pca_prealign: bool = option(True, "principal-axes pre-alignment for large misalignments")
    n_uncertainty: int = option(8, "perturbed predictions for the uncertainty (0: none)",
                                minimum=0, maximum=MAX_UNCERTAINTY_RUNS, deprecated={"--uncertainty": "0.3"})
    weights: Optional[str] = option(None, "weights file from train-rigid for the estimator (default: bundled)",
                                    metavar="PATH", path=True)
    order: str = option("manual", "manual: the images as given; auto: the modality classifier picks the "
                                  "fixed image (MR-T1 preferred)", choices=ORDERS)
    seed: int = seed_option()
    device: str = device_option()
