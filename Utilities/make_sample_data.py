#!/usr/bin/env python3
"""Regenerate the sample images shipped in dlreg/sampledata (see README.md there).

Run from the repository root:

    .venv/bin/python Utilities/make_sample_data.py [--shared ../shared/data] [--nilearn-wheel PATH]

The MNI ICBM152 2009a images come from the nilearn wheel (downloaded with pip unless
--nilearn-wheel is given); the stroke images come from <shared>/stroke. All inputs are
checked against their SHA-256, so the outputs are the same bytes on every run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "dlreg" / "sampledata"
NILEARN = "nilearn==0.14.1"
MNI_MEMBER = "nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
STROKE_URL = "https://github.com/neurolabusc/VolumeRenderingData/tree/main/stroke"
MNI_LICENSE = "LicenseRef-MNI-ICBM152"
# Gaussian whose FWHM widens a 1 mm voxel to 2 mm: sqrt(2^2 - 1^2) / (2 sqrt(2 ln 2)).
SIGMA_MM = math.sqrt(2.0**2 - 1.0**2) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
PNG_SLICE = 72  # axial slice (third index) of the 1 mm stroke grid; it cuts through the lesion

# (output, nilearn tissue key, modality, sha256 of the wheel member)
MNI = [
    ("mni_t1_2mm.nrrd", "t1", "MR-T1",
     "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"),
    ("mni_gm_2mm.nrrd", "gm", "probability-GM",
     "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed"),
    ("mni_wm_2mm.nrrd", "wm", "probability-WM",
     "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db"),
]
# (output stem, source file in <shared>/stroke, modality, sha256 of the source)
STROKE = [
    ("stroke_t1", "stroke_T1.nii.gz", "MR-T1",
     "8e28e653578a2cd21d15064da5b089db16a205887c76baed8a65d01e8f2ab79e"),
    ("stroke_t2", "stroke_T2.nii.gz", "MR-T2",
     "7cc2d618998228998fb1a9abf3ccfa8ed844aa99d84c9c6bf26b763a44406c89"),
    ("stroke_flair", "stroke_FLAIR.nii.gz", "MR-FLAIR",
     "a50cf2bbc22875644fa7f49b3a7d58f0287427a6e37faed9d420ce3495346666"),
]
PNG_PAIR = ("stroke_t1", "stroke_t2")


def sha256(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def checked(path: Path, expected: str) -> Path:
    """Return path after checking its SHA-256; exit with a message when it differs."""
    if sha256(path.read_bytes()) != expected:
        sys.exit(f"{path}: unexpected SHA-256 (source changed?); expected {expected}")
    return path


def read_codes(path: Path) -> sitk.Image:
    """Read an 8-bit NIfTI as float32 holding its stored codes (0..255), undoing any scl_slope."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    image = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
    slope = float(reader.GetMetaData("scl_slope")) if reader.HasMetaDataKey("scl_slope") else 0.0
    return image / slope if slope not in (0.0, 1.0) else image


def to_uint8(image: sitk.Image) -> sitk.Image:
    """Round and clip to uint8, keeping the geometry."""
    array = np.clip(np.rint(sitk.GetArrayViewFromImage(image)), 0, 255).astype(np.uint8)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def downsample(image: sitk.Image) -> sitk.Image:
    """1 mm -> 2 mm: Gaussian anti-aliasing, then every second voxel (origin and direction kept).

    The direction columns are rescaled to unit norm in float64 (a change below 3e-16) so that
    the NRRD space directions read back exactly, with spacing exactly 2.0.
    """
    out = to_uint8(sitk.SmoothingRecursiveGaussian(image, SIGMA_MM)[::2, ::2, ::2])
    direction = np.array(out.GetDirection()).reshape(3, 3)
    out.SetDirection((direction / np.linalg.norm(direction, axis=0)).ravel().tolist())
    return out


def grid(image: sitk.Image) -> tuple:
    """Size, spacing, origin and direction of an image."""
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def nilearn_wheel(given: Path | None, tmp: Path) -> Path:
    """The nilearn wheel: the given path, or one fetched with pip into tmp."""
    if given is not None:
        return given
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, NILEARN, "-d", str(tmp)], check=True)
    return next(tmp.glob("nilearn-*.whl"))


def entry(
    path: Path, modality: str, subject: str, source: str, source_sha: str, license_id: str, **extra: object
) -> dict:
    """Manifest record of a written file, with the geometry read back from it."""
    image = sitk.ReadImage(str(path))
    return {
        "name": path.name,
        "sha256": sha256(path.read_bytes()),
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "dtype": str(sitk.GetArrayViewFromImage(image).dtype),
        "modality": modality,
        "subject": subject,
        "source": source,
        "source_sha256": source_sha,
        "license": license_id,
        **extra,
    }


def make_mni(wheel: Path, tmp: Path, out: Path) -> list[dict]:
    """Write the 2 mm MNI T1, GM and WM volumes."""
    records = []
    with zipfile.ZipFile(wheel) as archive:
        for name, key, modality, digest in MNI:
            member = MNI_MEMBER.format(key)
            source = tmp / Path(member).name
            source.write_bytes(archive.read(member))
            sitk.WriteImage(downsample(read_codes(checked(source, digest))), str(out / name), True)
            source_name = f"{NILEARN} wheel: {member}"
            records.append(entry(out / name, modality, "mni152", source_name, digest, MNI_LICENSE))
    return records


def stroke_source(src: str) -> str:
    """Manifest source of a stroke file."""
    return f"{STROKE_URL}, as <shared>/stroke/{src}"


def make_stroke(shared: Path, out: Path) -> list[dict]:
    """Write the 2 mm stroke volumes and the 1 mm axial PNG pair."""
    images = {stem: read_codes(checked(shared / "stroke" / src, digest)) for stem, src, _, digest in STROKE}
    if len({grid(image) for image in images.values()}) != 1:
        sys.exit("stroke sources are not on one grid")
    records = []
    for stem, src, modality, digest in STROKE:
        path = out / f"{stem}_2mm.nrrd"
        sitk.WriteImage(downsample(images[stem]), str(path), True)
        records.append(entry(path, modality, "stroke", stroke_source(src), digest, "MIT"))
    for stem, src, modality, digest in (s for s in STROKE if s[0] in PNG_PAIR):
        # numpy axes are (k, j, i); flip both in-plane axes: anterior up, patient right on image left.
        axial = sitk.GetArrayFromImage(to_uint8(images[stem]))[PNG_SLICE, ::-1, ::-1]
        path = out / f"{stem}_axial.png"
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(axial)), str(path))
        records.append(
            entry(path, modality, "stroke", stroke_source(src), digest, "MIT",
                  slice_index=PNG_SLICE, orientation="anterior up, patient right on image left")
        )
    return records


def main() -> None:
    """Parse arguments, write all sample files and manifest.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="the development images (default: the shared folder beside the repository)")
    parser.add_argument("--nilearn-wheel", type=Path, help="nilearn wheel to read (default: pip download)")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="output folder (default: dlreg/sampledata)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = nilearn_wheel(args.nilearn_wheel, Path(tmp))
        records = make_mni(wheel, Path(tmp), args.out) + make_stroke(args.shared, args.out)
    manifest = {"smoothing_sigma_mm": SIGMA_MM, "files": records}
    text = json.dumps(manifest, indent=2)
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    (args.out / "manifest.json").write_text(text + "\n")
    for record in records:
        print(f"{record['name']}: {record['size']} {record['dtype']}")


if __name__ == "__main__":
    main()
