"""The modality classes the classifier knows, and the open-set answer."""

from __future__ import annotations

from dlreg.errors import DLRegError

CT = "CT"
MR_T1 = "MR-T1"
MR_T1C = "MR-T1C"
MR_T2 = "MR-T2"
MR_FLAIR = "MR-FLAIR"
UNKNOWN = "unknown"

# Network output order: index i of the softmax is CLASSES[i].
CLASSES: tuple[str, ...] = (CT, MR_T1, MR_T1C, MR_T2, MR_FLAIR)
ALL_LABELS: tuple[str, ...] = CLASSES + (UNKNOWN,)

def check_class(label: str) -> str:
    """Return `label` if it is a known class, else raise naming the known ones."""
    if label not in CLASSES:
        raise DLRegError(f"unknown modality class '{label}': use one of {', '.join(CLASSES)}")
    return label


def family(label: str | None) -> str | None:
    """'CT', 'MR' or None (unknown / missing)."""
    if label == CT:
        return CT
    if label is not None and label.startswith("MR"):
        return "MR"
    return None
