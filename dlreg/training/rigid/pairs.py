"""Training pairs of the rigid estimators: from a CSV or a folder of co-registered volumes.

A CSV has `fixed,moving` columns (optional `split`: train/val). In a folder, every
sub-folder is one subject whose volumes are co-registered: its T1 (a name holding "t1"
but not "t1c"/"t1ce", else the first file) is fixed and every other volume is moving; a
subject or loose file with a single volume pairs with itself (self-supervised,
mono-modal). Pairs are assumed co-registered (true transform identity). 30% of the
subjects without a given split go to validation.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from dlreg.errors import InputImageError

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
VAL_FRACTION = 0.3


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def _reference_first(files: list[Path]) -> list[Path]:
    def is_t1(p: Path) -> bool:
        name = p.name.lower()
        return "t1" in name and "t1c" not in name and "t1ce" not in name
    return sorted(files, key=lambda p: (not is_t1(p), p.name))


def discover_pairs(source: str | os.PathLike) -> list[tuple[Path, Path, str | None]]:
    """(fixed, moving, split or None) for a CSV or a folder (see the module docstring)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or not {"fixed", "moving"} <= set(rows[0]):
            raise InputImageError(f"{source} needs 'fixed' and 'moving' columns")
        base = source.parent
        return [(base / r["fixed"], base / r["moving"], r.get("split") or None) for r in rows]
    if not source.is_dir():
        raise InputImageError(f"training data {source} is neither a folder nor a .csv file")
    pairs = []
    groups = [sorted(d.iterdir()) for d in sorted(source.iterdir()) if d.is_dir()]
    groups += [[f] for f in sorted(source.iterdir()) if _is_image(f)]
    for group in groups:
        files = _reference_first([f for f in group if _is_image(f)])
        if len(files) == 1:
            pairs.append((files[0], files[0], None))
        pairs += [(files[0], m, None) for m in files[1:]]
    if not pairs:
        raise InputImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {source}")
    return pairs


def assign_splits(pairs: list[tuple[Path, Path, str | None]], seed: int) -> list[str]:
    """Given splits kept; the rest: 30% of the subjects (by fixed image) to validation."""
    subjects = sorted({str(f) for f, _, s in pairs if s is None})
    rng = np.random.default_rng(seed)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    n_val = int(round(VAL_FRACTION * len(order))) if len(order) > 1 else 0
    val = set(order[:n_val])
    return [s if s is not None else ("val" if str(f) in val else "train") for f, _, s in pairs]
