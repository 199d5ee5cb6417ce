"""The answer for one volume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


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

    @classmethod
    def from_json(cls, payload: dict) -> "ModalityResult":
        """Inverse of `to_json` (a result read back from a background run)."""
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})
