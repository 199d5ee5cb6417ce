"""The small real images bundled with the project (Resources/SampleData)."""

from __future__ import annotations

from pathlib import Path

from dlreg.errors import InputImageError

SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "Resources" / "SampleData"


def sample_path(name: str, folder: str | Path | None = None) -> Path:
    """Path of one bundled sample file; a clear error when the folder lacks it."""
    path = Path(folder or SAMPLE_DATA_DIR) / name
    if not path.is_file():
        raise InputImageError(
            f"sample data file {name} not found in {path.parent}; regenerate it with "
            "Resources/SampleData/make_sample_data.py")
    return path
