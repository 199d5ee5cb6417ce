"""The answer for one volume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from dlreg.modality.classes import UNKNOWN


@dataclass
class ModalityResult:
    """Prediction for one volume.

    `label` is a class of CLASSES or "unknown"; `probabilities` (over CLASSES, summing to 1)
    combine the voxels and, when given, the DICOM header; `confidence` is always set: the
    probability of `label`, or for "unknown" the largest class probability (0 when a sanity
    gate stopped the volume before the network). Use `probability(label)` rather than indexing
    `probabilities`, which has no "unknown" entry. Every "unknown" carries a `reason`;
    `disagreement` is True when the DICOM header names another class than the voxels, and
    `evidence` holds what each source said (sanity gate, Hounsfield signature, pixel
    network, header).
    """

    label: str
    probabilities: dict[str, float]
    confidence: float
    dicom_label: str | None = None
    disagreement: bool = False
    elapsed_s: float = 0.0
    reason: str = ""
    dicom_metadata: dict[str, str] = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    @property
    def is_unknown(self) -> bool:
        """True when no known class was given."""
        return self.label == UNKNOWN

    def probability(self, label: str) -> float:
        """Probability of `label` (0.0 for "unknown" or a name that is not a class)."""
        return float(self.probabilities.get(label, 0.0))

    def summary(self) -> str:
        """One line for people: label, confidence, reason, DICOM disagreement."""
        text = f"{self.label} (confidence {self.confidence:.2f})"
        if self.reason:
            text += f": {self.reason}"
        if self.dicom_label:
            text += f"; DICOM header: {self.dicom_label}" + (" (DISAGREES)" if self.disagreement else "")
        return text

    def to_json(self) -> dict:
        """Plain-JSON form (what the CLI prints)."""
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict) -> "ModalityResult":
        """Inverse of `to_json` (a result read back from a background run)."""
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})
