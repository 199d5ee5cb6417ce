"""Cases of the zero-shot 2D benchmarks: subjects, slices, seeded affine pairs, errors and the peers.

A case is an axial slice (LPS-oriented, one with at least half the largest brain area) of one
subject's fixed contrast on a 256x256 canvas, and the same slice of the moving contrast resampled
(cubic) through a random affine about the canvas centre (paper section 2.8): translation
U(-50, 50) px in x and y, rotation U(-r, r), shear U(-0.03, 0.03) rad. The contrasts of a subject
share one grid, so the true fixed -> moving transform is that affine. Grid error: mean over all
256x256 fixed pixels of |A_est p - A_true p| (px = mm). Peers: SimpleITK and ANTs affine
registration with Mattes MI (both multi-resolution), and the "floor": SimpleITK started AT the truth.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from devdata import BRATS2018, DEFAULT_DATA, TEST_SUBJECTS, brats2018_files  # noqa: E402, F401

CANVAS = 256
CONTRASTS = ("t1", "t1c", "t2", "flair")
# (moving, fixed) contrasts of the tasks; the truth check covers these pairs and T1c->T1.
TASKS = {"mono": (("t1", "t1"),), "multi": (("t2", "t1"), ("flair", "t1"), ("t1c", "t2"))}
PAIRS_USED = (("t2", "t1"), ("flair", "t1"), ("t1c", "t2"), ("t1c", "t1"))
# The older subjects, by contrast (BraTS 2018 subjects are found through devdata.brats2018_files).
OTHER_SUBJECTS = {
    "brats_gli_00001_000": {"t1": "brats_gli_00001_000/BraTS-GLI-00001-000-t1n.nii.gz",
                            "t1c": "brats_gli_00001_000/BraTS-GLI-00001-000-t1c.nii.gz",
                            "t2": "brats_gli_00001_000/BraTS-GLI-00001-000-t2w.nii.gz",
                            "flair": "brats_gli_00001_000/BraTS-GLI-00001-000-t2f.nii.gz"},
    "tcga_du_7294": {"t1": "tcga_du_7294/t1.nii.gz", "t1c": "tcga_du_7294/t1c.nii.gz",
                     "t2": "tcga_du_7294/t2.nii.gz", "flair": "tcga_du_7294/fla.nii.gz"},
    "aurora": {"t1": "aurora/t1.nii.gz", "t1c": "aurora/t1c.nii.gz", "t2": "aurora/t2.nii.gz",
               "flair": "aurora/flair.nii.gz"},
    "stroke": {"t1": "stroke/stroke_T1.nii.gz", "t2": "stroke/stroke_T2.nii.gz",
               "flair": "stroke/stroke_FLAIR.nii.gz"},
}
# Subjects whose contrasts are more than 1 mm apart (zeroshot_truth.py: rigid 3D registration of
# each contrast pair started at the identity by Mattes MI of the intensities and of the gradient
# magnitudes; mean brain displacement, the smaller of the two): never measured against the
# nominal truth. aurora is also INEXACT_SUBJECTS and has its own row against the MI floor.
EXCLUDED = {"brats_gli_00001_000": "T2->T1 1.55 mm, T1c->T2 1.11 mm",
            "aurora": "T1c->T1 1.70 mm, T1c->T2 1.67 mm, T2->T1 1.42 mm, FLAIR->T1 1.41 mm",
            "Brats18_CBICA_ABM_1": "FLAIR->T1 1.38 mm",
            "Brats18_CBICA_ALU_1": "FLAIR->T1 1.09 mm",
            "Brats18_CBICA_AQN_1": "FLAIR->T1 1.09 mm (a test subject: the test rows keep the other five)"}
_BRATS2018_NAMES = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair"}


def subject_files(data: Path) -> dict[str, dict[str, Path]]:
    """{subject: {contrast: path}} of every subject present in the data folder."""
    out: dict[str, dict[str, Path]] = {}
    for subject, files in OTHER_SUBJECTS.items():
        present = {c: data / rel for c, rel in files.items() if (data / rel).is_file()}
        if present:
            out[subject] = present
    for subject, rel, _ in brats2018_files(data):
        contrast = _BRATS2018_NAMES[rel.rsplit("_", 1)[1].split(".")[0]]
        out.setdefault(subject, {})[contrast] = data / rel
    return out


def split_subjects(data: Path, split: str) -> list[str]:
    """Subjects of a split present in `data`: "test" (devdata.TEST_SUBJECTS) or "train" (the
    others), both without the EXCLUDED ones, or one subject by name (e.g. "aurora")."""
    present = subject_files(data)
    if split in ("test", "train"):
        names = [s for s in (*OTHER_SUBJECTS, *BRATS2018)
                 if (s in TEST_SUBJECTS) == (split == "test") and s not in EXCLUDED]
    else:
        names = [split]
    return [s for s in names if s in present]


def load_slices(data: Path, subjects: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """{subject: {contrast: (Z, 256, 256) float32 axial slices}} of the brain-bearing slices."""
    files = subject_files(data)
    out = {}
    for subject in subjects:
        vols = {c: sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(p), sitk.sitkFloat32), "LPS"))
                for c, p in files[subject].items()}
        area = (vols["t1"] > np.percentile(vols["t1"], 99) * 0.1).sum(axis=(1, 2))
        keep = np.flatnonzero(area >= 0.5 * area.max())
        for contrast, arr in vols.items():
            arr = arr[keep]
            pad_y, pad_x = CANVAS - arr.shape[1], CANVAS - arr.shape[2]
            arr = np.pad(arr, ((0, 0), (pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)))
            vols[contrast] = np.clip(arr, 0, None).astype(np.float32)
        out[subject] = vols
    return out


def random_matrix(rng: np.random.Generator, max_rotation: float = 0.3) -> tuple[np.ndarray, float]:
    """Fixed-pixel -> moving-pixel affine of the protocol about the canvas centre, and its rotation (rad)."""
    theta = rng.uniform(-max_rotation, max_rotation)
    shear = rng.uniform(-0.03, 0.03)
    t = rng.uniform(-50, 50, size=2)
    c, s = np.cos(theta), np.sin(theta)
    lin = np.array([[c, -s], [s, c]]) @ np.array([[1.0, np.tan(shear)], [0.0, 1.0]])
    centre = np.array([(CANVAS - 1) / 2.0] * 2)
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = centre - lin @ centre + t
    return m, float(theta)


def warp_with(image: np.ndarray, matrix: np.ndarray, order: int = 3) -> np.ndarray:
    """out(p) = image(matrix p), p = (x, y); scipy works in (row, col)."""
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])
    m = swap @ matrix @ swap
    return ndimage.affine_transform(image, m[:2, :2], offset=m[:2, 2], order=order, mode="constant")


def make_cases(slices: dict, pairs: tuple[tuple[str, str], ...], n: int, seed: int,
               max_rotation: float = 0.3) -> list[dict]:
    """n cases (fixed, moving, true matrix, start rotation) cycling over subjects and contrast pairs."""
    rng = np.random.default_rng(seed)
    options = [(s, mv, fx) for s, vols in slices.items() for mv, fx in pairs if mv in vols and fx in vols]
    cases = []
    for i in range(n):
        subject, mv, fx = options[i % len(options)]
        z = int(rng.integers(0, len(slices[subject][fx])))
        true, theta = random_matrix(rng, max_rotation)
        moving = warp_with(slices[subject][mv][z], np.linalg.inv(true))
        cases.append({"subject": subject, "pair": f"{mv}->{fx}", "slice": z, "true": true,
                      "rotation_deg": float(np.degrees(theta)), "fixed": slices[subject][fx][z],
                      "moving": np.clip(moving, 0, None)})
    return cases


def grid_error(est: np.ndarray, true: np.ndarray, shape=(CANVAS, CANVAS)) -> float:
    """Mean distance between estimated and true mapped positions over the fixed grid (px)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    d = (np.asarray(est) - np.asarray(true))[:2] @ p
    return float(np.mean(np.hypot(d[0], d[1])))


