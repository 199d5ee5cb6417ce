"""`python -m dlreg register2d`: the JSON, the transform file, outputs on the fixed grid."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from dlreg.cli import main
from dlreg.imaging.io import read_image
from dlreg.sampledata import sample_path

FAST = ["--n-uncertainty", "2", "--json"]


def test_picture_pair_json_and_2d_transform(tmp_path, capsys):
    fixed, moving = sample_path("stroke_t1_axial.png"), sample_path("stroke_t2_axial.png")
    code = main(["register2d", str(fixed), str(moving), "--output-transform", str(tmp_path / "t.tfm"),
                 "--uncertainty", str(tmp_path / "u.nrrd"), *FAST])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("params", "uncertainty", "metrics_before", "metrics_after", "elapsed_s"):
        assert key in payload
    matrix = np.array(payload["matrix_lps_3x3"])
    transform = sitk.ReadTransform(str(tmp_path / "t.tfm"))
    assert transform.GetDimension() == 2
    point = np.array([40.0, 70.0])
    np.testing.assert_allclose(transform.TransformPoint(point.tolist()), matrix[:2, :2] @ point + matrix[:2, 2],
                               atol=1e-9)
    # The pair is co-registered: the result is close to the identity (sub-pixel at 1 mm pixels).
    assert np.abs(matrix[:2, 2]).max() < 1.0 and np.abs(matrix[:2, :2] - np.eye(2)).max() < 0.02
    assert read_image(tmp_path / "u.nrrd", validate=False).GetSize() == read_image(fixed).GetSize()


def test_volume_slice_writes_3d_outputs_on_the_fixed_grid(tmp_path, capsys):
    volume = sample_path("stroke_t1_2mm.nrrd")
    flair = sample_path("stroke_flair_2mm.nrrd")
    code = main(["register2d", str(volume), str(flair), "--slice", "35", "--output-transform",
                 str(tmp_path / "t.h5"), "--output-image", str(tmp_path / "r.nrrd"), *FAST])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["slice"] == 35 and np.array(payload["matrix_lps_fixed_to_moving"]).shape == (4, 4)
    assert sitk.ReadTransform(str(tmp_path / "t.h5")).GetDimension() == 3
    assert read_image(tmp_path / "r.nrrd").GetSize() == read_image(volume).GetSize()


def test_bad_slice_choice_is_one_line(tmp_path, capsys):
    volume = str(sample_path("stroke_t1_2mm.nrrd"))
    assert main(["register2d", volume, volume, "--slice", "middle", "--output-transform",
                 str(tmp_path / "t.tfm")]) == 2
    assert capsys.readouterr().err.startswith("error: --slice must be an index or 'all'")
