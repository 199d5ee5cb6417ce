"""Training and evaluation volumes: where they are, which class, which subject.

Nothing here ships data: the shared development images (`../shared/data`), the
Debian packages `mricron-data` (Colin27) and `invesalius-examples` (a real head CT,
GPL-2, read at run time from its installed path) and the bundled MNI sample are
found where they are installed; missing sources are skipped and reported.
"""

from __future__ import annotations

import plistlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CT, MR_FLAIR, MR_T1, MR_T1C, MR_T2
from dlreg.modality.synthetic import pseudo_ct_from_t1, pseudo_mr_from_t1
from dlreg.sampledata import sample_path

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
COLIN27_BRAIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
INVESALIUS_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")

# (subject folder, file, class) in `../shared/data`.
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


@dataclass
class Volume:
    """One labelled volume: `subject` groups volumes for leave-one-subject-out."""

    subject: str
    label: str
    name: str
    image: sitk.Image
    synthetic: bool = False


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


def load_volumes(data_root: str | Path = "../shared/data", *, synthetic_ct: bool = True,
                 synthetic_mr: bool = True, log=print) -> list[Volume]:
    """Every available labelled volume (missing sources are logged and skipped), plus a
    pseudo-CT (`synthetic_ct`) and pseudo-T2 and pseudo-FLAIR brains (`synthetic_mr`) of each T1."""
    root = Path(data_root)
    volumes: list[Volume] = []
    for folder, file, label in SHARED:
        path = root / folder / file
        if path.is_file():
            volumes.append(Volume(folder, label, f"{folder}/{file}", read_image(path)))
        else:
            log(f"missing {path}: skipped")
    volumes.append(Volume("mni", MR_T1, "mni_t1_2mm", read_image(sample_path("mni_t1_2mm.nrrd"))))
    if COLIN27.is_file():
        volumes.append(Volume("colin27", MR_T1, "colin27", read_image(COLIN27)))
    else:
        log(f"missing {COLIN27} (apt-get install mricron-data): skipped")
    if INVESALIUS_CT.is_file():
        volumes.append(Volume("cranium_ct", CT, "invesalius_cranium", read_invesalius()))
    else:
        log(f"missing {INVESALIUS_CT} (apt-get install invesalius-examples): skipped")
    t1s = [v for v in volumes if v.label == MR_T1]
    if synthetic_ct:
        volumes += [Volume(v.subject, CT, f"pseudo-CT of {v.name}",
                           pseudo_ct_from_t1(v.image, brain_mask=_brain_mask(v)), synthetic=True) for v in t1s]
    if synthetic_mr:
        volumes += [Volume(v.subject, label, f"pseudo-{label[3:]} of {v.name}",
                           pseudo_mr_from_t1(v.image, label, brain_mask=_brain_mask(v)), synthetic=True)
                    for v in t1s for label in (MR_T2, MR_FLAIR)]
    return volumes


def _brain_mask(volume: Volume) -> sitk.Image | None:
    """Colin27's brain mask (it is the one T1 with skull); None for skull-stripped T1s."""
    if volume.subject == "colin27" and COLIN27_BRAIN.is_file():
        return read_image(COLIN27_BRAIN) > 0
    return None