def _matrix_of(affine: sitk.AffineTransform) -> np.ndarray:
    """Fixed -> moving pixel matrix of an ITK 2D affine on unit-spacing, zero-origin images."""
    lin = np.array(affine.GetMatrix()).reshape(2, 2)
    c, t = np.array(affine.GetCenter()), np.array(affine.GetTranslation())
    mat = np.eye(3)
    mat[:2, :2] = lin
    mat[:2, 2] = c + t - lin @ c
    return mat


def sitk_affine_mattes(fixed: np.ndarray, moving: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """SimpleITK affine registration, Mattes MI, and the moving image resampled onto the fixed grid
    (as every method delivers it); the fixed -> moving pixel matrix.

    A standard, untuned setup: centred moments initialiser (or `start`), Mattes MI 32 bins, 25%
    random sampling with a fixed seed, linear interpolation, regular-step gradient descent
    (learning rate 2, min step 1e-4, 200 iterations, relaxation 0.6) with physical-shift scales,
    shrink 4/2/1 and smoothing 2/1/0.
    """
    f, m = sitk.GetImageFromArray(fixed.astype(np.float32)), sitk.GetImageFromArray(moving.astype(np.float32))
    if start is None:
        init = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(2),
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
    else:
        init = sitk.AffineTransform(2)
        init.SetMatrix(start[:2, :2].ravel().tolist())
        init.SetTranslation(start[:2, 2].tolist())
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=200,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    tx = reg.Execute(f, m)
    affine = sitk.AffineTransform(tx.GetNthTransform(0) if isinstance(tx, sitk.CompositeTransform) else tx)
    sitk.Resample(m, f, affine, sitk.sitkLinear, 0.0)
    return _matrix_of(affine)


def ants_affine(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """ANTs affine registration with its standard settings; the fixed -> moving pixel matrix.

    `ants.registration(type_of_transform="Affine")`: centre-of-mass initialisation, Mattes MI
    (32 bins, 20% regular sampling), 4 levels (shrink 6/4/2/1, smoothing 3/2/1/0 vox), with a
    fixed random seed; it also resamples the moving image. Thread count:
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS (set by the caller before ants is imported). ANTs
    images index (x, y), hence the transposes.
    """
    import ants  # the bench extra (antspyx); imported only when the method runs

    f, m = ants.from_numpy(np.ascontiguousarray(fixed.T)), ants.from_numpy(np.ascontiguousarray(moving.T))
    out = ants.registration(f, m, type_of_transform="Affine", random_seed=1)
    path = out["fwdtransforms"][0]
    try:
        affine = sitk.AffineTransform(sitk.ReadTransform(path))
    finally:
        for p in set(out["fwdtransforms"] + out["invtransforms"]):
            if os.path.exists(p):
                os.remove(p)
    return _matrix_of(affine)
