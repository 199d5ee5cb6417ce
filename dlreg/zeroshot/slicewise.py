"""Zero-shot registration of images with geometry: one slice, or every slice of a volume.

`register_arrays` works on pixel grids. This layer puts it in physical space:
it takes SimpleITK images (2D pictures read as one-slice volumes, or 3D
volumes), brings the moving image onto the fixed grid when the grids differ,
registers the chosen slice(s) in-plane, and returns each in-plane result as a
4x4 LPS fixed -> moving transform plus volumes on the fixed grid (resampled
moving, uncertainty heatmap) ready for files or MRML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError, MismatchedInputsError
from dlreg.imaging.geometry import same_geometry
from dlreg.imaging.io import validate_scalar_image
from dlreg.imaging.resample import resample_to
from dlreg.imaging.slices import embed_slice_transform, extract_slice, slice_axis, slice_count
from dlreg.options import resolve
from dlreg.progress import ProgressCallback, report, scaled
from dlreg.zeroshot.options import ZeroShotOptions
from dlreg.zeroshot.pipeline import PARAM_ORDER, ZeroShotResult, register_arrays

SliceChoice = Union[int, str, None]


@dataclass
class SliceResult:
    """One registered slice: its physical transform and the in-plane result on pixel grids."""

    slice_index: int
    in_plane: ZeroShotResult
    matrix: np.ndarray  # 4x4, LPS, fixed point -> moving point

    def to_json(self) -> dict:
        return {"slice": self.slice_index, "matrix_lps_fixed_to_moving": self.matrix.tolist(),
                **self.in_plane.to_json()}


@dataclass
class SlicewiseResult:
    """All registered slices with output volumes on the fixed image's grid."""

    plane: str
    slices: list[SliceResult]
    resampled: sitk.Image
    uncertainty: sitk.Image
    moving_was_resampled: bool
    skipped: dict[int, str] = field(default_factory=dict)  # slice -> why it was not registered

    @property
    def single(self) -> SliceResult | None:
        """The result when exactly one slice was registered."""
        return self.slices[0] if len(self.slices) == 1 else None

    @property
    def likely_failed(self) -> bool:
        """Whether any registered slice's result is probably wrong."""
        return any(s.in_plane.likely_failed for s in self.slices)

    @property
    def failure_reasons(self) -> list[str]:
        """The reasons of the slices that probably failed (prefixed by the slice when there are several)."""
        if self.single is not None:
            return list(self.single.in_plane.failure_reasons)
        return [f"slice {s.slice_index}: {why}" for s in self.slices for why in s.in_plane.failure_reasons]

    def to_json(self) -> dict:
        """One slice's result at the top level, or a list of them under "slices"."""
        payload = {"plane": self.plane, "param_order": list(PARAM_ORDER),
                   "moving_resampled_to_fixed_grid": self.moving_was_resampled}
        if self.single is not None:
            return {**payload, **self.single.to_json()}
        return {**payload, "likely_failed": self.likely_failed, "failure_reasons": self.failure_reasons,
                "slices": [s.to_json() for s in self.slices],
                "skipped": {str(k): why for k, why in self.skipped.items()}}


def register_images(fixed: sitk.Image, moving: sitk.Image, options: ZeroShotOptions | None = None, *,
                    slice_index: SliceChoice = None, progress: ProgressCallback | None = None,
                    **changes) -> SlicewiseResult:
    """Register `moving` to `fixed` slice by slice in the options' plane (see `register_arrays`).

    `slice_index` is a slice of `fixed` in that plane, "all", or None for one-slice
    images. Inputs are never modified.
    """
    opts = resolve(ZeroShotOptions, options, changes)
    plane = opts.plane
    for name, image in (("fixed image", fixed), ("moving image", moving)):
        if image.GetDimension() != 3:
            raise InputImageError(f"the {name} must be a 3D image or a one-slice volume "
                                  f"(read files with dlreg.imaging.read_image)")
        validate_scalar_image(image, name)
    indices = _chosen_slices(fixed, plane, slice_index)
    moving, on_fixed_grid, resampled_moving = _moving_on_fixed_grid(fixed, moving, plane)
    slices, skipped = [], {}
    for n, k in enumerate(indices):
        fixed_pixels, spacing = extract_slice(fixed, plane, k)
        moving_pixels, _ = extract_slice(on_fixed_grid, plane, k)
        report(progress, n / len(indices), f"registering {plane} slice {k}")
        try:
            result = register_arrays(fixed_pixels, moving_pixels, opts, spacing=spacing,
                                     progress=scaled(progress, n / len(indices), (n + 1) / len(indices)))
        except (InputImageError, MismatchedInputsError) as exc:
            if len(indices) == 1:
                raise
            skipped[k] = str(exc)  # e.g. an edge slice with too little anatomy
            continue
        slices.append(SliceResult(k, result, embed_slice_transform(result.matrix, fixed, fixed, plane, k, k)))
    if not slices:
        raise InputImageError(f"no {plane} slice could be registered; first reason: "
                              f"{next(iter(skipped.values()))}")
    report(progress, 1.0, "registration done")
    return SlicewiseResult(plane, slices, *_output_volumes(fixed, moving, slices, plane), resampled_moving,
                           skipped)


