"""Samples on the canonical grid, built once per volume and cached on disk.

Every volume gives, on the canonical grid:
- its un-augmented canonical input (kind ORIGINAL);
- `per_volume` training augmentations (`augment.augment`, kind AUGMENTED);
- `native` native-like variants (`native.native_like`, kind NATIVE) for training;
- `eval_native` further native-like variants drawn from other seeds (kind EVAL_NATIVE): never
  trained on, they measure how held-out volumes fare as scanner series.
Synthetic volumes get `synthetic_share` of those counts; real CTs get `extra_for_rare` times
more. Augmentations start from a ~2 mm bin-average of the volume (the canonical grid is 4 mm).
`n_ood` synthetic out-of-distribution volumes (label OOD_LABEL, kind OOD) are added, among them
CTs that lost their Hounsfield signature (`native.ct_without_hu`).

Sample k of a volume uses the seed (seed, crc32(name), k): the set is reproducible and does not
depend on which other volumes are present. With `cache_dir`, each volume's samples are stored in
one .npz file named after the volume, the counts, the seed and the grid, and read back on the
next run.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.modality.classes import CLASSES, CT
from dlreg.modality.gates import sanity_reason
from dlreg.modality.preprocess import GRID_SIZE, GRID_SPACING, canonical_input
from dlreg.progress import ProgressCallback, report
from dlreg.rigid3d.preprocess import shrink_to_working
from dlreg.training.modality.augment import augment, ood_volume
from dlreg.training.modality.data import Volume
from dlreg.training.modality.losses import OOD_LABEL
from dlreg.training.modality.native import ct_native_like, ct_without_hu, native_like

ORIGINAL, AUGMENTED, NATIVE, EVAL_NATIVE, OOD = 0, 1, 2, 3, -1
EVAL_SEED_BASE = 1000   # sample indices of the evaluation variants start here
SOURCE_SPACING = 2.0


@dataclass
class SampleSet:
    """Canonical inputs with labels (-1: out of distribution) and their provenance."""

    x: np.ndarray            # (N, C, G, G, G) float16
    y: np.ndarray            # (N,) int, index into CLASSES or OOD_LABEL
    subject: np.ndarray      # (N,) str; "ood" for OOD samples
    kind: np.ndarray         # (N,) int: ORIGINAL, AUGMENTED, NATIVE, EVAL_NATIVE or OOD
    synthetic: np.ndarray    # (N,) bool: painted from another volume (pseudo-CT/T2/FLAIR) or OOD
    name: np.ndarray         # (N,) str
    physics_ct: np.ndarray   # (N,) bool: the sample has the Hounsfield signature
    gated: np.ndarray        # (N,) bool: a sanity gate answers "unknown" before the network

    FIELDS = ("x", "y", "subject", "kind", "synthetic", "name", "physics_ct", "gated")

    @property
    def original(self) -> np.ndarray:
        """The un-augmented volumes."""
        return self.kind == ORIGINAL

    def subset(self, keep: np.ndarray) -> "SampleSet":
        """The samples where `keep` is True."""
        return SampleSet(*(getattr(self, f)[keep] for f in self.FIELDS))

    @staticmethod
    def concatenate(parts: list["SampleSet"]) -> "SampleSet":
        """One set from several."""
        return SampleSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in SampleSet.FIELDS))


def _counts(volume: Volume, per_volume: int, native: int, eval_native: int, synthetic_share: float,
            extra_for_rare: int) -> tuple[int, int, int]:
    factor = synthetic_share if volume.synthetic else (extra_for_rare if volume.label == CT else 1)
    scaled = [int(round(n * factor)) for n in (per_volume, native)]
    return scaled[0], scaled[1], 0 if volume.synthetic else eval_native


def _variant(volume: Volume, source: sitk.Image, k: int, kind: int, seed: int) -> sitk.Image:
    rng = np.random.default_rng([seed, zlib.crc32(volume.name.encode()), k])
    is_ct = volume.label == CT
    if kind == AUGMENTED:
        return augment(source, rng, is_ct)
    if is_ct:
        return ct_native_like(source, rng)
    mask = None if volume.brain_mask is None else shrink_to_working(volume.brain_mask, SOURCE_SPACING) > 0.5
    return native_like(source, volume.label, rng, stripped=volume.brain_mask is None, brain_mask=mask)


def volume_samples(volume: Volume, *, per_volume: int, native: int, eval_native: int, seed: int,
                   synthetic_share: float = 0.5, extra_for_rare: int = 3, grid_size: int = GRID_SIZE,
                   grid_spacing: float = GRID_SPACING, cache_dir: str | Path | None = None) -> SampleSet:
    """All samples of one volume (read from / written to `cache_dir` when given)."""
    n_aug, n_native, n_eval = _counts(volume, per_volume, native, eval_native, synthetic_share, extra_for_rare)
    path = None
    if cache_dir is not None:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", volume.name).strip("_")
        path = Path(cache_dir) / f"{slug}-{n_aug}-{n_native}-{n_eval}-s{seed}-g{grid_size}x{grid_spacing:g}.npz"
        if path.is_file():
            return _read(path, volume)
    source = shrink_to_working(volume.image, SOURCE_SPACING)
    jobs = ([(0, ORIGINAL)] + [(k, AUGMENTED) for k in range(1, n_aug + 1)]
            + [(k, NATIVE) for k in range(n_aug + 1, n_aug + n_native + 1)]
            + [(EVAL_SEED_BASE + k, EVAL_NATIVE) for k in range(n_eval)])
    arrays, kinds, physics, gated = [], [], [], []
    for k, kind in jobs:
        image = volume.image if kind == ORIGINAL else _variant(volume, source, k, kind, seed)
        prepared = canonical_input(image, volume.name, grid_size, grid_spacing)
        arrays.append(prepared.array.astype(np.float16))
        kinds.append(kind)
        physics.append(prepared.physics.is_ct)
        gated.append(sanity_reason(prepared) is not None)
    fields = {"x": np.stack(arrays), "kind": np.asarray(kinds), "physics_ct": np.asarray(physics),
              "gated": np.asarray(gated)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **fields)
    return _assemble(volume, **fields)


def _read(path: Path, volume: Volume) -> SampleSet:
    data = np.load(path)
    return _assemble(volume, **{f: data[f] for f in ("x", "kind", "physics_ct", "gated")})


def _assemble(volume: Volume, x: np.ndarray, kind: np.ndarray, physics_ct: np.ndarray,
              gated: np.ndarray) -> SampleSet:
    n = len(kind)
    return SampleSet(x, np.full(n, CLASSES.index(volume.label)), np.full(n, volume.subject, dtype=object),
                     kind, np.full(n, volume.synthetic), np.full(n, volume.name, dtype=object), physics_ct, gated)


def ood_samples(n_ood: int, templates: list[sitk.Image], cts: list[sitk.Image], *, seed: int,
                grid_size: int = GRID_SIZE, grid_spacing: float = GRID_SPACING) -> SampleSet:
    """`n_ood` OOD samples that pass the sanity gates: one in five a CT without Hounsfield units,
    the rest `augment.ood_volume` (brain-like kinds painted from `templates`)."""
    rows, k = [], 0
    while len(rows) < n_ood:
        rng = np.random.default_rng([seed, 10_000, k])
        k += 1
        if cts and k % 5 == 0:
            image = ct_without_hu(cts[int(rng.integers(len(cts)))], rng)
            name = f"ood-{k} (CT without HU)"
        else:
            template = templates[int(rng.integers(len(templates)))] if templates else None
            image = ood_volume(rng, template=template)
            name = f"ood-{k}"
        try:
            prepared = canonical_input(image, "ood", grid_size, grid_spacing)
        except InputImageError:
            continue
        if sanity_reason(prepared) is None and not prepared.physics.is_ct:   # what reaches the network
            rows.append((prepared.array.astype(np.float16), name))
    n = len(rows)
    return SampleSet(np.stack([r[0] for r in rows]), np.full(n, OOD_LABEL), np.full(n, "ood", dtype=object),
                     np.full(n, OOD), np.ones(n, bool), np.array([r[1] for r in rows], dtype=object),
                     np.zeros(n, bool), np.zeros(n, bool))


def make_samples(volumes: list[Volume], *, per_volume: int = 4, native: int = 4, eval_native: int = 3,
                 n_ood: int = 150, seed: int = 0, synthetic_share: float = 0.5, extra_for_rare: int = 3,
                 grid_size: int = GRID_SIZE, grid_spacing: float = GRID_SPACING,
                 cache_dir: str | Path | None = None, progress: ProgressCallback | None = None) -> SampleSet:
    """Samples of every volume (see the module docstring) plus the OOD samples."""
    parts = []
    for i, volume in enumerate(volumes):
        report(progress, i / (len(volumes) + 1), f"samples of {volume.name}")
        parts.append(volume_samples(volume, per_volume=per_volume, native=native, eval_native=eval_native,
                                    seed=seed, synthetic_share=synthetic_share, extra_for_rare=extra_for_rare,
                                    grid_size=grid_size, grid_spacing=grid_spacing, cache_dir=cache_dir))
    report(progress, len(volumes) / (len(volumes) + 1), "out-of-distribution volumes")
    templates = [shrink_to_working(v.image, SOURCE_SPACING) for v in volumes
                 if v.label == CLASSES[1] and not v.synthetic and v.brain_mask is None]
    cts = [shrink_to_working(v.image, SOURCE_SPACING) for v in volumes if v.label == CT]
    parts.append(_cached_ood(n_ood, templates, cts, seed, grid_size, grid_spacing, cache_dir,
                             tuple(sorted(v.name for v in volumes))))
    report(progress, 1.0, f"{sum(len(p.y) for p in parts)} samples")
    return SampleSet.concatenate(parts)


def _cached_ood(n_ood, templates, cts, seed, grid_size, grid_spacing, cache_dir, names) -> SampleSet:
    path = None
    if cache_dir is not None:
        key = zlib.crc32("|".join(names).encode())
        path = Path(cache_dir) / f"ood-{n_ood}-s{seed}-g{grid_size}x{grid_spacing:g}-{key:08x}.npz"
        if path.is_file():
            data = np.load(path, allow_pickle=True)
            return SampleSet(*(data[f] for f in SampleSet.FIELDS))
    out = ood_samples(n_ood, templates, cts, seed=seed, grid_size=grid_size, grid_spacing=grid_spacing)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f: getattr(out, f) for f in SampleSet.FIELDS})
    return out
