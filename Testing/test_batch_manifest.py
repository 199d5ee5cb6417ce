"""Batch manifests: rows become jobs with the pipelines' own options; bad rows keep their reason."""

from __future__ import annotations

import dataclasses

import pytest

from dlreg.batch.jobs import Job, RowFailure
from dlreg.batch.manifest import ManifestError, option_columns, read_manifest
from dlreg.modality.options import ModalityOptions
from dlreg.rigid3d.options import RigidOptions
from dlreg.zeroshot.options import ZeroShotOptions


def write(tmp_path, text: str):
    path = tmp_path / "cohort.csv"
    path.write_text(text)
    return path


def test_rows_become_jobs_with_options_parsed_by_the_options_classes(tmp_path):
    path = write(tmp_path, "id,task,fixed,moving,image,slice,n_uncertainty,order,plane,refine\n"
                           "a,register3d,f.nii.gz,m.nii.gz,,,4,auto,,no\n"
                           "b,register2d,f.png,m.png,,,3,,coronal,\n"
                           "c,,,,t1.nrrd,,,,,\n"
                           "d,,/abs/f.nrrd,m.nrrd,,,,,,\n")
    a, b, c, d = read_manifest(path)
    assert a == Job("a", "register3d", RigidOptions(n_uncertainty=4, order="auto", refine=False),
                    fixed=str(tmp_path / "f.nii.gz"), moving=str(tmp_path / "m.nii.gz"))
    assert b.options == ZeroShotOptions(n_uncertainty=3, plane="coronal") and b.slice is None
    assert (c.task, c.options, c.image) == ("classify", ModalityOptions(), str(tmp_path / "t1.nrrd"))
    assert (d.task, d.fixed) == ("register3d", "/abs/f.nrrd")  # default task; absolute paths kept


def test_option_columns_are_exactly_the_options_fields():
    fields = {f.name for cls in (RigidOptions, ZeroShotOptions, ModalityOptions) for f in dataclasses.fields(cls)}
    assert option_columns() == fields


def test_bad_rows_fail_alone_with_one_line_reasons(tmp_path):
    path = write(tmp_path, "id,task,fixed,moving,image,slice,n_uncertainty,plane,prefer_fixed\n"
                           "ok,register3d,f,m,,,,,\n"
                           "badvalue,register3d,f,m,,,lots,,\n"
                           "outofrange,register3d,f,m,,,1000,,\n"
                           "wrongtask,register4d,f,m,,,,,\n"
                           "nomoving,register3d,f,,,,,,\n"
                           "imagefor3d,register3d,f,m,x,,,,\n"
                           "notmine,classify,,,x,,,axial,\n"
                           "slice3d,register3d,f,m,,4,,,\n"
                           "sliceall,register2d,f,m,,all,,,\n"
                           "badclass,classify,,,x,,,,MR-T9\n")
    rows = {row.id: row for row in read_manifest(path)}
    assert isinstance(rows.pop("ok"), Job)
    reasons = {job_id: row.reason for job_id, row in rows.items()}
    assert all(isinstance(row, RowFailure) for row in rows.values())
    assert "n_uncertainty" in reasons["badvalue"] and "'lots' is not an integer" in reasons["badvalue"]
    assert "n_uncertainty must be 0..64" in reasons["outofrange"]
    assert "unknown task 'register4d'" in reasons["wrongtask"]
    assert "needs the column(s) moving" in reasons["nomoving"]
    assert "not image" in reasons["imagefor3d"]
    assert "plane" in reasons["notmine"] and "ModalityOptions" in reasons["notmine"]
    assert "slice applies to register2d rows" in reasons["slice3d"]
    assert "one slice per row" in reasons["sliceall"]
    assert "prefer_fixed must be one of" in reasons["badclass"]
    assert all("\n" not in reason for reason in reasons.values())


@pytest.mark.parametrize("text, message", [
    ("task,fixed,moving\nregister3d,f,m\n", "needs an 'id' column"),
    ("id,fixed,moving,colour\na,f,m,red\n", "unknown column(s) colour"),
    ("id,fixed,moving\na,f,m\na,f,m\n", "id 'a' is used twice"),
    ("id,fixed,moving\n../up,f,m\n", "id '../up' must be"),
    ("id,fixed,moving\n,f,m\n", "id '' must be"),
    ("id,fixed,moving\na,f,m,extra\n", "more values than the header"),
    ("id,id,fixed\na,b,f\n", "appear more than once"),
])
def test_manifest_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(ManifestError) as raised:
        read_manifest(write(tmp_path, text))
    assert message in str(raised.value)


def test_missing_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read manifest"):
        read_manifest(tmp_path / "none.csv")


def test_job_key_follows_row_and_options_only(tmp_path):
    base = Job("a", "register3d", RigidOptions(), fixed="/f", moving="/m")
    same = Job("a", "register3d", RigidOptions.from_strings({"n_uncertainty": "8"}), fixed="/f", moving="/m")
    assert base.key == same.key and len(base.key) == 20
    changed = [dataclasses.replace(base, options=RigidOptions(seed=1)), dataclasses.replace(base, moving="/m2"),
               dataclasses.replace(base, id="b"), dataclasses.replace(base, save_image=True)]
    assert len({base.key, *(job.key for job in changed)}) == 5


def test_save_images_applies_to_registrations_only(tmp_path):
    path = write(tmp_path, "id,fixed,moving,image\nr,f,m,\nc,,,x\n")
    reg, cls = read_manifest(path, save_images=True)
    assert reg.save_image and not cls.save_image


def test_batch_command_refuses_a_bad_manifest_in_one_line(tmp_path, capsys):
    from dlreg.cli import main

    assert main(["batch", str(write(tmp_path, "fixed,moving\nf,m\n")), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: manifest") and "needs an 'id' column" in err and err.count("\n") == 1
