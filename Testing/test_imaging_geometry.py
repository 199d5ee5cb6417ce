"""Geometry conventions, ITK transform files, resampling, slices and intensity."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.errors import DLRegError, InputImageError, TransformFileError
from dlreg.imaging.geometry import (
    apply_matrix,
    image_corners,
    index_to_physical,
    lps_ras_convert,
    matrix_to_rigid,
    physical_to_index,
    rigid_to_matrix,
)
from dlreg.imaging.intensity import normalize, normalize_ct, normalize_mr
from dlreg.imaging.resample import resample_to
from dlreg.imaging.slices import embed_slice_transform, extract_slice, slice_axis, slice_index_at
from dlreg.imaging.transforms import from_sitk_transform, read_transform, write_transform

RNG = np.random.default_rng(7)


def random_rigid(rng=RNG, degrees=40.0, mm=30.0):
    return np.concatenate([np.deg2rad(rng.uniform(-degrees, degrees, 3)), rng.uniform(-mm, mm, 3)])


def test_index_physical_matches_simpleitk(geometry_variant):
    indices = RNG.uniform(0, 20, size=(50, 3))
    ours = index_to_physical(geometry_variant, indices)
    theirs = np.array([geometry_variant.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in indices])
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(physical_to_index(geometry_variant, ours), indices, atol=1e-9)


def test_rigid_parameters_match_simpleitk_euler3d():
    for _ in range(20):
        params, center = random_rigid(), RNG.uniform(-50, 50, 3)
        euler = sitk.Euler3DTransform(center.tolist(), *params[:3], params[3:].tolist())
        points = RNG.uniform(-100, 100, size=(10, 3))
        expected = np.array([euler.TransformPoint(p.tolist()) for p in points])
        np.testing.assert_allclose(apply_matrix(rigid_to_matrix(params, center), points), expected, atol=1e-9)
        np.testing.assert_allclose(matrix_to_rigid(rigid_to_matrix(params, center), center), params, atol=1e-9)


def test_non_rigid_matrix_is_refused():
    matrix = rigid_to_matrix(random_rigid())
    matrix[:3, :3] *= 1.1
    with pytest.raises(DLRegError, match="not a rigid"):
        matrix_to_rigid(matrix)


def test_lps_ras_negates_x_and_y():
    point = np.array([[10.0, 20.0, 30.0]])
    np.testing.assert_array_equal(lps_ras_convert(point), [[-10.0, -20.0, 30.0]])
    shift = np.eye(4)
    shift[:3, 3] = (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(lps_ras_convert(shift)[:3, 3], [-1.0, -2.0, 3.0])


@pytest.mark.parametrize("suffix", [".tfm", ".txt", ".h5", ".mat"])
def test_transform_file_round_trip_in_simpleitk(tmp_path, geometry_variant, suffix):
    matrix = rigid_to_matrix(random_rigid(), RNG.uniform(-40, 40, 3))
    matrix[:3, :3] = matrix[:3, :3] @ np.diag([1.05, 0.97, 1.02])  # affine, not only rigid
    path = write_transform(tmp_path / f"t{suffix}", matrix)
    transform = sitk.ReadTransform(str(path))
    corners = image_corners(geometry_variant)
    by_sitk = np.array([transform.TransformPoint(c.tolist()) for c in corners])
    np.testing.assert_allclose(by_sitk, apply_matrix(matrix, corners), atol=1e-6)
    np.testing.assert_allclose(read_transform(path), matrix, atol=1e-9)


def test_reading_other_linear_transform_types(tmp_path):
    center, params = RNG.uniform(-20, 20, 3), random_rigid()
    euler = sitk.Euler3DTransform(center.tolist(), *params[:3], params[3:].tolist())
    composite = sitk.CompositeTransform([euler, sitk.TranslationTransform(3, (1.0, -2.0, 3.0))])
    sitk.WriteTransform(composite, str(tmp_path / "composite.tfm"))
    matrix = read_transform(tmp_path / "composite.tfm")
    points = RNG.uniform(-50, 50, size=(6, 3))
    expected = np.array([composite.TransformPoint(p.tolist()) for p in points])
    np.testing.assert_allclose(apply_matrix(matrix, points), expected, atol=1e-9)


def test_two_dimensional_transform_file(tmp_path):
    matrix = np.array([[0.9, -0.2, 5.0], [0.25, 1.1, -3.0], [0.0, 0.0, 1.0]])
    path = write_transform(tmp_path / "t2d.tfm", matrix)
    assert sitk.ReadTransform(str(path)).GetDimension() == 2
    np.testing.assert_allclose(read_transform(path), matrix, atol=1e-12)


def test_bad_transform_files(tmp_path):
    with pytest.raises(TransformFileError, match="not found"):
        read_transform(tmp_path / "absent.tfm")
    (tmp_path / "garbage.tfm").write_text("#Insight Transform File V1.0\nTransform: Nonsense\n")
    with pytest.raises(TransformFileError, match="not a valid ITK transform"):
        read_transform(tmp_path / "garbage.tfm")
    bspline = sitk.BSplineTransformInitializer(sitk.Image([16, 16, 16], sitk.sitkFloat32), [3, 3, 3])
    bspline.SetParameters(RNG.uniform(-2, 2, len(bspline.GetParameters())).tolist())
    sitk.WriteTransform(bspline, str(tmp_path / "bspline.tfm"))
    with pytest.raises(TransformFileError, match="not linear"):
        read_transform(tmp_path / "bspline.tfm")
    with pytest.raises(TransformFileError, match="NaN"):
        write_transform(tmp_path / "nan.tfm", np.full((4, 4), np.nan))
    with pytest.raises(TransformFileError, match="last row"):
        write_transform(tmp_path / "row.tfm", np.ones((4, 4)))


def test_sitk_transform_matrix_of_a_centred_affine():
    affine = sitk.AffineTransform(3)
    affine.SetCenter((10.0, -5.0, 2.0))
    affine.SetMatrix((1.1, 0.1, 0.0, -0.1, 0.9, 0.05, 0.0, 0.02, 1.0))
    affine.SetTranslation((3.0, 4.0, -1.0))
    point = np.array([7.0, 8.0, 9.0])
    np.testing.assert_allclose(apply_matrix(from_sitk_transform(affine), point),
                               affine.TransformPoint(point.tolist()), atol=1e-12)


def test_resample_with_a_known_translation(stroke_t1):
    shift = np.eye(4)
    shift[:3, :3] = np.eye(3)
    # Translate by exactly two voxels along the image's i axis (oblique in LPS).
    step = np.asarray(stroke_t1.GetDirection()).reshape(3, 3)[:, 0] * stroke_t1.GetSpacing()[0]
    shift[:3, 3] = 2 * step
    moved = sitk.GetArrayFromImage(resample_to(stroke_t1, stroke_t1, shift))
    original = sitk.GetArrayFromImage(stroke_t1)
    np.testing.assert_allclose(moved[:, :, :-2], original[:, :, 2:], atol=1e-3)
    assert np.all(moved[:, :, -2:] == 0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(resample_to(stroke_t1, stroke_t1)), original, atol=1e-4)


def test_resample_rejects_unknown_interpolator(stroke_t1):
    with pytest.raises(ValueError, match="unknown interpolator"):
        resample_to(stroke_t1, stroke_t1, interpolator="cubic")


def test_axial_slice_of_an_oblique_volume(stroke_t1):
    axis = slice_axis(stroke_t1, "axial")
    direction = np.asarray(stroke_t1.GetDirection()).reshape(3, 3)
    assert axis == int(np.argmax(np.abs(direction[2])))
    pixels, spacing = extract_slice(stroke_t1, "axial", 20)
    array = sitk.GetArrayViewFromImage(stroke_t1)
    np.testing.assert_array_equal(pixels, np.take(array, 20, axis=2 - axis))
    with pytest.raises(InputImageError, match="outside"):
        extract_slice(stroke_t1, "axial", 10_000)
    with pytest.raises(InputImageError, match="unknown slice plane"):
        extract_slice(stroke_t1, "oblique", 0)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_slice_transform_embedding_maps_pixels_to_physical_points(geometry_variant, plane):
    fixed = geometry_variant
    moving = sitk.Image(fixed)
    moving.SetOrigin(np.add(fixed.GetOrigin(), (3.0, -4.0, 5.0)).tolist())
    pixel = np.array([[0.98, -0.17, 4.0], [0.17, 0.98, -2.5], [0.0, 0.0, 1.0]])
    matrix = embed_slice_transform(pixel, fixed, moving, plane, fixed_slice=7, moving_slice=9)
    axis = slice_axis(fixed, plane)
    u, v = (a for a in range(3) if a != axis)
    for x, y in RNG.uniform(0, 30, size=(5, 2)):
        fixed_index = np.zeros(3)
        fixed_index[[u, v, axis]] = x, y, 7
        mx, my, _ = pixel @ np.array([x, y, 1.0])
        moving_index = np.zeros(3)
        moving_index[[u, v, axis]] = mx, my, 9
        np.testing.assert_allclose(apply_matrix(matrix, index_to_physical(fixed, fixed_index)),
                                   index_to_physical(moving, moving_index), atol=1e-9)


def test_slice_index_at_a_physical_point(stroke_t1):
    from dlreg.imaging.geometry import index_to_physical_matrix

    point = index_to_physical(stroke_t1, np.array([10.0, 20.0, 30.0]))
    index_to_lps = index_to_physical_matrix(stroke_t1)
    axis = slice_axis(stroke_t1, "axial")
    assert slice_index_at(index_to_lps, stroke_t1.GetSize(), "axial", point) == [10, 20, 30][axis]


def test_intensity_normalisation():
    array = np.zeros((10, 10, 10), np.float32)
    array[2:8, 2:8, 2:8] = np.linspace(100, 1100, 216).reshape(6, 6, 6)
    mr = normalize_mr(array)
    assert mr.min() == 0.0 and mr.max() == 1.0 and mr.dtype == np.float32
    assert 0.45 < np.median(mr[2:8, 2:8, 2:8]) < 0.55
    ct = normalize_ct(np.array([-1000.0, -200.0, 650.0, 1500.0, 3000.0]))
    np.testing.assert_allclose(ct, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(normalize(array, "CT"), normalize_ct(array))
    with pytest.raises(InputImageError, match="no non-zero"):
        normalize_mr(np.zeros(5))
