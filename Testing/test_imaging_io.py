"""File I/O on real images, every supported format, and every bad input named clearly."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import index_to_physical_matrix, same_geometry
from dlreg.imaging.io import read_image, validate_scalar_image, write_image
from dlreg.sampledata import sample_path


def assert_same_image(a: sitk.Image, b: sitk.Image, atol: float = 1e-6) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(index_to_physical_matrix(a), index_to_physical_matrix(b), atol=atol)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_volume_formats_round_trip(tmp_path, stroke_t1, suffix):
    path = write_image(stroke_t1, tmp_path / f"image{suffix}")
    back = read_image(path)
    assert back.GetPixelID() == sitk.sitkFloat32 and back.GetDimension() == 3
    assert_same_image(stroke_t1, back, atol=1e-5)


def test_dicom_series_folder(tmp_path, mni_t1):
    volume = sitk.Cast(mni_t1[20:60, 30:70, 30:40], sitk.sitkInt16)
    series_uid = "1.2.826.0.1.3680043.2.1125.1.1"
    direction = volume.GetDirection()
    for k in range(volume.GetSize()[2]):
        frame = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for tag, value in {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in direction[0:7:3] + direction[1:8:3]),
            "0008|0018": f"{series_uid}.{k + 1}",
        }.items():
            frame.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(frame)
    back = read_image(tmp_path)
    assert back.GetSize() == volume.GetSize()
    np.testing.assert_allclose(back.GetOrigin(), volume.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), volume.GetSpacing(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(volume))


def test_png_is_a_single_slice_volume():
    picture = read_image(sample_path("stroke_t1_axial.png"))
    assert picture.GetDimension() == 3 and picture.GetSize()[2] == 1
    assert float(sitk.GetArrayViewFromImage(picture).max()) > 0


def test_rgb_picture_becomes_luminance(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    rgb[0, 0] = 0
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "rgb.png"))
    grey = sitk.GetArrayFromImage(read_image(tmp_path / "rgb.png"))
    assert grey.shape == (1, 8, 10)
    assert grey[0, 1, 1] == pytest.approx(0.299 * 100 + 0.587 * 200 + 0.114 * 50, abs=1e-3)


def test_writing_a_picture_rescales_to_8_bit(tmp_path, stroke_t1):
    path = write_image(stroke_t1[:, :, 30:31], tmp_path / "slice.png")
    back = sitk.ReadImage(str(path))
    assert back.GetPixelID() == sitk.sitkUInt8 and back.GetSize() == stroke_t1.GetSize()[:2]
    assert sitk.GetArrayViewFromImage(back).max() == 255


def test_missing_file(tmp_path):
    with pytest.raises(InputImageError, match="not found"):
        read_image(tmp_path / "absent.nii.gz")


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    with pytest.raises(InputImageError, match="cannot read"):
        read_image(path)


def test_truncated_file(tmp_path, stroke_t1):
    path = write_image(stroke_t1, tmp_path / "whole.nrrd")
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputImageError, match="cannot read"):
        read_image(truncated)


@pytest.mark.parametrize("name, make, message", [
    ("series.nii.gz", lambda: sitk.JoinSeries([sitk.GaussianSource(sitk.sitkFloat32, [8, 8, 8])] * 3), "4D image"),
    ("vector.nrrd", lambda: sitk.Compose([sitk.GaussianSource(sitk.sitkFloat32, [8, 8, 8])] * 3),
     "vector image with 3 components"),
])
def test_4d_and_vector_images_are_refused(tmp_path, name, make, message):
    sitk.WriteImage(make(), str(tmp_path / name))
    with pytest.raises(InputImageError, match=message):
        read_image(tmp_path / name)


def test_4d_image_with_one_volume_is_accepted(tmp_path):
    series = sitk.JoinSeries([sitk.GaussianSource(sitk.sitkFloat32, [8, 8, 8])])
    sitk.WriteImage(series, str(tmp_path / "one.nii.gz"))
    assert read_image(tmp_path / "one.nii.gz").GetSize() == (8, 8, 8)


def test_all_zero_image_is_refused(tmp_path):
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkFloat32), str(tmp_path / "zero.nrrd"))
    with pytest.raises(InputImageError, match="blank"):
        read_image(tmp_path / "zero.nrrd")


def test_nan_voxels_are_refused(tmp_path, stroke_t1):
    array = sitk.GetArrayFromImage(stroke_t1)
    array[5, 6, 7] = np.nan
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(stroke_t1)
    sitk.WriteImage(image, str(tmp_path / "nan.nrrd"))
    with pytest.raises(InputImageError, match="1 NaN or infinite voxels"):
        read_image(tmp_path / "nan.nrrd")


def test_validation_can_be_deferred(tmp_path):
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkFloat32), str(tmp_path / "zero.nrrd"))
    image = read_image(tmp_path / "zero.nrrd", validate=False)
    with pytest.raises(InputImageError, match="moving image is blank"):
        validate_scalar_image(image, "moving image")


def test_reading_never_changes_the_file(tmp_path, stroke_t1):
    path = write_image(stroke_t1, tmp_path / "input.nrrd")
    before = path.read_bytes()
    read_image(path)
    assert path.read_bytes() == before


def test_same_geometry_detects_a_shifted_origin(stroke_t1):
    shifted = sitk.Image(stroke_t1)
    assert same_geometry(stroke_t1, shifted)
    shifted.SetOrigin(np.add(stroke_t1.GetOrigin(), (0.0, 0.0, 0.01)).tolist())
    assert not same_geometry(stroke_t1, shifted)
