"""`classify_image`: one volume in, its modality with calibrated probabilities out.

Order of decisions: sanity gates (not an image of anatomy: `unknown`), the Hounsfield
signature (`physics`: CT, or never CT), the DICOM Modality tag where given (it settles CT
against MR; a conflict with the voxels is `unknown` with both reasons), the pixel network for
the MR contrast, and the header's contrast evidence multiplied in (`dicom.header_evidence`).
The combined probability of the best class must reach the model's calibrated threshold.
"""

from __future__ import annotations

import time
from typing import Mapping

import SimpleITK as sitk

from dlreg.modality.calibration import softmax
from dlreg.modality.classes import CLASSES, CT, UNKNOWN, family
from dlreg.modality.classifier import LoadedClassifier, load_classifier
from dlreg.modality.dicom import MR_FAMILY, HeaderEvidence, disagrees, header_evidence
from dlreg.modality.gates import sanity_reason
from dlreg.modality.options import ModalityOptions
from dlreg.modality.physics import OFFSET_UNSURE
from dlreg.modality.preprocess import CanonicalInput, canonical_input
from dlreg.modality.result import ModalityResult
from dlreg.options import resolve

MR_CLASSES = tuple(c for c in CLASSES if c != CT)


def classify_image(image: sitk.Image, options: ModalityOptions | None = None, *,
                   dicom_metadata: Mapping[str, str] | None = None, name: str = "image",
                   **changes) -> ModalityResult:
    """Classify a volume from its voxels and, when given, its DICOM metadata.

    Refuses (InputImageError) blank, non-finite, 2D or too-thin inputs; answers "unknown"
    with a `reason` for what is not a head CT or one of the MR contrasts, for a conflict
    between header and voxels about CT, and below the calibrated confidence threshold.
    """
    opts = resolve(ModalityOptions, options, changes)
    start = time.perf_counter()
    model = load_classifier(opts.weights, opts.device)
    prepared = canonical_input(image, name, model.grid_size, model.grid_spacing)
    metadata = dict(dicom_metadata or {})
    header = header_evidence(metadata)
    label, probs, reason, evidence = _decide(prepared, model, header)
    confidence = float(probs[label]) if label != UNKNOWN else float(max(probs.values()))
    if label == UNKNOWN and evidence.get("gate"):
        confidence = 0.0
    pixel_label = evidence.get("pixels", {}).get("label")
    disagreement = header.label is not None and pixel_label is not None and disagrees(pixel_label, header.label)
    if disagreement and header.label is not None:
        evidence["disagreement"] = (f"the voxels say {pixel_label}, the DICOM header says {header.label} "
                                    f"({header.basis})")
    return ModalityResult(label, probs, confidence, header.label, disagreement,
                          time.perf_counter() - start, reason, metadata, evidence)


def _decide(prepared: CanonicalInput, model: LoadedClassifier,
            header: HeaderEvidence) -> tuple[str, dict[str, float], str, dict]:
    """(label, probabilities over CLASSES, reason, evidence)."""
    physics = prepared.physics
    evidence: dict = {"physics": physics.to_json(), "dicom": header.to_json()}
    uniform = {c: 1.0 / len(CLASSES) for c in CLASSES}
    gate = sanity_reason(prepared)
    if gate:
        evidence["gate"] = gate
        return UNKNOWN, uniform, gate, evidence
    header_family = family(header.label) if header.label not in (None, UNKNOWN) else None
    if physics.is_ct:
        evidence["pixels"] = {"label": CT, "basis": physics.reason}
        if header_family == MR_FAMILY or header.label == UNKNOWN:
            return UNKNOWN, _one_hot(CT), (f"the DICOM header says {header.label} ({header.basis}) but the "
                                           f"voxels are a CT ({physics.reason})"), evidence
        return CT, _one_hot(CT), "", evidence
    if physics.signature == OFFSET_UNSURE:
        return UNKNOWN, uniform, physics.reason, evidence
    network = softmax(model.logits(prepared.array), model.temperature)
    pixel = {c: 0.0 for c in CLASSES}
    pixel.update({c: float(p) for c, p in zip(model.classes, network)})
    pixel_label = max(pixel, key=pixel.get)
    evidence["pixels"] = {"label": pixel_label, "probabilities": pixel}
    if header_family == CT:
        return UNKNOWN, pixel, (f"the DICOM header says CT ({header.basis}) but the voxels have no "
                                f"Hounsfield signature: {physics.reason}"), evidence
    if header.label == UNKNOWN:
        return UNKNOWN, pixel, f"the DICOM header names a series of no known class: {header.basis}", evidence
    combined = _with_header(pixel, header)
    label = max(combined, key=combined.get)
    if combined[label] < model.threshold:
        source = "voxels and DICOM header" if header.label in MR_CLASSES else "voxels"
        return UNKNOWN, combined, (f"calibrated confidence {combined[label]:.2f} ({source}) is below the threshold "
                                   f"{model.threshold:.2f}: none of the known classes fits well"), evidence
    return label, combined, "", evidence


def _with_header(pixel: dict[str, float], header: HeaderEvidence) -> dict[str, float]:
    """Pixel probabilities times the header's likelihood, renormalised (unchanged without a contrast)."""
    if header.label not in MR_CLASSES:
        return pixel
    others = (1.0 - header.reliability) / (len(MR_CLASSES) - 1)
    weighted = {c: p * (header.reliability if c == header.label else others) for c, p in pixel.items()}
    total = sum(weighted.values())
    return {c: w / total for c, w in weighted.items()} if total > 0 else pixel


def _one_hot(label: str) -> dict[str, float]:
    return {c: float(c == label) for c in CLASSES}
