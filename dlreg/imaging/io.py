"""Read and write images: NRRD, NIfTI, MHA, a DICOM series folder, PNG/JPEG.

`read_image` always returns a 3D scalar float32 SimpleITK image: a 2D file
(PNG, JPEG, a single DICOM frame) becomes a one-slice volume, as Slicer loads
it, and colour pictures become luminance. Anything that cannot be a scalar
image (vector volumes, 4D series), or that holds no usable signal (all one
value, NaN, infinity), is refused with an InputImageError naming the problem.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.nifti import incompleteness, is_nifti
from dlreg.imaging.outputs import atomic_write, captured_stderr

_log = logging.getLogger("dlreg")

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# ITU-R BT.601 luma weights for RGB pictures.
_LUMA = (0.299, 0.587, 0.114)


def read_image(path: str | os.PathLike, *, series_id: str | None = None,
               validate: bool = True) -> sitk.Image:
    """Read an image file or DICOM folder as a 3D scalar float32 image.

    `series_id` picks one series when a DICOM folder holds several.
    """
    path = Path(path)
    if not path.exists():
        raise InputImageError(f"image file not found: {path}")
    if path.is_file() and is_nifti(path):
        problem = incompleteness(path)
        if problem:
            raise InputImageError(f"cannot read {path}: {problem}")
    image = _read_dicom_folder(path, series_id) if path.is_dir() else _read_file(path)
    image = _as_scalar_3d(image, path)
    if validate:
        validate_scalar_image(image, str(path))
    return image


def write_image(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write an image, whole or not at all (`dlreg.imaging.outputs`); the format follows the
    suffix. Pictures are rescaled to 8 bit."""
    if Path(path).suffix.lower() in PICTURE_SUFFIXES:
        image = _to_picture(image)
    return atomic_write(path, lambda temporary: _write(image, temporary), verify=_check_written)


def _write(image: sitk.Image, path: Path) -> None:
    with captured_stderr() as printed:  # the NIfTI writer prints a short write instead of failing
        try:
            sitk.WriteImage(image, str(path), useCompression=True)
        except RuntimeError as exc:
            raise InputImageError(itk_message(exc)) from None
    if printed:
        _log.info("while writing %s: %s", path, " | ".join(printed))


def _check_written(path: Path) -> None:
    """The file reads back as an image (NIfTI: with all its bytes; ITK's writer may stop short)."""
    problem = incompleteness(path) if is_nifti(path) else None
    if problem:
        raise InputImageError(f"the written file is incomplete: {problem} (is the disk full?)")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputImageError(f"the written file does not read back ({itk_message(exc)})") from None


