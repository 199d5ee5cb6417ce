"""`classify_image`: one volume in, its modality with calibrated probabilities out."""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np
import SimpleITK as sitk

from dlreg.modality.calibration import softmax
from dlreg.modality.classes import CLASSES, UNKNOWN
from dlreg.modality.classifier import load_classifier
from dlreg.modality.dicom import disagrees, label_from_metadata
from dlreg.modality.gates import sanity_reason
from dlreg.modality.options import ModalityOptions
from dlreg.modality.preprocess import canonical_input
from dlreg.modality.result import ModalityResult
from dlreg.options import resolve


def classify_image(image: sitk.Image, options: ModalityOptions | None = None, *,
                   dicom_metadata: Mapping[str, str] | None = None, name: str = "image",
                   **changes) -> ModalityResult:
    """Classify a volume from its voxels; DICOM metadata is only reported and compared.

    Refuses (InputImageError) blank, non-finite, 2D or too-thin inputs; answers
    "unknown" (with `reason`) for inputs that fail a sanity gate or whose calibrated
    confidence is below the model's threshold.
    """
    opts = resolve(ModalityOptions, options, changes)
    start = time.perf_counter()
    model = load_classifier(opts.weights, opts.device)
    prepared = canonical_input(image, name, model.grid_size, model.grid_spacing)
    reason = sanity_reason(prepared.working)
    if reason:
        probs = np.full(len(CLASSES), 1.0 / len(CLASSES))
    else:
        probs = softmax(model.logits(prepared.array), model.temperature)
    best = int(np.argmax(probs))
    confidence = 0.0 if reason else float(probs[best])
    label = CLASSES[best]
    if reason or confidence < model.threshold:
        label = UNKNOWN
        reason = reason or (f"calibrated confidence {confidence:.2f} is below the threshold "
                            f"{model.threshold:.2f}: none of the known classes fits")
    metadata = dict(dicom_metadata or {})
    dicom_label = label_from_metadata(metadata)
    return ModalityResult(label, {c: float(p) for c, p in zip(CLASSES, probs)}, confidence,
                          dicom_label, disagrees(label, dicom_label),
                          time.perf_counter() - start, reason, metadata)
