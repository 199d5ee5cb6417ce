"""Cheap sanity gates run before the network: inputs that are not tomographic images.

Each gate returns a reason (a sentence for the user) or None. A mask or label map holds a
handful of values, and a geometric phantom is piecewise constant (a few values cover
almost all of it), where a scan's noise and partial volumes give a continuum; a 2D picture
copied into every slice is constant along one axis; white noise has no spatial correlation
between neighbouring voxels, which every real image at a few millimetres has; a head
scan has background (air, or zero outside a skull-stripped brain) around the head, and
noise or texture filling the whole field of view has none.
Blank volumes and too-thin stacks are refused earlier with an InputImageError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dlreg.modality.preprocess import CanonicalInput

# Mean |difference| between neighbouring slices relative to the image's spread.
MIN_SLICE_CHANGE = 0.01
# Lag-1 correlation between neighbouring voxels, averaged over the three axes.
MIN_NEIGHBOUR_CORRELATION = 0.3
# Fraction of voxels at background level (normalised value below BACKGROUND_LEVEL).
MIN_BACKGROUND_FRACTION = 0.05
BACKGROUND_LEVEL = 0.05
# A mask or label map: at most this many distinct stored values.
MAX_LABEL_VALUES = 16
# A phantom: the most frequent PHANTOM_LEVELS values of the object cover this much of it.
PHANTOM_LEVELS = 8
PHANTOM_COVER = 0.8
_AXES = ("k", "j", "i")


def few_values(values: np.ndarray) -> str | None:
    """Reason if the stored values are a mask, a label map or a piecewise-constant phantom.

    The phantom test looks at the object only (values above a tenth of the way from the
    background to the bright end), so that a dark background's noise levels do not count."""
    distinct = np.unique(values)
    if len(distinct) <= MAX_LABEL_VALUES:
        kind = "a boolean mask" if len(distinct) <= 2 else "a label map or mask"
        return (f"the volume holds only {len(distinct)} distinct values: {kind}, not an image of anatomy")
    low, high = np.percentile(values, [0.5, 99.5])
    obj = values[values > low + 0.1 * (high - low)]
    if obj.size == 0:
        return None
    counts = np.sort(np.unique(obj, return_counts=True)[1])[::-1]
    cover = float(counts[:PHANTOM_LEVELS].sum()) / float(obj.size)
    if cover >= PHANTOM_COVER:
        return (f"{100 * cover:.0f}% of the object takes one of {PHANTOM_LEVELS} values: piecewise constant "
                "like a phantom or a segmentation, not a scan (which has noise and partial volumes)")
    return None


def repeated_slices(array: np.ndarray) -> str | None:
    """Reason if the volume is (nearly) the same along one axis."""
    spread = float(array.std())
    for axis, name in enumerate(_AXES):
        change = float(np.abs(np.diff(array, axis=axis)).mean()) / max(spread, 1e-12)
        if change < MIN_SLICE_CHANGE:
            return (f"the volume barely changes along its {name} axis (relative change {change:.4f}): "
                    "a 2D picture repeated into slices, not a tomographic image")
    return None


def neighbour_correlation(array: np.ndarray) -> float:
    """Mean correlation between each voxel and its next neighbour along each axis."""
    values = []
    for axis in range(3):
        n = array.shape[axis]
        a = np.take(array, range(n - 1), axis=axis).ravel()
        b = np.take(array, range(1, n), axis=axis).ravel()
        if a.std() > 0 and b.std() > 0:
            values.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values)) if values else 0.0


def uncorrelated_noise(array: np.ndarray) -> str | None:
    """Reason if neighbouring voxels are nearly independent (noise)."""
    rho = neighbour_correlation(array)
    if rho < MIN_NEIGHBOUR_CORRELATION:
        return (f"neighbouring voxels are nearly uncorrelated (correlation {rho:.2f}): "
                "the volume looks like noise, not an image of anatomy")
    return None


def no_background(array: np.ndarray) -> str | None:
    """Reason if almost no voxel is at background level."""
    fraction = float(np.mean(array < BACKGROUND_LEVEL))
    if fraction < MIN_BACKGROUND_FRACTION:
        return (f"only {100 * fraction:.1f}% of the volume is background: the field of view is filled "
                "edge to edge, unlike a head scan (air or zero around the head)")
    return None


def sanity_reason(prepared: "CanonicalInput") -> str | None:
    """First failing gate's reason (stored values, then the normalised working volume), or None."""
    reason = few_values(prepared.stored_values)
    for gate in (repeated_slices, uncorrelated_noise, no_background):
        reason = reason or gate(prepared.working)
    return reason
