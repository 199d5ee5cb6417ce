"""The small real images bundled with dlreg (this folder; licences in LICENSES.md).

They ship inside the package, so `pip install dlreg` gives a working `python -m dlreg demo`
and the Slicer extension installs them with the core for its self-tests and Sample Data.
"""

from __future__ import annotations

from pathlib import Path

from dlreg.errors import InputImageError

SAMPLE_DATA_DIR = Path(__file__).resolve().parent


def sample_path(name: str, folder: str | Path | None = None) -> Path:
    """Path of one bundled sample file; a clear error when the folder lacks it."""
    path = Path(folder or SAMPLE_DATA_DIR) / name
    if not path.is_file():
        raise InputImageError(f"sample data file {name} not found in {path.parent}: reinstall dlreg "
                              "(the repository regenerates it with Utilities/make_sample_data.py)")
    return path
