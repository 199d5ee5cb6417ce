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


def test_text_line_and_json_carry_the_failure_flag(tmp_path, capsys):
    fixed = sample_path("stroke_t1_axial.png")
    image = sitk.ReadImage(str(fixed))
    noise = np.random.default_rng(0).uniform(0, 255, sitk.GetArrayFromImage(image).shape).astype(np.float32)
    noise_image = sitk.GetImageFromArray(noise)
    noise_image.CopyInformation(image)
    sitk.WriteImage(noise_image, str(tmp_path / "noise.nrrd"))
    out = ["--output-transform", str(tmp_path / "t.tfm"), "--n-uncertainty", "2"]
    assert main(["register2d", str(fixed), str(sample_path("stroke_t2_axial.png")), *out]) == 0
    good = capsys.readouterr().out
    assert good.startswith("affine") and "confidence" in good and "LIKELY FAILED" not in good
    assert main(["register2d", str(fixed), str(tmp_path / "noise.nrrd"), *out]) == 0
    assert "LIKELY FAILED: the edges of the two images do not lock" in capsys.readouterr().out
    assert main(["register2d", str(fixed), str(tmp_path / "noise.nrrd"), *out, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["likely_failed"] is True and payload["failure_reasons"]


def test_all_slices_report_which_ones_likely_failed(tmp_path, capsys):
    volume = str(sample_path("stroke_t1_2mm.nrrd"))
    flair = str(sample_path("stroke_flair_2mm.nrrd"))
    assert main(["register2d", volume, flair, "--slice", "all", "--output-transform", str(tmp_path / "t.tfm"),
                 "--n-uncertainty", "0", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    flagged = [s["slice"] for s in payload["slices"] if s["likely_failed"]]
    assert payload["likely_failed"] == bool(flagged)
    assert [r.split(":")[0] for r in payload["failure_reasons"]] == [f"slice {k}" for k in flagged]
    middle = [s for s in payload["slices"] if 25 <= s["slice"] <= 45]
    assert middle and not any(s["likely_failed"] for s in middle)  # the brain's middle registers well
