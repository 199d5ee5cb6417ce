"""No silent wrong answer, no lost output: files, outputs and the command line under bad conditions.

Each test reproduces a finding of a review of ~230 bad inputs (full disk, truncated NIfTI, thin
volumes' errors, unclear messages, outputs checked too late or overwriting an input, counts
without bounds); the 2D failure flag, determinism and the mirror check are tested with their
pipelines.
"""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.cli import main
from dlreg.errors import InputImageError
from dlreg.imaging.io import read_image, write_image
from dlreg.imaging.outputs import OutputError, StagedOutputs, check_output_paths
from dlreg.imaging.transforms import write_transform
from dlreg.sampledata import sample_path

T1_PNG, T2_PNG = str(sample_path("stroke_t1_axial.png")), str(sample_path("stroke_t2_axial.png"))


def run_cli(*args: str, file_limit: int | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m dlreg ...` in a child process; `file_limit` caps its file size like a full disk."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "-m", "dlreg", *args], capture_output=True, text=True, cwd=cwd,
                          preexec_fn=limit if file_limit else None, timeout=300)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "deprecated" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_full_disk_is_an_error_and_leaves_no_output(tmp_path):
    """The image cannot be written whole: exit 2 naming it, and the transform is not left behind either."""
    volume = str(sample_path("stroke_t1_2mm.nrrd"))
    done = run_cli("register2d", volume, volume, "--slice", "35", "--n-uncertainty", "2",
                   "--output-transform", str(tmp_path / "t.tfm"), "--output-image", str(tmp_path / "r.nii.gz"),
                   file_limit=20_000)
    assert done.returncode == 2 and str(tmp_path / "r.nii.gz") in one_error_line(done.stderr)
    assert sorted(os.listdir(tmp_path)) == []  # no transform, no temporary file


def test_a_truncated_nifti_is_refused(tmp_path):
    image = read_image(sample_path("stroke_t1_2mm.nrrd"))
    for name in ("cut.nii", "cut.nii.gz"):
        sitk.WriteImage(image, str(tmp_path / name))
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(InputImageError, match="truncated"):
            read_image(tmp_path / name)
    whole = tmp_path / "whole.nii.gz"
    sitk.WriteImage(image, str(whole))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(whole)), sitk.GetArrayFromImage(image))
    done = run_cli("classify", str(tmp_path / "cut.nii.gz"))
    assert done.returncode == 2 and "truncated" in one_error_line(done.stderr)


def test_a_gzip_stream_cut_at_its_end_is_refused(tmp_path):
    """Only the last bytes missing: the gzip trailer is gone, the stream does not decompress to the end."""
    path = tmp_path / "short.nii.gz"
    sitk.WriteImage(read_image(sample_path("mni_t1_2mm.nrrd")), str(path))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(InputImageError, match="truncated"):
        read_image(path)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "seed must be 0..2147483647"),
    (["--n-uncertainty", "2000"], "n_uncertainty must be 0..100"),
    (["--n-bootstrap", "100000"], "n_bootstrap must be 1..100"),
    (["--n-bootstrap", "-3"], "n_bootstrap must be 1..100"),
    (["--device", "gpu7"], "device"),
    (["--mode", "default", "--vgg-weights", "w.pth"], "vgg_weights is used only in paper mode"),
])
def test_bad_counts_and_options_are_refused_in_one_line(tmp_path, capsys, args, message):
    code = main(["register2d", T1_PNG, T2_PNG, "--output-transform", str(tmp_path / "t.tfm"), *args])
    assert code == 2 and message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "t.tfm").exists()


def test_register3d_counts_are_bounded(tmp_path, capsys):
    volume = str(sample_path("stroke_t1_2mm.nrrd"))
    code = main(["register3d", volume, volume, "--output-transform", str(tmp_path / "t.tfm"),
                 "--n-uncertainty", "2000"])
    assert code == 2 and "n_uncertainty must be 0..64" in one_error_line(capsys.readouterr().err)


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["register3d", T1_PNG, T2_PNG, "--output-transform", str(blocker / "t.tfm")])
    assert code == 2 and "is a file, not a folder" in one_error_line(capsys.readouterr().err)
    copy = tmp_path / "t2.png"
    copy.write_bytes(Path(T2_PNG).read_bytes())
    code = main(["register2d", T1_PNG, str(copy), "--output-transform", str(tmp_path / "t.tfm"),
                 "--output-image", str(copy)])
    assert code == 2 and "is also an input" in one_error_line(capsys.readouterr().err)
    assert copy.read_bytes() == Path(T2_PNG).read_bytes()  # the input is untouched
    with pytest.raises(OutputError, match="same path"):
        check_output_paths([tmp_path / "x.nrrd", tmp_path / "x.nrrd"])


def test_staged_outputs_are_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="later failure"), StagedOutputs() as outputs:
        outputs.add(tmp_path / "t.tfm", lambda p: write_transform(p, np.eye(4)))
        raise RuntimeError("a later failure")
    assert os.listdir(tmp_path) == []
    write_image(read_image(sample_path("stroke_t1_axial.png")), tmp_path / "out" / "p.nrrd")
    assert os.listdir(tmp_path / "out") == ["p.nrrd"]
    assert oct((tmp_path / "out" / "p.nrrd").stat().st_mode & 0o777) != oct(0o600)  # ordinary permissions


def test_messages_name_the_problem(tmp_path):
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((9, 9, 9)).astype(np.float32))
    sitk.WriteImage(image, str(tmp_path / "ok.nrrd"))
    text = (tmp_path / "ok.nrrd").read_bytes()
    (tmp_path / "degenerate.nrrd").write_bytes(text.replace(b"(0,1,0)", b"(1,0,0)"))
    with pytest.raises(InputImageError, match="direction matrix is degenerate"):
        read_image(tmp_path / "degenerate.nrrd")
    huge = sitk.GetImageFromArray(np.full((9, 9, 9), 1e300))
    sitk.WriteImage(huge, str(tmp_path / "huge.nrrd"))
    with pytest.raises(InputImageError, match="beyond the range of 32-bit floats"):
        read_image(tmp_path / "huge.nrrd")
    done = run_cli("classify", T1_PNG)
    assert done.returncode == 2 and "rigid" not in one_error_line(done.stderr)


def test_an_unexpected_failure_is_one_line_with_details_at_verbose(capsys, monkeypatch):
    import dlreg.modality.cli as modality_cli

    monkeypatch.setattr(modality_cli, "run_classify", lambda args: 1 / 0)
    assert main(["classify", T1_PNG]) == 1
    assert "unexpected failure (ZeroDivisionError" in one_error_line(capsys.readouterr().err)


def _dicom_series(folder: Path, positions: list[list[float]]) -> None:
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index, position in enumerate(positions):
        frame = sitk.GetImageFromArray((np.random.default_rng(index).random((1, 16, 16)) * 100).astype(np.int16))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.3"), ("0020|000e", "1.2.3.4"),
                           ("0020|0013", str(index + 1)), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0020|0032", "\\".join(f"{v:g}" for v in position)),
                           ("0008|0018", f"1.2.3.4.{index + 1}")):
            frame.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{index:03d}.dcm"))
        writer.Execute(frame)


def test_a_gantry_tilted_or_uneven_dicom_series_is_refused(tmp_path):
    _dicom_series(tmp_path / "regular", [[0, 0, 2.0 * k] for k in range(6)])
    assert read_image(tmp_path / "regular").GetSize() == (16, 16, 6)
    _dicom_series(tmp_path / "tilted", [[0, 0.7 * k, 2.0 * k] for k in range(6)])
    with pytest.raises(InputImageError, match="gantry tilt"):
        read_image(tmp_path / "tilted")
    _dicom_series(tmp_path / "uneven", [[0, 0, z] for z in (0, 2, 4, 7, 9, 11)])
    with pytest.raises(InputImageError, match="unevenly spaced"):
        read_image(tmp_path / "uneven")
