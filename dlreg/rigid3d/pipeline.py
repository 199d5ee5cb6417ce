"""3D rigid registration of head volumes: `register_images(fixed, moving) -> RigidResult`.

Steps (each reported through `progress`):
1. Prepare both volumes (`preprocess.prepare`): ~2 mm working grid, modality-aware
   intensity normalisation, Otsu head mask and point cloud.
2. Head frames. The fixed frame F_f is the fixed head's principal-axes frame with its axes
   permuted/flipped to lie nearest the scanner axes. The moving frame F_m is, with
   `pca_prealign`, the best (by normalised MI on a coarse 32^3 x 8 mm grid) of the 24 axis
   assignments of the moving head's principal frame and the plain centroid shift; without
   it, the centroid shift alone. Either way T0 = F_m F_f^-1 is the pre-alignment.
3. Both heads are sampled on the canonical grid (64^3 x 4 mm) in their frames and the
   estimator predicts the residual rigid transform D (canonical fixed -> canonical moving):
   T = F_m D F_f^-1. "keypoints" (default): landmarks of the keypoint DCNN and their
   closed-form fit, repeated from the moved sampling (`KeypointModel.iterations`); "ann"
   (the paper's): 128 DCNN features per image -> the Bayesian-regularised ANN, one shot.
4. Uncertainty: the prediction is repeated on `n_uncertainty` pairs of fixed and moving
   samplings, each frame perturbed by a known random motion (up to 3 degrees, 3 mm) that is
   undone afterwards; the spread of the resulting transforms is reported as rotation
   (degrees), translation of the head centre and displacement of the head box corners (mm).
5. Optional Mattes-MI refinement (`refine.refine_rigid`: coarse on the working grids, fine
   on the inputs at ~1 mm), then quality metrics on the fixed working grid.
6. Checks (`failure_reasons`): landmarks that fit no rigid motion, a better fit as a mirror
   image, poor overlap or a large spread set `likely_failed` with its reasons.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import SimpleITK as sitk
import torch

from dlreg.device import resolve_device
from dlreg.imaging.geometry import apply_matrix, matrix_to_rigid
from dlreg.imaging.rigid import closest_to_axes, cube_rotations, principal_frame, random_rigid, rotation_angle_deg
from dlreg.imaging.transforms import to_sitk_transform
from dlreg.metrics import mutual_information_to
from dlreg.modality.ordering import order_images
from dlreg.options import resolve
from dlreg.progress import ProgressCallback, report
from dlreg.rigid3d.model import KeypointModel, RigidModel, load_model
from dlreg.rigid3d.options import RigidOptions
from dlreg.rigid3d.preprocess import Prepared, image_box_corners, prepare, sample_canonical
from dlreg.rigid3d.quality import quality_metrics
from dlreg.rigid3d.refine import mirror_gain, refine_rigid
from dlreg.timing import StageClock

PERTURBATION = (3.0, 3.0)  # degrees, mm
PREALIGN_GRID = (32, 8.0)  # voxels, mm: the grid on which pre-alignment candidates are compared
# Limits of the failure flag (`failure_reasons`), chosen on training subjects only
# (benchmarks/rigid3d_failures.py --split train --choose 1.5: 140 successful registrations, 140
# created failures, none of them of a test subject):
# - landmark residual: on the successes it grows with the coarsest voxel h (thick slices) as
#   0.023 + 0.081 h mm (least squares); the limit is 1.5 x the largest ratio to that (2.66);
# - mirror gain: the largest of a success is -0.044;
# - DSC and spread: backstops from before, reached by no success (worst 0.93 and 0.85 mm).
RESIDUAL_LIMIT = (0.09, 0.32)  # mm + mm per mm of h: see residual_limit
MIRROR_GAIN = 0.02
LOW_DSC = 0.6
HIGH_SPREAD_MM = 5.0

@dataclass
class RigidResult:
    """Result of a 3D rigid registration (LPS, fixed -> moving, the resampling convention)."""

    matrix: np.ndarray
    params: np.ndarray           # rx, ry, rz (rad), tx, ty, tz (mm) about `center`
    center: np.ndarray           # fixed head centre (LPS mm)
    uncertainty: dict
    metrics: dict
    elapsed_s: float
    prealignment: str
    refined: bool
    estimator: str
    likely_failed: bool = False  # the result is probably wrong: see failure_reasons
    failure_reasons: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # seconds per stage (prepare, prealign, predict, ...)
    swapped: bool = False        # order "auto" made the second input the fixed image
    ordering: dict | None = None  # the modality classifier's details with order "auto"
    checks: dict = field(default_factory=dict)  # the measurements behind likely_failed

    @property
    def failure_score(self) -> float:
        """`failure_score(checks)`: above 1 the result likely failed (NaN without checks)."""
        return failure_score(self.checks) if self.checks else float("nan")

    def to_json(self) -> dict:
        """Plain-JSON view: 4x4, parameters in degrees and mm, uncertainty, metrics, seconds."""
        rx, ry, rz, tx, ty, tz = (float(v) for v in self.params)
        return {"matrix_lps_fixed_to_moving": np.asarray(self.matrix).tolist(),
                "parameters": {"rx_deg": float(np.degrees(rx)), "ry_deg": float(np.degrees(ry)),
                               "rz_deg": float(np.degrees(rz)), "tx_mm": tx, "ty_mm": ty, "tz_mm": tz,
                               "center_lps_mm": np.asarray(self.center).tolist(),
                               "convention": "Euler3D R = Rz Rx Ry about center, LPS"},
                "uncertainty": self.uncertainty, "metrics": self.metrics,
                "seconds": round(self.elapsed_s, 3), "prealignment": self.prealignment,
                "estimator": self.estimator,
                "refined": self.refined, "likely_failed": self.likely_failed,
                "failure_reasons": list(self.failure_reasons), "swapped": self.swapped, "ordering": self.ordering,
                "failure_score": self.failure_score,
                "failure_checks": {k: None if np.isnan(v) else float(v) for k, v in self.checks.items()},
                "stage_seconds": {k: round(v, 3) for k, v in self.timings.items()}}


def fixed_frame(prepared: Prepared) -> np.ndarray:
    """The fixed head frame: principal axes nearest the scanner axes, at the head centre."""
    return closest_to_axes(principal_frame(prepared.points))


def moving_frame(fixed: Prepared, moving: Prepared, frame_f: np.ndarray, pca: bool) -> tuple[np.ndarray, str]:
    """The moving head frame and a name for the pre-alignment chosen."""
    shift = frame_f.copy()
    shift[:3, 3] = moving.centroid
    if not pca:
        return shift, "centroid"
    candidates = [(shift, "centroid")]
    pca_frame = principal_frame(moving.points)
    rotations = cube_rotations()
    for k, rot in enumerate(rotations):
        frame = pca_frame.copy()
        frame[:3, :3] = pca_frame[:3, :3] @ rot
        candidates.append((frame, f"pca-{k}"))
    target = sample_canonical(fixed.image, frame_f, *PREALIGN_GRID)
    pca_sample = sample_canonical(moving.image, pca_frame, *PREALIGN_GRID)
    samples = [sample_canonical(moving.image, shift, *PREALIGN_GRID)]
    samples += [axis_permuted(pca_sample, rot) for rot in rotations]
    scores = mutual_information_to(target, samples)
    return candidates[int(np.argmax(scores))]


def axis_permuted(sample: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """A canonical [k, j, i] sample taken in frame F, re-indexed as if taken in frame F @ rotation.

    `rotation` permutes and flips axes, so it maps the centred canonical grid onto itself:
    no image needs to be sampled again for the 24 axis assignments of one principal frame.
    """
    n = sample.shape[0]
    grid = np.indices(sample.shape)[::-1].reshape(3, -1) - (n - 1) / 2.0   # (x, y, z) per voxel
    i, j, k = np.rint(rotation @ grid + (n - 1) / 2.0).astype(np.int64)
    return sample[k, j, i].reshape(sample.shape)


def predict_transforms(model: RigidModel | KeypointModel, fixed: Prepared, moving: Prepared,
                       frame_f: np.ndarray, frame_m: np.ndarray, n_perturb: int,
                       seed: int) -> tuple[list[np.ndarray], float]:
    """Fixed->moving 4x4s (the plain prediction first, then one per perturbed pair of samplings)
    and the landmark residual (mm) of the plain prediction's last pass (NaN for the ANN).

    Each prediction D (canonical fixed -> canonical moving) moves the moving sampling frame;
    the keypoint model predicts again from there (`model.iterations` times in all). A
    perturbation moves BOTH sampling frames by known random motions (undone in the result):
    the repeated passes would undo a motion of the moving frame alone, so only a change of
    how both heads sit in the grid shows how much the answer depends on the sampling.
    """
    rng = np.random.default_rng(seed)
    perturb = [(np.eye(4), np.eye(4))] + [(random_rigid(rng, *PERTURBATION), random_rigid(rng, *PERTURBATION))
                                          for _ in range(n_perturb)]
    fixed_frames = [frame_f @ p_f for p_f, _ in perturb]
    frames = [frame_m @ p_m for _, p_m in perturb]
    fixed_c = torch.from_numpy(np.stack([sample_canonical(fixed.image, f) for f in fixed_frames]))
    residuals = np.full(len(frames), np.nan)
    for _ in range(model.iterations):
        moving_c = torch.from_numpy(np.stack([sample_canonical(moving.image, f) for f in frames]))
        steps, fixed_c, residuals = model.transforms(fixed_c, moving_c)  # the keypoint model: its landmarks
        frames = [f @ d for f, d in zip(frames, steps)]
    return [f @ np.linalg.inv(f_f) for f, f_f in zip(frames, fixed_frames)], float(residuals[0])


def spread(transforms: list[np.ndarray], corners: np.ndarray, center: np.ndarray) -> dict:
    """RMS deviation of a set of transforms from their first: degrees, centre mm, corner mm."""
    ref = transforms[0]
    if len(transforms) < 2:
        return {"rotation_deg": 0.0, "translation_mm": 0.0, "corner_mm": 0.0, "samples": 1}
    rot = [rotation_angle_deg(t[:3, :3] @ ref[:3, :3].T) for t in transforms[1:]]
    trans = [np.linalg.norm(apply_matrix(t, center) - apply_matrix(ref, center)) for t in transforms[1:]]
    corner = [np.sqrt(np.mean(np.sum((apply_matrix(t, corners) - apply_matrix(ref, corners)) ** 2, 1)))
              for t in transforms[1:]]
    rms = lambda v: float(np.sqrt(np.mean(np.square(v))))  # noqa: E731
    return {"rotation_deg": rms(rot), "translation_mm": rms(trans), "corner_mm": rms(corner),
            "samples": len(transforms)}


def _registered(fixed: Prepared, moving: Prepared, matrix: np.ndarray) -> tuple[sitk.Image, sitk.Image]:
    transform = to_sitk_transform(matrix)
    image = sitk.Resample(moving.image, fixed.image, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = sitk.Resample(moving.mask, fixed.image, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return image, mask


def _prepare_pair(fixed: sitk.Image, moving: sitk.Image) -> tuple[Prepared, Prepared]:
    """Both volumes prepared, concurrently when SimpleITK may use two threads or more (its filters
    release the GIL: one volume per core); one at a time when it is limited to one."""
    workers = min(2, sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())
    with ThreadPoolExecutor(max(1, workers)) as pool:
        jobs = [pool.submit(prepare, image, name) for image, name in ((fixed, "fixed image"),
                                                                       (moving, "moving image"))]
        return tuple(job.result() for job in jobs)  # the fixed image's error first


def register_images(fixed: sitk.Image, moving: sitk.Image, options: RigidOptions | None = None, *,
                    progress: ProgressCallback | None = None,
                    dicom: tuple[Mapping[str, str] | None, Mapping[str, str] | None] = (None, None),
                    **changes) -> RigidResult:
    """Rigidly register `moving` to `fixed`; the result maps fixed LPS points to moving ones.

    `options` (default `RigidOptions()`), with keyword `changes` applied, choose the steps.
    With order "auto" the modality classifier decides which of the two is fixed (`dicom`:
    the two images' DICOM metadata, when known) and the result says whether they were
    swapped. The inputs are never modified. The same inputs, options and seed give the same
    matrix, byte for byte.
    """
    opts = resolve(RigidOptions, options, changes)
    start = time.perf_counter()
    ordering, swapped = None, False
    if opts.order == "auto":
        report(progress, 0.0, "choosing the fixed image")
        fixed_index, _, ordering = order_images(fixed, moving, metadata=dicom, device=opts.device)
        swapped = fixed_index == 1
        if swapped:
            fixed, moving = moving, fixed
    clock = StageClock()
    report(progress, 0.0, "preparing the volumes")
    prep_f, prep_m = _prepare_pair(fixed, moving)
    clock.stage("prepare")
    report(progress, 0.2, "loading the model")
    model = load_model(opts.weights, resolve_device(opts.device), opts.estimator)
    report(progress, 0.3, "pre-aligning the heads")
    frame_f = fixed_frame(prep_f)
    frame_m, prealignment = moving_frame(prep_f, prep_m, frame_f, opts.pca_prealign)
    clock.stage("prealign")
    report(progress, 0.45, "predicting the transform")
    transforms, residual = predict_transforms(model, prep_f, prep_m, frame_f, frame_m, opts.n_uncertainty, opts.seed)
    clock.stage("predict")
    corners = image_box_corners(prep_f.image, prep_f.mask)
    uncertainty = spread(transforms, corners, prep_f.centroid)
    matrix = transforms[0]
    if opts.refine:
        report(progress, 0.6, "refining by mutual information")
        matrix = refine_rigid(prep_f, prep_m, matrix, fixed_image=fixed, moving_image=moving, seed=opts.seed)
        clock.stage("refine")
    report(progress, 0.85, "measuring the result")
    image, mask = _registered(prep_f, prep_m, matrix)
    metrics = quality_metrics(prep_f.image, prep_f.mask, image, mask)
    clock.stage("metrics")
    report(progress, 0.9, "checking the result")
    checks = {"DSC": metrics["DSC"], "spread_mm": uncertainty["corner_mm"], "landmark_residual_mm": residual,
              "coarsest_spacing_mm": float(max(*fixed.GetSpacing(), *moving.GetSpacing())),
              "refinement_shift_mm": _corner_distance(transforms[0], matrix, corners),
              "mirror_gain": mirror_gain(prep_f, prep_m, matrix, opts.seed)}
    reasons = failure_reasons(checks)
    clock.stage("checks")
    report(progress, 1.0, "done")
    return RigidResult(matrix=matrix, params=matrix_to_rigid(matrix, prep_f.centroid), center=prep_f.centroid,
                       uncertainty=uncertainty, metrics=metrics, elapsed_s=time.perf_counter() - start,
                       prealignment=prealignment, refined=opts.refine, estimator=opts.estimator,
                       likely_failed=bool(reasons), failure_reasons=reasons, timings=clock.seconds,
                       swapped=swapped, ordering=ordering, checks=checks)


def _corner_distance(a: np.ndarray, b: np.ndarray, corners: np.ndarray) -> float:
    """Mean distance (mm) between two transforms at the given points."""
    return float(np.linalg.norm(apply_matrix(a, corners) - apply_matrix(b, corners), axis=1).mean())


def residual_limit(coarsest_spacing_mm: float) -> float:
    """The landmark residual (mm) beyond which a result likely failed: it grows with the coarsest
    voxel of the two inputs (thick slices blur the landmarks), from 1 mm voxels up."""
    return RESIDUAL_LIMIT[0] + RESIDUAL_LIMIT[1] * max(1.0, coarsest_spacing_mm)


def failure_score(checks: dict) -> float:
    """The check furthest past its limit, as a ratio to it: above 1 the result likely failed.

    For a limit from above (landmark residual, mirror gain, spread) the ratio is value /
    limit; for the DSC, limited from below, (1 - DSC) / (1 - limit). A residual that is NaN
    (the paper's estimator has no landmarks) does not count.
    """
    residual = float(np.nan_to_num(checks["landmark_residual_mm"], nan=0.0))
    return max(residual / residual_limit(checks["coarsest_spacing_mm"]), checks["mirror_gain"] / MIRROR_GAIN,
               (1.0 - checks["DSC"]) / (1.0 - LOW_DSC), checks["spread_mm"] / HIGH_SPREAD_MM)


def failure_reasons(checks: dict) -> list[str]:
    """Why a result is probably wrong: landmarks that fit no rigid motion, a mirror image, poor
    head overlap, an unstable prediction."""
    reasons = []
    limit = residual_limit(checks["coarsest_spacing_mm"])
    if checks["landmark_residual_mm"] > limit:
        reasons.append(f"the network's landmarks fit no rigid motion (residual {checks['landmark_residual_mm']:.2f} "
                       f"mm, limit {limit:.2f}): the volumes may show different heads, a partial field of view "
                       "or heavy noise")
    elif checks["mirror_gain"] > MIRROR_GAIN:  # (with bad landmarks, the mirror test means little)
        reasons.append(f"the moving head fits the fixed one better as a mirror image (mutual information "
                       f"+{checks['mirror_gain']:.2f}): left and right are probably swapped in one image's "
                       "header (direction or spacing); a rigid transform cannot undo a mirror")
    if checks["DSC"] < LOW_DSC:
        reasons.append(f"the head masks overlap poorly after registration (DSC {checks['DSC']:.2f})")
    if checks["spread_mm"] > HIGH_SPREAD_MM:
        reasons.append(f"the prediction is unstable under small perturbations "
                       f"(spread {checks['spread_mm']:.1f} mm at the head box corners)")
    return reasons
