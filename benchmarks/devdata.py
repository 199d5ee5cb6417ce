"""The development images the benchmarks and the training scripts use, and where they are.

None of these ship with dlreg: the library takes data locations as arguments only. Sources:
- the shared data folder (default: `shared/data` beside the repository; `--data` elsewhere):
  co-registered multi-contrast subjects (see that folder's README for provenance and terms);
- Debian packages: `mricron-data` (Colin27, a T1 with skull) and `invesalius-examples` (a real
  head CT, GPL-2: read at run time, never shipped);
- the MNI T1 bundled with dlreg.
Missing sources are skipped and reported through `log`.
"""

from __future__ import annotations

import plistlib
import tarfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CT, MR_FLAIR, MR_T1, MR_T1C, MR_T2
from dlreg.sampledata import sample_path
from dlreg.training.modality.data import Volume, with_synthetic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
COLIN27_BRAIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
INVESALIUS_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")

# (subject folder, file, class) in the shared data folder.
SHARED = (
    ("brats_gli_00001_000", "BraTS-GLI-00001-000-t1n.nii.gz", MR_T1),
    ("brats_gli_00001_000", "BraTS-GLI-00001-000-t1c.nii.gz", MR_T1C),
    ("brats_gli_00001_000", "BraTS-GLI-00001-000-t2w.nii.gz", MR_T2),
    ("brats_gli_00001_000", "BraTS-GLI-00001-000-t2f.nii.gz", MR_FLAIR),
    ("aurora", "t1.nii.gz", MR_T1), ("aurora", "t1c.nii.gz", MR_T1C),
    ("aurora", "t2.nii.gz", MR_T2), ("aurora", "flair.nii.gz", MR_FLAIR),
    ("tcga_du_7294", "t1.nii.gz", MR_T1), ("tcga_du_7294", "t1c.nii.gz", MR_T1C),
    ("tcga_du_7294", "t2.nii.gz", MR_T2), ("tcga_du_7294", "fla.nii.gz", MR_FLAIR),
    ("stroke", "stroke_T1.nii.gz", MR_T1), ("stroke", "stroke_T2.nii.gz", MR_T2),
    ("stroke", "stroke_FLAIR.nii.gz", MR_FLAIR),
)

# BraTS 2018 subjects (folder brats2018/<subject>/<subject>_<contrast>.nii.gz), 1 mm SRI24 grid.
BRATS2018 = ("Brats18_2013_20_1", "Brats18_2013_23_1", "Brats18_2013_3_1", "Brats18_CBICA_ABM_1",
             "Brats18_CBICA_ALU_1", "Brats18_CBICA_AQN_1", "Brats18_TCIA01_201_1", "Brats18_TCIA01_378_1",
             "Brats18_TCIA01_499_1", "Brats18_TCIA02_135_1", "Brats18_TCIA02_606_1", "Brats18_TCIA10_628_1",
             "Brats18_TCIA10_637_1", "Brats18_TCIA10_639_1", "Brats18_TCIA13_623_1")
BRATS2018_CONTRASTS = {"t1": MR_T1, "t1ce": MR_T1C, "t2": MR_T2, "flair": MR_FLAIR}

# The test split: subjects that no shipped model trains on, from four sites, used by every
# registration benchmark (2D and 3D). tcga_du_7294 was already the keypoint model's validation
# subject. No BraTS 2018 T1 correlates with tcga_du_7294's above 0.48 on the shared SRI24 grid
# (the same patient would be near 1), so it is not a training subject under another name.
TEST_SUBJECTS = ("tcga_du_7294", "Brats18_2013_20_1", "Brats18_CBICA_AQN_1", "Brats18_TCIA01_378_1",
                 "Brats18_TCIA02_606_1", "Brats18_TCIA10_637_1")
# Nominal truth only to 2-3 mm between its contrasts: never in a success rate against that truth.
INEXACT_SUBJECTS = ("aurora",)


def brats2018_files(data_root: str | Path = DEFAULT_DATA) -> list[tuple[str, str, str]]:
    """(subject, path relative to the data root, class) of every BraTS 2018 volume present."""
    out = []
    for subject in BRATS2018:
        for contrast, label in BRATS2018_CONTRASTS.items():
            rel = f"brats2018/{subject}/{subject}_{contrast}.nii.gz"
            if (Path(data_root) / rel).is_file():
                out.append((subject, rel, label))
    return out