def validate_scalar_image(image: sitk.Image, name: str = "image") -> None:
    """Refuse images that cannot be registered: wrong kind, NaN/inf, no signal."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputImageError(
            f"{name} is a vector image with {image.GetNumberOfComponentsPerPixel()} components "
            "per voxel, but a scalar (grey-level) image is needed")
    if image.GetDimension() not in (2, 3):
        raise InputImageError(f"{name} has {image.GetDimension()} dimensions; a 2D or 3D image is needed")
    if 0 in image.GetSize():
        raise InputImageError(f"{name} is empty (size {image.GetSize()})")
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(array.min()), float(array.max())  # NaN or inf anywhere shows in these
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputImageError(f"{name} has {int((~np.isfinite(array)).sum())} NaN or infinite voxels")
    if high == low:
        raise InputImageError(
            f"{name} is blank: every voxel has the value {float(array.flat[0]):g}")


def _read_file(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputImageError(f"cannot read {path}: {itk_message(exc)}") from None


def _read_dicom_folder(folder: Path, series_id: str | None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not series:
        raise InputImageError(f"no DICOM series found in folder {folder}")
    if series_id is None:
        if len(series) > 1:
            raise InputImageError(
                f"folder {folder} holds {len(series)} DICOM series; choose one with series_id: "
                + ", ".join(series))
        series_id = series[0]
    elif series_id not in series:
        raise InputImageError(f"DICOM series {series_id} not found in {folder}")
    files = reader.GetGDCMSeriesFileNames(str(folder), series_id)
    problem = irregular_series(files)
    if problem:
        raise InputImageError(f"cannot read the DICOM series in {folder} as a volume: {problem}; load it in "
                              "Slicer's DICOM module (which resamples it with an acquisition transform) or "
                              "convert it to NIfTI with dcm2niix, then use that volume")
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputImageError(f"cannot read DICOM series in {folder}: {itk_message(exc)}") from None


def irregular_series(files: Sequence[str], tolerance_mm: float = 0.01) -> str | None:
    """Why slices do not stack into a regular grid (uneven spacing, gantry tilt), or None."""
    if len(files) < 3:
        return None
    positions, normal = [], None
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        if not (reader.HasMetaDataKey("0020|0032") and reader.HasMetaDataKey("0020|0037")):
            return None  # no patient geometry: ITK's own reading decides
        positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
        if normal is None:
            row_col = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
            normal = np.cross(row_col[:3], row_col[3:])
    positions = np.asarray(positions)
    depth = (positions - positions[0]) @ normal
    steps = np.diff(np.sort(depth))
    if steps.max() - steps.min() > max(tolerance_mm, 0.01 * np.median(np.abs(steps))):
        return f"its slices are unevenly spaced ({steps.min():.2f} to {steps.max():.2f} mm apart)"
    sideways = positions - positions[0] - np.outer(depth, normal)
    if np.linalg.norm(sideways, axis=1).max() > tolerance_mm * len(files):
        angle = np.degrees(np.arctan2(np.linalg.norm(sideways[-1]), abs(depth[-1]) or 1.0))
        return f"its slices are tilted against their own plane (gantry tilt of about {angle:.1f} degrees)"
    return None


def _as_scalar_3d(image: sitk.Image, path: Path) -> sitk.Image:
    """Luminance for colour pictures, drop singleton 4th axes, lift 2D to one slice."""
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        if image.GetDimension() == 2 and components in (3, 4):
            image = _luminance(image)
        else:
            raise InputImageError(
                f"{path} is a vector image with {components} components per voxel, "
                "but a scalar (grey-level) image is needed")
    if image.GetDimension() == 4:
        size = image.GetSize()
        if size[3] != 1:
            raise InputImageError(
                f"{path} is a 4D image ({size[3]} volumes); a single 3D volume is needed")
        image = sitk.Extract(image, [size[0], size[1], size[2], 0], [0, 0, 0, 0])
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputImageError(f"{path} has {image.GetDimension()} dimensions; 2D or 3D is needed")
    if image.GetPixelID() == sitk.sitkFloat64:
        largest = float(np.nanmax(np.abs(sitk.GetArrayViewFromImage(image))))
        if largest > float(np.finfo(np.float32).max):
            raise InputImageError(f"{path} holds values beyond the range of 32-bit floats (up to {largest:.3g}): "
                                  "rescale it before registering")
    return sitk.Cast(image, sitk.sitkFloat32)


def _luminance(image: sitk.Image) -> sitk.Image:
    rgb = sitk.GetArrayFromImage(image).astype(np.float32)[..., :3]
    grey = sitk.GetImageFromArray(rgb @ np.asarray(_LUMA, np.float32))
    grey.CopyInformation(image)
    return grey


def _to_picture(image: sitk.Image) -> sitk.Image:
    """8-bit 2D picture of a 2D image or one-slice volume (min..max -> 0..255)."""
    if image.GetDimension() == 3:
        if image.GetSize()[2] != 1:
            raise InputImageError("only a single-slice image can be written as a picture")
        image = image[:, :, 0]
    return sitk.Cast(sitk.RescaleIntensity(sitk.Cast(image, sitk.sitkFloat32), 0, 255), sitk.sitkUInt8)


# ITK's wording -> what a user can act on
_ITK_MEANINGS = {
    "Bad direction, determinant is 0": "its direction matrix is degenerate (the axes in its header are not "
                                       "independent, determinant 0)",
    "Zero-valued spacing is not supported": "its header gives a voxel size of 0",
}


def itk_message(exc: BaseException) -> str:
    """One line for a SimpleITK/ITK exception: the "ITK ERROR" description, in plain words where known."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unable to determine ImageIO reader" in line:
            return "not an image file that can be read (an unknown format, or a damaged file)"
        if line.startswith("ITK ERROR:"):
            description = re.sub(r"^ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", line).split(". Refusing")[0]
            for known, meaning in _ITK_MEANINGS.items():
                if description.startswith(known):
                    return meaning
            return description + _library_detail(lines)
    return lines[-1] if lines else type(exc).__name__


def _library_detail(lines: list[str]) -> str:
    """The innermost reason a reader library (teem's "[nrrd] ...") gave, when the ITK line ends
    without one (e.g. 'expected 347200 bytes but received 184854' for a half-copied NRRD)."""
    reasons = [re.sub(r"^\[\w+\] \w+: ?", "", line) for line in lines if line.startswith("[")]
    reasons = [r for r in reasons if r and not r.startswith("trouble")]
    return f" {reasons[-1]}" if reasons else ""
