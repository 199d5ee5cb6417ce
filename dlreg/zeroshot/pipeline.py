"""register_arrays: the zero-shot 2D registration of two pixel grids.

Checks the inputs, runs the chosen mode (`modes.PaperMode` or `modes.DefaultMode`), then
turns the mode's matrix and uncertainty runs into the result: parameter variance and
per-pixel variance map, the resampled moving image, plausibility and overlap checks, and
the similarity metrics before and after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from dlreg import metrics as metrics_mod
from dlreg.device import resolve_device
from dlreg.errors import InputImageError, MismatchedInputsError
from dlreg.options import resolve
from dlreg.progress import ProgressCallback, report
from dlreg.zeroshot import estimators as est
from dlreg.zeroshot import quality
from dlreg.zeroshot import uncertainty as unc
from dlreg.zeroshot.modes import MODES
from dlreg.zeroshot.options import ZeroShotOptions
from dlreg.zeroshot.warping import warp

PARAM_ORDER = ("a11", "a12", "tx", "a21", "a22", "ty")
MIN_SIZE = 16
# A result whose foregrounds overlap by less (Jaccard) had nothing in common to register.
MIN_JACCARD = 0.05
# A default-mode result that scales by more than this (or folds the image) is a degenerate fit.
MAX_SCALE = 2.0


@dataclass
class ZeroShotResult:
    """Result of register_arrays. `matrix` maps a fixed pixel (x=col, y=row, 1) to the moving pixel."""

    matrix: np.ndarray
    params: np.ndarray
    param_variance: np.ndarray
    uncertainty_map: np.ndarray
    uncertainty_summary: dict
    metrics_before: dict
    metrics_after: dict
    resampled: np.ndarray
    elapsed_s: float
    mode: str
    estimator: str
    details: dict = field(default_factory=dict)
    likely_failed: bool = False  # the result is probably wrong: see failure_reasons
    failure_reasons: list = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-serialisable summary (no image arrays)."""
        return {"matrix_pixel_fixed_to_moving": self.matrix.tolist(),
                "params": dict(zip(PARAM_ORDER, map(float, self.params))),
                "param_variance": dict(zip(PARAM_ORDER, map(float, self.param_variance))),
                "uncertainty": self.uncertainty_summary, "metrics_before": self.metrics_before,
                "metrics_after": self.metrics_after, "elapsed_s": self.elapsed_s, "mode": self.mode,
                "estimator": self.estimator, "details": self.details, "likely_failed": self.likely_failed,
                "failure_reasons": list(self.failure_reasons)}


def _check_inputs(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, a in (("fixed", fixed), ("moving", moving)):
        a = np.asarray(a)
        if a.ndim == 3 and 1 in a.shape:
            a = a.reshape([s for s in a.shape if s != 1] if a.shape.count(1) == 1 else a.shape[1:])
        if a.ndim != 2:
            raise InputImageError(f"the {name} image has {a.ndim} dimensions {a.shape}: zero-shot "
                                  f"registration needs a 2D image (pick one slice of a volume)")
        if min(a.shape) < MIN_SIZE:
            raise InputImageError(f"the {name} image {a.shape} is too small (at least {MIN_SIZE} px a side)")
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise InputImageError(f"the {name} image is not a real-valued grey image ({a.dtype})")
        if not np.isfinite(a).all():
            raise InputImageError(f"the {name} image contains NaN or infinite values")
        if float(a.max()) == float(a.min()):
            raise InputImageError(f"the {name} image is blank (every pixel is {float(a.min())})")
        out.append(a.astype(np.float32, copy=True))
    if out[0].shape != out[1].shape:
        raise MismatchedInputsError(f"the fixed image is {out[0].shape} (rows, cols) but the moving image is "
                                    f"{out[1].shape}: zero-shot registration needs images of the same size "
                                    f"(resample one onto the other's grid first)")
    return out[0], out[1]


def _check_plausible(matrix: np.ndarray, max_scale: float = MAX_SCALE) -> None:
    """Refuse a result that scales by more than max_scale or folds the image (a degenerate fit)."""
    sv = np.linalg.svd(matrix[:2, :2], compute_uv=False)
    if np.linalg.det(matrix[:2, :2]) <= 0 or sv.max() > max_scale or sv.min() < 1.0 / max_scale:
        raise MismatchedInputsError(f"the estimate is degenerate (scales {sv.min():.2f}..{sv.max():.2f}): "
                                    f"the images have no usable overlap or no common structure")


def _check_overlap(fixed: np.ndarray, resampled: np.ndarray, min_jaccard: float = MIN_JACCARD) -> None:
    """Refuse a result whose foregrounds barely overlap: the images had nothing in common."""
    f, m = metrics_mod.foreground(fixed), metrics_mod.foreground(resampled)
    if not m.any():
        raise MismatchedInputsError("the estimated transform maps the moving image entirely outside "
                                    "the fixed image: the images have no usable overlap")
    jaccard = float((f & m).sum() / max((f | m).sum(), 1))
    if jaccard < min_jaccard:
        raise MismatchedInputsError(f"after registration the foregrounds overlap by only {jaccard:.1%} "
                                    f"(Jaccard): the images have no usable overlap or no common structure")


def register_arrays(fixed: np.ndarray, moving: np.ndarray, options: ZeroShotOptions | None = None, *,
                    spacing: tuple[float, float] = (1.0, 1.0), progress: ProgressCallback | None = None,
                    **changes) -> ZeroShotResult:
    """Register a 2D moving image to a 2D fixed image of the same size (rows = y, cols = x).

    `options` (default `ZeroShotOptions()`), with keyword `changes` applied, choose the mode
    and its settings. spacing is (x, y) pixel size, used so rigid hypotheses are rigid in
    physical space. The result matrix maps a fixed pixel to the moving pixel (resampling
    convention). The inputs are never modified.
    """
    opts = resolve(ZeroShotOptions, options, changes)
    resolve_device(opts.device)  # a device that is absent is an error in every mode
    t0 = time.perf_counter()
    f_np, m_np = _check_inputs(fixed, moving)
    mode = MODES[opts.mode]
    estimator = mode.default_estimator if opts.estimator == "auto" else opts.estimator
    found = mode.register(f_np, m_np, tuple(float(s) for s in spacing), opts, estimator, progress)
    param_var, var_map, summary = unc.summarise(found.runs, f_np.shape)
    summary["confidence"] = min(max(found.lock, 0.0), 1.0)  # the edge lock (quality.py), clipped to [0, 1]
    reasons = quality.failure_reasons(found.lock)
    resampled = warp(torch.from_numpy(m_np)[None], found.matrix)[0].numpy()
    if mode.checks_plausibility:
        _check_plausible(found.matrix)
    _check_overlap(f_np, resampled)
    elapsed = time.perf_counter() - t0
    report(progress, 0.95, "metrics")
    result = ZeroShotResult(
        matrix=found.matrix, params=est.matrix_to_params(found.matrix), param_variance=param_var,
        uncertainty_map=var_map.astype(np.float32), uncertainty_summary=summary,
        metrics_before=metrics_mod.all_metrics(f_np, m_np), metrics_after=metrics_mod.all_metrics(f_np, resampled),
        resampled=resampled, elapsed_s=elapsed, mode=opts.mode, estimator=estimator, details=found.details,
        likely_failed=bool(reasons), failure_reasons=reasons)
    report(progress, 1.0, "done")
    return result
