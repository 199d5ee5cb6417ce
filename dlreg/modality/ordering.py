"""Which of two volumes is the fixed image: the paper fixes MR-T1 and moves CT.

The volume more likely to be the preferred class is fixed. When both are about
equally likely (within MARGIN), the predicted labels decide by RANKING (preferred
class first, then MR-T1, MR-T1C, MR-T2, MR-FLAIR, CT; "unknown" last); when they tie
too, the input order stands and `details["ambiguous"]` says so.
"""

from __future__ import annotations

from typing import Mapping

import SimpleITK as sitk

from dlreg.modality.classes import CT, MR_FLAIR, MR_T1, MR_T1C, MR_T2, UNKNOWN, check_class
from dlreg.modality.options import ModalityOptions
from dlreg.modality.result import ModalityResult
from dlreg.options import resolve

RANKING = (MR_T1, MR_T1C, MR_T2, MR_FLAIR, CT)
MARGIN = 0.05


def order_results(result_a: ModalityResult, result_b: ModalityResult,
                  prefer_fixed: str = MR_T1) -> tuple[int, int, dict]:
    """(fixed_index, moving_index, details) from two classification results."""
    check_class(prefer_fixed)
    ranking = [prefer_fixed] + [c for c in RANKING if c != prefer_fixed] + [UNKNOWN]
    p_a = result_a.probabilities.get(prefer_fixed, 0.0)
    p_b = result_b.probabilities.get(prefer_fixed, 0.0)
    rank_a, rank_b = ranking.index(result_a.label), ranking.index(result_b.label)
    ambiguous = False
    if abs(p_a - p_b) > MARGIN:
        fixed = 0 if p_a > p_b else 1
        rule = f"higher P({prefer_fixed})"
    elif rank_a != rank_b:
        fixed = 0 if rank_a < rank_b else 1
        rule = "label ranking"
    else:
        fixed, ambiguous = 0, True
        rule = "input order (both volumes look alike)"
    details = {
        "prefer_fixed": prefer_fixed, "rule": rule, "ambiguous": ambiguous,
        "labels": [result_a.label, result_b.label],
        "probabilities": [result_a.probabilities, result_b.probabilities],
        "results": [result_a.to_json(), result_b.to_json()],
    }
    return fixed, 1 - fixed, details


def order_images(image_a: sitk.Image, image_b: sitk.Image, options: ModalityOptions | None = None, *,
                 metadata: tuple[Mapping[str, str] | None, Mapping[str, str] | None] = (None, None),
                 **changes) -> tuple[int, int, dict]:
    """Classify two volumes and say which is fixed: (fixed_index, moving_index, details).

    `metadata` holds each image's DICOM metadata when known.
    """
    from dlreg.modality.pipeline import classify_image  # torch: order_results alone needs none

    opts = resolve(ModalityOptions, options, changes)
    results = [classify_image(img, opts, dicom_metadata=meta, name=f"image {'ab'[i]}")
               for i, (img, meta) in enumerate(zip((image_a, image_b), metadata))]
    return order_results(*results, prefer_fixed=opts.prefer_fixed)
