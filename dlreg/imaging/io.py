"""Read and write images: NRRD, NIfTI, MHA, a DICOM series folder, PNG/JPEG.

`read_image` always returns a 3D scalar float32 SimpleITK image: a 2D file
(PNG, JPEG, a single DICOM frame) becomes a one-slice volume, as Slicer loads
it, and colour pictures become luminance. Anything that cannot be a scalar
image (vector volumes, 4D series), or that holds no usable signal (all one
value, NaN, infinity), is refused with an InputImageError naming the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError

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
    image = _read_dicom_folder(path, series_id) if path.is_dir() else _read_file(path)
    image = _as_scalar_3d(image, path)
    if validate:
        validate_scalar_image(image, str(path))
    return image


def write_image(image: sitk.Image, path: str | os.PathLike) -> Path:
    """Write an image; the format follows the suffix. Pictures are rescaled to 8 bit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in PICTURE_SUFFIXES:
        image = _to_picture(image)
    try:
        sitk.WriteImage(image, str(path), useCompression=True)
    except RuntimeError as exc:
        raise InputImageError(f"cannot write image to {path}: {_first_line(exc)}") from exc
    return path


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
        raise InputImageError(
            f"cannot read {path}: not a readable image file ({_first_line(exc)})") from exc


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
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_id))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputImageError(f"cannot read DICOM series in {folder}: {_first_line(exc)}") from exc


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


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # SimpleITK puts the useful description on the last non-empty line.
    return lines[-1] if lines else type(exc).__name__
