"""Shared fixtures: bundled real images, geometry variants, a real MRML scene."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.imaging.geometry import rotation_matrix
from dlreg.imaging.io import read_image
from dlreg.sampledata import sample_path


@pytest.fixture(scope="session")
def mni_t1() -> sitk.Image:
    """The bundled MNI ICBM152 T1 at 2 mm (real anatomy, axis-aligned)."""
    return read_image(sample_path("mni_t1_2mm.nrrd"))


@pytest.fixture(scope="session")
def stroke_t1() -> sitk.Image:
    """The bundled stroke T1 at 2 mm (real anatomy, oblique direction)."""
    return read_image(sample_path("stroke_t1_2mm.nrrd"))


def _variant(image: sitk.Image, spacing, direction) -> sitk.Image:
    out = sitk.Image(image)
    out.SetSpacing(spacing)
    out.SetDirection(np.asarray(direction, float).ravel().tolist())
    out.SetOrigin((12.5, -31.25, 7.75))
    return out


@pytest.fixture(params=["bundled-mni", "bundled-stroke", "oblique", "anisotropic", "flipped",
                        "oblique-anisotropic-flipped"])
def geometry_variant(request, mni_t1, stroke_t1) -> sitk.Image:
    """Real images with the geometries that break careless code."""
    oblique = rotation_matrix(0.3, -0.2, 0.5)
    flipped = np.diag([-1.0, 1.0, -1.0]) @ np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])
    return {
        "bundled-mni": lambda: mni_t1,
        "bundled-stroke": lambda: stroke_t1,
        "oblique": lambda: _variant(mni_t1, (2.0, 2.0, 2.0), oblique),
        "anisotropic": lambda: _variant(mni_t1, (0.7, 1.3, 3.5), np.eye(3)),
        "flipped": lambda: _variant(mni_t1, (2.0, 2.0, 2.0), flipped),
        "oblique-anisotropic-flipped": lambda: _variant(mni_t1, (0.9, 2.2, 4.0), oblique @ flipped),
    }[request.param]()


@pytest.fixture()
def mrml():
    """A fresh real MRML scene (slicer-core) wired like Slicer's application."""
    from dlreg.mrml.scene import create_scene

    context = create_scene()
    yield context
    context.close()