def _chosen_slices(fixed: sitk.Image, plane: str, choice: SliceChoice) -> list[int]:
    count = slice_count(fixed, plane)
    if choice == "all":
        return list(range(count))
    if choice is None:
        if count != 1:
            raise InputImageError(
                f"the fixed image is a 3D volume with {count} {plane} slices: choose a slice index "
                "(--slice on the command line) or 'all' (zero-shot registration is 2D)")
        return [0]
    if isinstance(choice, str):
        raise InputImageError(f"slice choice '{choice}' is not understood: give an index or 'all'")
    if not 0 <= int(choice) < count:
        raise InputImageError(f"slice {choice} is outside the fixed image's {plane} range 0..{count - 1}")
    return [int(choice)]


def _moving_on_fixed_grid(fixed: sitk.Image, moving: sitk.Image,
                          plane: str) -> tuple[sitk.Image, sitk.Image, bool]:
    """(moving in the frame the results refer to, moving on the fixed grid, was it resampled).

    Grids that agree are used as they are; volumes on other grids are resampled
    through their physical placement. One-slice pictures carry no real
    placement: they must match in size and take the fixed image's frame.
    """
    if same_geometry(fixed, moving):
        return moving, moving, False
    flat = [min(image.GetSize()) == 1 for image in (fixed, moving)]
    if flat[0] != flat[1]:
        one, other = ("fixed", "moving") if flat[0] else ("moving", "fixed")
        raise MismatchedInputsError(f"the {one} image is a single 2D slice but the {other} image is a 3D volume: "
                                    "register two 2D images, or two volumes with --slice")
    if slice_count(fixed, plane) == 1 and slice_count(moving, plane) == 1:
        if fixed.GetSize() != moving.GetSize():
            raise MismatchedInputsError(
                f"the 2D images differ in size: fixed {fixed.GetSize()[:2]}, moving {moving.GetSize()[:2]} px; "
                "zero-shot registration needs images of the same size")
        placed = sitk.Image(moving)
        placed.CopyInformation(fixed)
        return placed, placed, False
    resampled = resample_to(moving, fixed)
    if not np.any(sitk.GetArrayViewFromImage(resampled)):
        raise MismatchedInputsError("the fixed and moving images do not overlap in physical space")
    return moving, resampled, True


def _output_volumes(fixed: sitk.Image, moving: sitk.Image, slices: list[SliceResult],
                    plane: str) -> tuple[sitk.Image, sitk.Image]:
    """Resampled moving and uncertainty heatmap, both on the fixed grid."""
    uncertainty = np.zeros(sitk.GetArrayViewFromImage(fixed).shape, np.float32)
    numpy_axis = 2 - slice_axis(fixed, plane)
    for item in slices:
        _put_slice(uncertainty, numpy_axis, item.slice_index, item.in_plane.uncertainty_map)
    if len(slices) == 1:
        resampled = resample_to(moving, fixed, slices[0].matrix)
    else:
        stacked = np.zeros_like(uncertainty)
        for item in slices:
            _put_slice(stacked, numpy_axis, item.slice_index, item.in_plane.resampled)
        resampled = _like(stacked, fixed)
    return resampled, _like(uncertainty, fixed)


def _put_slice(volume: np.ndarray, numpy_axis: int, index: int, pixels: np.ndarray) -> None:
    view = np.moveaxis(volume, numpy_axis, 0)
    view[index] = pixels


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image