# What the card of a modality model trained on these sources says about its data.
MODALITY_CARD_NOTES = {
    "data_licences": {
        "brats_gli_00001_000, aurora": "BraTS / AURORA example cases from BrainLesion/tutorials "
                                       "(research use, cite BraTS)",
        "tcga_du_7294": "TCIA TCGA, CC BY 3.0", "stroke": "neurolabusc/VolumeRenderingData, MIT",
        "mni": "MNI ICBM152 2009a (bundled sample, MNI licence)",
        "colin27": "Debian mricron-data (Colin27 template)",
        "cranium_ct": "Debian invesalius-examples Cranium.inv3, GPL-2: read at run time, not shipped",
    },
    "limits": [
        "Trained on 22 subjects (15 BraTS 2018, 3 BraTS-style, 1 stroke, 2 T1 templates, 1 real head CT) "
        "plus painted pseudo-CT/T2/FLAIR volumes; all but Colin27 and the CT are skull-stripped, so "
        "native series are represented by synthetic native-like variants (layered synthetic skull).",
        "CT against MR is decided by the Hounsfield signature, not by the network; a CT without it "
        "(8-bit export, masked to zero) is never called CT and may be read as an MR contrast.",
        "Out-of-distribution rejection is calibrated on synthetic OOD volumes (noise, blobs, textures, "
        "a limb, painted PET-, DWI- and PD-like brains, CTs without Hounsfield units), never on real "
        "PET, DWI, knee or abdomen scans; painted PET/DWI/PD brains are often given a brain class.",
    ],
}


def read_invesalius(path: str | Path = INVESALIUS_CT) -> sitk.Image:
    """The CT volume of an InVesalius project (.inv3: gzipped tar, main.plist + int16 matrix)."""
    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"InVesalius project not found: {path} (apt-get install invesalius-examples)")
    with tarfile.open(path, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        info = plistlib.loads(tar.extractfile(members["main.plist"]).read())
        matrix = info["matrix"]
        raw = tar.extractfile(members[matrix["filename"]]).read()
    array = np.frombuffer(raw, dtype=np.dtype(matrix["dtype"]).newbyteorder("<"))
    array = array.reshape(matrix["shape"]).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in info["spacing"]])
    return image


def load_volumes(data_root: str | Path = DEFAULT_DATA, *, synthetic_ct: bool = True, synthetic_mr: bool = True,
                 brats2018: bool = True, exclude: Sequence[str] = (),
                 log: Callable[[str], object] = print) -> list[Volume]:
    """Every available labelled volume (the BraTS 2018 subjects too, with `brats2018`), less the
    subjects in `exclude` (e.g. TEST_SUBJECTS), plus a pseudo-CT (`synthetic_ct`) and pseudo-T2 and
    pseudo-FLAIR brains (`synthetic_mr`) painted from each real T1."""
    root = Path(data_root)
    volumes: list[Volume] = []
    files = [(folder, f"{folder}/{file}", label) for folder, file, label in SHARED]
    files += brats2018_files(root) if brats2018 else []
    for subject, rel, label in files:
        path = root / rel
        if path.is_file():
            volumes.append(Volume(subject, label, rel, read_image(path)))
        else:
            log(f"missing {path}: skipped")
    volumes.append(Volume("mni", MR_T1, "mni_t1_2mm", read_image(sample_path("mni_t1_2mm.nrrd"))))
    if COLIN27.is_file():
        brain = read_image(COLIN27_BRAIN) > 0 if COLIN27_BRAIN.is_file() else None
        volumes.append(Volume("colin27", MR_T1, "colin27", read_image(COLIN27), brain_mask=brain))
    else:
        log(f"missing {COLIN27} (apt-get install mricron-data): skipped")
    if INVESALIUS_CT.is_file():
        volumes.append(Volume("cranium_ct", CT, "invesalius_cranium", read_invesalius()))
    else:
        log(f"missing {INVESALIUS_CT} (apt-get install invesalius-examples): skipped")
    volumes = [v for v in volumes if v.subject not in set(exclude)]
    return with_synthetic(volumes, ct=synthetic_ct, mr=synthetic_mr)
