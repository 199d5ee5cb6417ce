"""The small real images bundled with dlreg (this folder; licences in LICENSES.md).

They ship inside the package, so `pip install dlreg` gives a working `python -m dlreg demo`
and the Slicer extension installs them with the core for its self-tests and Sample Data.
"""

from __future__ import annotations

import json
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


# Sets offered in Slicer's Sample Data module (category "SlicerDLReg"): name -> (file, node name) pairs.
SAMPLE_SETS = {
    "DLRegStroke": (("stroke_t1_2mm.nrrd", "stroke T1"), ("stroke_t2_2mm.nrrd", "stroke T2"),
                    ("stroke_flair_2mm.nrrd", "stroke FLAIR")),
    "DLRegMNI": (("mni_t1_2mm.nrrd", "MNI T1"),),
}


def sample_data_sources() -> list[dict]:
    """Each sample set as the Sample Data module registers it: local file URIs and SHA-256 checksums."""
    manifest = {f["name"]: f for f in json.loads((SAMPLE_DATA_DIR / "manifest.json").read_text())["files"]}
    return [{"sampleName": name, "uris": [sample_path(f).as_uri() for f, _ in files],
             "fileNames": [f for f, _ in files], "nodeNames": [n for _, n in files],
             "checksums": [f"SHA256:{manifest[f]['sha256']}" for f, _ in files]}
            for name, files in SAMPLE_SETS.items()]
