"""The answer for one volume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ModalityResult:
    """Prediction for one volume; `label` is a class of CLASSES or "unknown"."""

    label: str
    probabilities: dict[str, float]
    confidence: float
    dicom_label: str | None = None
    disagreement: bool = False
    elapsed_s: float = 0.0
    reason: str = ""
    dicom_metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain-JSON form (what the CLI prints)."""
        return asdict(self)
