"""register_arrays: the zero-shot 2D registration, paper mode and default mode.

Both modes: feature maps (a small CNN) -> centre-of-mass keypoints -> estimator on
bootstrap sets of keypoints -> averaged affine -> uncertainty from n runs with randomly
blackened moving images.
- paper: the literal method (VGG conv1 maps, 95% threshold, MLP estimator, no refinement).
- default: contrast-invariant maps (outline + edge maps), robust estimator, a global
  rotation check of the keypoint estimate, and NGF intensity refinement (refine.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dlreg import metrics as metrics_mod
from dlreg.device import resolve_device
from dlreg.errors import InputImageError, MismatchedInputsError
from dlreg.progress import ProgressCallback, report
from dlreg.weights import load_vgg_conv1
from dlreg.zeroshot import estimators as est
from dlreg.zeroshot import uncertainty as unc
from dlreg.zeroshot.features import InvariantBank, ShapeBank, VGGConv1, paper_preprocess, robust_unit
from dlreg.zeroshot.keypoints import centres_of_mass
from dlreg.zeroshot.mlp import N_POINTS, load_bundled_mlp, predict
from dlreg.zeroshot.refine import blackening_response, refine_affine
from dlreg.zeroshot.warping import warp

MODES = ("default", "paper")
ESTIMATORS = ("auto", "mlp", "closed-form", "robust")
PARAM_ORDER = ("a11", "a12", "tx", "a21", "a22", "ty")
MIN_SIZE = 16
MIN_WORKING_SIZE = 128
MIN_JACCARD = 0.05
MAX_SCALE = 2.0
COARSE_ITERATIONS = 6
NEAR_TIE = 0.97
# (pyramid factor, Gauss-Newton iterations, edge points) of the fine refinement stages
FINE_STAGES = ((2, 6, 8000), (1, 4, 16000))


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

    def to_json(self) -> dict:
        """JSON-serialisable summary (no image arrays)."""
        return {"matrix_pixel_fixed_to_moving": self.matrix.tolist(),
                "params": dict(zip(PARAM_ORDER, map(float, self.params))),
                "param_variance": dict(zip(PARAM_ORDER, map(float, self.param_variance))),
                "uncertainty": self.uncertainty_summary, "metrics_before": self.metrics_before,
                "metrics_after": self.metrics_after, "elapsed_s": self.elapsed_s, "mode": self.mode,
                "estimator": self.estimator, "details": self.details}


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


@lru_cache(maxsize=4)
def _vgg(location: str | None) -> VGGConv1:
    return VGGConv1(load_vgg_conv1(location)).eval()


@lru_cache(maxsize=1)
def _mlp():
    return load_bundled_mlp()


def _spacing_matrix(spacing: tuple[float, float]) -> np.ndarray:
    """Pixel -> isotropic 'physical pixel' coordinates (x scaled by sx/s0, y by sy/s0)."""
    s0 = min(spacing)
    return np.diag([spacing[0] / s0, spacing[1] / s0, 1.0])


def _bootstrap(fixed_pts: np.ndarray, moving_pts: np.ndarray, estimator: str, n_sets: int,
               rng: np.random.Generator, scale: float, residual_steps: int) -> np.ndarray:
    """Average of the parameters estimated on n_sets bootstrap sets of keypoints (paper 2.5)."""
    n = len(fixed_pts)
    size = N_POINTS if estimator == "mlp" else max(n // 2, 3)
    idx = rng.integers(0, n, size=(max(n_sets, 1), size))
    if estimator == "mlp":
        mats = predict(_mlp(), fixed_pts[idx] / scale, moving_pts[idx] / scale, residual_steps)
        s = np.diag([scale, scale, 1.0])
        mats = s @ mats @ np.linalg.inv(s)
    elif estimator == "closed-form":
        mats = est.closed_form(fixed_pts[idx], moving_pts[idx])
    else:
        mats = est.robust(fixed_pts[idx], moving_pts[idx], rng=rng)[0]
    return est.params_to_matrix(est.matrix_to_params(mats).mean(axis=0))


def _paper_keypoints(images: torch.Tensor, vgg: VGGConv1, pad: int,
                     dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    x = torch.stack([paper_preprocess(a.numpy(), pad) for a in images]).to(dev)
    pts, valid = centres_of_mass(vgg.to(dev)(x), (0.95,), soft=False)
    return pts - pad, valid


def _default_keypoints(images: torch.Tensor, factor: int) -> tuple[np.ndarray, np.ndarray]:
    x = F.avg_pool2d(images[:, None], factor)[:, 0] if factor > 1 else images
    maps = torch.cat([ShapeBank()(x), InvariantBank()(x)], dim=1)
    pts, valid = centres_of_mass(maps, (0.5, 0.7, 0.9), soft=True)
    return (pts + 0.5) * factor - 0.5, valid


def _keypoint_estimate(fixed_pts, moving_pts, valid, estimator, n_sets, rng, scale, residual_steps,
                       spacing_m) -> np.ndarray:
    if valid.sum() < 3:
        raise MismatchedInputsError("fewer than 3 feature maps have keypoints in both images: "
                                    "the images have no usable overlap or no common structure")
    fp = fixed_pts[valid] @ spacing_m[:2, :2].T
    mp = moving_pts[valid] @ spacing_m[:2, :2].T
    a = _bootstrap(fp, mp, estimator, n_sets, rng, scale, residual_steps)
    return np.linalg.inv(spacing_m) @ a @ spacing_m


def _rotation_candidates(fixed_c: np.ndarray, moving_c: np.ndarray, spacing_m: np.ndarray,
                         n_angles: int = 36) -> np.ndarray:
    """Rigid transforms mapping the fixed outline centre to the moving one, at n_angles rotations."""
    theta = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    mats = np.tile(np.eye(3), (n_angles, 1, 1))
    mats[:, 0, 0], mats[:, 0, 1], mats[:, 1, 0], mats[:, 1, 1] = c, -s, s, c
    sm, sm_inv = spacing_m, np.linalg.inv(spacing_m)
    cf, cm = sm @ np.r_[fixed_c, 1.0], sm @ np.r_[moving_c, 1.0]
    mats[:, :2, 2] = cm[:2] - np.einsum("nij,j->ni", mats[:, :2, :2], cf[:2])
    return sm_inv @ mats @ sm


def _ngf_score(fixed: torch.Tensor, moving: torch.Tensor, mats: np.ndarray, cache: dict | None = None,
               factor: int = 4) -> np.ndarray:
    """NGF alignment of each candidate matrix at 1/factor resolution (no optimisation)."""
    _, score = refine_affine(fixed, moving[None], torch.as_tensor(mats), levels=(factor,), iterations=(0,),
                             cache=cache)
    return score.numpy()


def _coarse_factor(shape: tuple[int, int]) -> int:
    """Pyramid factor of the global check (1/4 resolution); small images are upsampled first."""
    return 4


def _working_factor(shape: tuple[int, int]) -> int:
    """Integer upsampling that brings the short side to at least MIN_WORKING_SIZE pixels.

    The global check runs at 1/4 resolution; on a small slice (e.g. 80x62 px of a 2 mm
    volume) that leaves too few pixels to tell 10 degrees of rotation apart: measured on
    the bundled stroke slices, 6-10 px errors without upsampling, 0.06-0.14 px with x2.
    """
    return max(1, int(np.ceil(MIN_WORKING_SIZE / min(shape))))


def _upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor (pixel centres: x_up = f x + (f - 1) / 2)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)[0, 0].numpy()


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


def register_arrays(fixed: np.ndarray, moving: np.ndarray, *, spacing: tuple[float, float] = (1.0, 1.0),
                    mode: str = "default", estimator: str = "auto", n_bootstrap: int = 10,
                    n_uncertainty: int = 10, vgg_weights: str | None = None, refine: bool | None = None,
                    seed: int = 0, device: str = "auto", progress: ProgressCallback | None = None
                    ) -> ZeroShotResult:
    """Register a 2D moving image to a 2D fixed image of the same size (rows = y, cols = x).

    spacing is (x, y) pixel size, used so rigid hypotheses are rigid in physical space.
    The result matrix maps a fixed pixel to the moving pixel (resampling convention).
    The inputs are never modified.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got '{estimator}'")
    dev = resolve_device(device)  # the VGG maps of paper mode use it; the rest is small CPU work
    t0 = time.perf_counter()
    f_np, m_np = _check_inputs(fixed, moving)
    up = _working_factor(f_np.shape) if mode == "default" else 1  # paper mode stays literal
    f_work, m_work = (_upsample(f_np, up), _upsample(m_np, up)) if up > 1 else (f_np, m_np)
    spacing_m = _spacing_matrix(tuple(float(s) for s in spacing))
    est_name = ({"paper": "mlp", "default": "robust"}[mode]) if estimator == "auto" else estimator
    do_refine = (mode == "default") if refine is None else bool(refine)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    shape = f_work.shape
    scale = float(max(shape))
    report(progress, 0.05, "feature maps and keypoints")
    fu, mu = robust_unit(f_work), robust_unit(m_work)
    keep = unc.blackening_masks(shape, n_uncertainty if n_uncertainty > 1 else 0, gen)
    # Without refinement every uncertainty run (the moving image with randomly blackened pixel
    # blocks) repeats the keypoint stage; with it, the runs repeat the refinement (below).
    moving_kp = mu[None] if do_refine else torch.cat([mu[None], mu[None] * keep])
    if mode == "paper":
        pts, valid = _paper_keypoints(torch.cat([fu[None], moving_kp]), _vgg(vgg_weights), max(shape) // 8, dev)
        residual_steps = 0
    else:
        pts, valid = _default_keypoints(torch.cat([fu[None], moving_kp]), factor=4)
        residual_steps = 2
    estimates = []
    for k in range(len(moving_kp)):
        report(progress, 0.1 + 0.4 * k / len(moving_kp), f"estimating transform {k + 1}/{len(moving_kp)}")
        v = valid[0] & valid[k + 1]
        estimates.append(_keypoint_estimate(pts[0], pts[k + 1], v, est_name, n_bootstrap, rng, scale,
                                            residual_steps, spacing_m))
    estimates = np.stack(estimates)
    details = {"keypoints": int(valid[0].sum()), "refined": do_refine}
    if do_refine:
        report(progress, 0.55, "global check and intensity refinement")
        fg_f, fg_m = pts[0][0], pts[1][0]  # CoM of the blurred outline (first shape map)
        cands = np.concatenate([estimates[:1], _rotation_candidates(fg_f, fg_m, spacing_m)])
        cache: dict = {}  # pyramid levels, edge points and moving-image fields, shared by the stages
        coarse_factor = _coarse_factor(shape)
        score = _ngf_score(fu, mu, cands, cache, coarse_factor)
        top = np.argsort(-score)[:2]
        coarse, s_coarse = refine_affine(fu, mu[None], torch.as_tensor(cands[top]), levels=(coarse_factor,),
                                         iterations=(COARSE_ITERATIONS,), cache=cache)
        # a near-tie at 1/4 resolution (runner-up within NEAR_TIE of the best) is decided at
        # 1/2 resolution: both candidates go through the first fine stage
        order = torch.argsort(s_coarse, descending=True)
        near_tie = len(order) > 1 and float(s_coarse[order[1]]) >= NEAR_TIE * float(s_coarse[order[0]])
        final = coarse[order] if near_tie else coarse[order[:1]]
        details["near_tie"] = bool(near_tie)
        stages = [s for s in FINE_STAGES if s[0] < coarse_factor] or [FINE_STAGES[-1]]
        for k, (factor, iters, n_pts) in enumerate(stages):
            final, s_final = refine_affine(fu, mu[None], final, levels=(factor,), iterations=(iters,),
                                           n_points=n_pts, cache=cache)
            if k == 0:
                best = int(torch.argmax(s_final))
                final, s_final = final[best:best + 1], s_final[best:best + 1]
        matrix = final[0].numpy()
        details["ngf_alignment"] = float(s_final[0])
        if n_uncertainty > 1:
            report(progress, 0.75, "uncertainty runs")
            run_mats, _, _ = blackening_response(fu, mu[None], final[0], keep, n_points=FINE_STAGES[-1][2],
                                                 cache=cache)
            run_mats = run_mats.numpy()
        else:
            run_mats = matrix[None]
    else:
        matrix = estimates[0]
        run_mats = estimates[1:] if n_uncertainty > 1 else matrix[None]
    if up > 1:  # back from the upsampled working grid to the input's pixels
        to_work = np.array([[up, 0.0, (up - 1) / 2], [0.0, up, (up - 1) / 2], [0.0, 0.0, 1.0]])
        matrix = np.linalg.inv(to_work) @ matrix @ to_work
        run_mats = np.linalg.inv(to_work) @ run_mats @ to_work
        details["working_upsampling"] = up
    param_var, var_map, summary = unc.summarise(run_mats, f_np.shape)
    resampled_t = warp(torch.from_numpy(m_np)[None], matrix)[0]
    if mode == "default":  # the paper mode returns what the literal method gives
        _check_plausible(matrix)
    _check_overlap(f_np, resampled_t.numpy())
    elapsed = time.perf_counter() - t0
    report(progress, 0.95, "metrics")
    resampled = resampled_t.numpy()
    result = ZeroShotResult(
        matrix=matrix, params=est.matrix_to_params(matrix), param_variance=param_var,
        uncertainty_map=var_map.astype(np.float32), uncertainty_summary=summary,
        metrics_before=metrics_mod.all_metrics(f_np, m_np), metrics_after=metrics_mod.all_metrics(f_np, resampled),
        resampled=resampled, elapsed_s=elapsed, mode=mode, estimator=est_name, details=details)
    report(progress, 1.0, "done")
    return result
