"""Labelled volumes for training and evaluating the classifier: a manifest, synthetic additions.

A manifest is a CSV with columns `image` (file or DICOM folder, relative to the CSV),
`label` (a class of `dlreg.modality.classes.CLASSES`) and `subject` (cross-validation groups
volumes by it), and optionally `brain_mask` (a T1 with skull: the mask lets the painted
pseudo-CT give the rest of the head bone and soft tissue). Data locations are arguments only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CLASSES, CT, MR_FLAIR, MR_T1, MR_T2
from dlreg.training.modality.synthetic import pseudo_ct_from_t1, pseudo_mr_from_t1

MANIFEST_COLUMNS = ("image", "label", "subject")


@dataclass
class Volume:
    """One labelled volume: `subject` groups volumes for leave-one-subject-out."""

    subject: str
    label: str
    name: str
    image: sitk.Image
    synthetic: bool = False
    brain_mask: sitk.Image | None = None  # only for a T1 with skull


def read_manifest(path: str | Path) -> list[Volume]:
    """The volumes a manifest lists (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"manifest not found: {path}")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not set(MANIFEST_COLUMNS) <= set(rows[0]):
        raise InputImageError(f"{path} needs the columns {', '.join(MANIFEST_COLUMNS)}")
    volumes = []
    for n, row in enumerate(rows, start=2):
        if row["label"] not in CLASSES:
            raise InputImageError(f"{path}, line {n}: label '{row['label']}' is not one of {', '.join(CLASSES)}")
        mask = read_image(path.parent / row["brain_mask"]) > 0 if row.get("brain_mask") else None
        volumes.append(Volume(row["subject"], row["label"], row["image"], read_image(path.parent / row["image"]),
                              brain_mask=mask))
    return volumes


def with_synthetic(volumes: Sequence[Volume], *, ct: bool = True, mr: bool = True) -> list[Volume]:
    """`volumes` plus a pseudo-CT (`ct`) and pseudo-T2 and pseudo-FLAIR brains (`mr`) painted
    from each real T1, in the T1's subject."""
    t1s = [v for v in volumes if v.label == MR_T1 and not v.synthetic]
    out = list(volumes)
    if ct:
        out += [Volume(v.subject, CT, f"pseudo-CT of {v.name}", pseudo_ct_from_t1(v.image, brain_mask=v.brain_mask),
                       synthetic=True) for v in t1s]
    if mr:
        out += [Volume(v.subject, label, f"pseudo-{label[3:]} of {v.name}",
                       pseudo_mr_from_t1(v.image, label, brain_mask=v.brain_mask), synthetic=True)
                for v in t1s for label in (MR_T2, MR_FLAIR)]
    return out
