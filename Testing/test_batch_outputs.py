"""Atomic job outputs, the results tables and the report page, without a cluster."""

from __future__ import annotations

import csv
import json
import re

import pytest

from dlreg.batch.outputs import read_record, write_record
from dlreg.batch.report import histogram_svg, sort_worst_first, write_report
from dlreg.batch.results import COLUMNS, write_results
from dlreg.imaging.outputs import OutputError, atomic_write, remove_partial, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "transform.tfm"
    write_text(target, "old\n")

    def killed_while_writing(temporary):
        assert temporary.parent == target.parent and temporary.name.endswith(".tfm")
        temporary.write_text("half")
        raise RuntimeError("killed while writing")

    with pytest.raises(OutputError, match="killed while writing"):
        atomic_write(target, killed_while_writing)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["transform.tfm"]


def test_temporary_names_keep_compound_suffixes(tmp_path):
    atomic_write(tmp_path / "registered.nii.gz", lambda temporary: temporary.write_bytes(
        b"x" if temporary.name.endswith(".nii.gz") else b""))
    assert (tmp_path / "registered.nii.gz").read_bytes() == b"x"


def test_leftovers_of_a_killed_writer_are_removed_before_a_rerun(tmp_path):
    atomic_write(tmp_path / "overlay.png", lambda temporary: temporary.write_bytes(b"complete"))
    stale = tmp_path / ".overlay.partial-deadbeef.png"  # what a SIGKILL mid-write leaves behind
    stale.write_bytes(b"half")
    assert remove_partial(tmp_path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.png"]
    assert (tmp_path / "overlay.png").read_bytes() == b"complete"


def test_records_round_trip_and_unreadable_records_mean_not_done(tmp_path):
    write_record(tmp_path, {"id": "a", "status": "done"})
    assert read_record(tmp_path) == {"id": "a", "status": "done"}
    (tmp_path / "record.json").write_text("{truncated")
    assert read_record(tmp_path) is None and read_record(tmp_path / "none") is None


def _records():
    return [
        {"id": "low", "task": "register3d", "status": "done", "uncertainty": 0.2, "uncertainty_unit": "mm",
         "likely_failed": False, "failure_reasons": [], "files": {"transform": "jobs/low/transform.tfm"},
         "seconds": 2.0},
        {"id": "high", "task": "register3d", "status": "done", "uncertainty": 3.0, "uncertainty_unit": "mm",
         "likely_failed": False, "failure_reasons": [], "files": {}, "seconds": 2.5},
        {"id": "flagged", "task": "register3d", "status": "done", "uncertainty": 0.1, "likely_failed": True,
         "failure_reasons": ["the head masks overlap poorly", "unstable"], "files": {}, "seconds": 2.0},
        {"id": "broken", "task": "register3d", "status": "failed", "reason": "cannot read x, y", "files": {}},
        {"id": "cls", "task": "classify", "status": "done", "predicted_class": "MR-T1", "confidence": 0.9,
         "uncertainty": 0.1, "files": {}, "seconds": 0.1, "details": {"probabilities": {"CT": 0.01}}},
    ]


def test_results_tables_are_complete_and_twins(tmp_path):
    write_results(tmp_path, _records())
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS and [r["id"] for r in rows] == ["low", "high", "flagged", "broken", "cls"]
    assert rows[0]["transform"] == "jobs/low/transform.tfm" and rows[0]["likely_failed"] == "false"
    assert rows[2]["failure_reasons"] == "the head masks overlap poorly; unstable"
    assert rows[3]["reason"] == "cannot read x, y" and rows[3]["uncertainty"] == ""
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in rows]
    assert lines[4]["details"]["probabilities"] == {"CT": 0.01} and lines[2]["failure_reasons"][1] == "unstable"


def test_report_sorts_worst_first_and_escapes_text(tmp_path):
    records = _records()
    assert [r["id"] for r in sort_worst_first(records[:4])] == ["broken", "flagged", "high", "low"]
    records[3]["reason"] = "<script>alert(1)</script>"
    page = write_report(tmp_path, records, "cohort.csv").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index(">broken<") < page.index(">flagged<") < page.index(">high<") < page.index(">low<")
    assert (tmp_path / "report_files" / "uncertainty_register3d.svg").is_file()
    assert "http" not in page.replace("http://www.w3.org", "")  # nothing to fetch: opens offline


def test_histogram_counts_every_value():
    svg = histogram_svg([0.0, 0.5, 1.0, 1.0], "t")
    bars = [float(h) for h in re.findall(r'height="([0-9.]+)" fill="#4a78b5"', svg)]
    assert "(4 jobs)" in svg and len(bars) == 12
    tallest = max(bars)
    assert [round(h / tallest, 3) for h in bars if h] == [0.5, 0.5, 1.0]  # bins of 0, 0.5 and 1.0 (twice)


def test_a_job_run_in_this_process_leaves_its_thread_counts_as_they_were():
    import SimpleITK as sitk
    import torch

    from dlreg.batch.execute import threads_limited

    before = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    with threads_limited(1):
        assert (torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()) == (1, 1)
    assert (torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()) == before
