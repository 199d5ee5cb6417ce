"""Batches on real Dask clusters (local, and a separate scheduler with two workers) on the bundled data.

One local run is shared by several checks: results complete, bad rows with their reasons,
exit status, the QC report in headless Chromium, and a re-run that runs only the failed
rows and leaves finished jobs' files byte-identical.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk
from headless_chromium import inspect_page

from dlreg.batch import run_batch
from dlreg.batch.api import EXIT_INTERRUPTED, EXIT_SOME_FAILED
from dlreg.batch.driver import dask_client, run_on_dask
from dlreg.batch.manifest import read_manifest
from dlreg.imaging.transforms import read_transform
from dlreg.sampledata import SAMPLE_DATA_DIR

GOOD_ROWS = [  # id, task, fixed, moving, image, slice, n_uncertainty, order
    ("t1_t2", "register3d", "stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", "", "", "2", ""),
    ("t1_flair", "register3d", "stroke_t1_2mm.nrrd", "stroke_flair_2mm.nrrd", "", "", "4", ""),
    ("auto_order", "register3d", "stroke_t2_2mm.nrrd", "stroke_t1_2mm.nrrd", "", "", "2", "auto"),
    ("png_pair", "register2d", "stroke_t1_axial.png", "stroke_t2_axial.png", "", "", "", ""),
    ("slice35", "register2d", "stroke_t1_2mm.nrrd", "stroke_flair_2mm.nrrd", "", "35", "", ""),
    ("mni_t1", "classify", "", "", "mni_t1_2mm.nrrd", "", "", ""),
    ("stroke_t2", "classify", "", "", "stroke_t2_2mm.nrrd", "", "", ""),
]
BAD_ROWS = [
    ("corrupt", "register3d", "stroke_t1_2mm.nrrd", "half_copied_t2.nrrd", "", "", "", ""),
    ("missing", "register3d", "stroke_t1_2mm.nrrd", "not_there.nrrd", "", "", "", ""),
    ("flat", "register3d", "stroke_t1_axial.png", "stroke_t2_axial.png", "", "", "", ""),
    ("bad_option", "register3d", "stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", "", "", "many", ""),
]
HEADER = ("id", "task", "fixed", "moving", "image", "slice", "n_uncertainty", "order")


def make_cohort(folder: Path, rows, header=HEADER) -> Path:
    """The sample files (and a half-copied one) in `folder`, and a manifest of `rows` there."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in SAMPLE_DATA_DIR.iterdir():
        if path.suffix in (".nrrd", ".png"):
            shutil.copy(path, folder / path.name)
    data = (SAMPLE_DATA_DIR / "stroke_t2_2mm.nrrd").read_bytes()
    (folder / "half_copied_t2.nrrd").write_bytes(data[: len(data) // 2])
    manifest = folder / "cohort.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return manifest


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def results(output: Path) -> dict[str, dict]:
    with open(output / "results.csv", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def batch_cli(*args: str, **kwargs) -> subprocess.Popen:
    # errors="replace": a client killed mid-write can leave half of a progress bar's UTF-8 character
    return subprocess.Popen([sys.executable, "-m", "dlreg", "batch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", **kwargs)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    manifest = make_cohort(tmp_path_factory.mktemp("cohort"), GOOD_ROWS + BAD_ROWS)
    output = manifest.parent / "out"
    summary = run_batch(manifest, output, n_workers=2)
    return manifest, output, summary, file_hashes(output)


def test_every_row_is_in_the_results_with_status_and_reason(local_run):
    manifest, output, summary, _ = local_run
    rows = results(output)
    assert list(rows) == [r[0] for r in GOOD_ROWS + BAD_ROWS]
    assert summary.exit_code == EXIT_SOME_FAILED and summary.counts()["failed"] == len(BAD_ROWS)
    assert all(rows[r[0]]["status"] == "done" and rows[r[0]]["reason"] == "" for r in GOOD_ROWS)
    assert "cannot read" in rows["corrupt"]["reason"] and "half_copied_t2.nrrd" in rows["corrupt"]["reason"]
    assert "bytes but received" in rows["corrupt"]["reason"]  # the reader's own reason, not only "Error reading"
    assert rows["missing"]["reason"] == f"image file not found: {manifest.parent / 'not_there.nrrd'}"
    assert "not a 3D volume" in rows["flat"]["reason"]
    assert "'many' is not an integer" in rows["bad_option"]["reason"]


def test_registrations_write_transforms_figures_and_workers(local_run):
    _, output, _, _ = local_run
    rows = results(output)
    for job_id in ("t1_t2", "t1_flair", "auto_order", "png_pair", "slice35"):
        row = rows[job_id]
        matrix = read_transform(output / row["transform"])
        assert matrix.shape == ((3, 3) if job_id == "png_pair" else (4, 4))
        assert float(row["uncertainty"]) >= 0 and row["likely_failed"] in ("true", "false")
        assert float(row["seconds"]) > 0 and row["worker"] and row["key"]
    # the sample contrasts are co-registered: the rigid results are near the identity
    assert abs(read_transform(output / rows["t1_t2"]["transform"])[:3, 3]).max() < 2.0
    assert rows["auto_order"]["swapped"] == "true"  # the classifier makes the T1 the fixed image
    assert float(rows["t1_flair"]["corner_mm"]) == float(rows["t1_flair"]["uncertainty"])
    assert len({rows[r[0]]["worker"] for r in GOOD_ROWS}) == 2  # both workers took jobs


def test_classification_rows_carry_class_and_confidence(local_run):
    rows = results(local_run[1])
    assert rows["mni_t1"]["predicted_class"] == "MR-T1"
    confidence = float(rows["mni_t1"]["confidence"])
    assert abs(float(rows["mni_t1"]["uncertainty"]) - (1 - confidence)) < 1e-12
    lines = [json.loads(line) for line in (local_run[1] / "results.jsonl").read_text().splitlines()]
    assert set(lines[5]["details"]["probabilities"]) >= {"CT", "MR-T1", "MR-T2"}


def test_no_partial_files_are_left(local_run):
    assert not [p for p in local_run[1].rglob(".*") if ".partial-" in p.name]


def test_report_renders_in_headless_chromium_with_every_image(local_run, tmp_path):
    _, output, summary, _ = local_run
    page = inspect_page(summary.report_html)
    assert page["title"] == "dlreg batch QC report" and page["height"] > 1000
    images = page["images"]
    # 3 histograms, overlay + uncertainty per registration, one picture per classification
    assert len(images) == 3 + 2 * 5 + 2
    assert all(image["complete"] and image["width"] > 0 and image["height"] > 0 for image in images), images
    assert page["screenshot"][:8] == b"\x89PNG\r\n\x1a\n" and len(page["screenshot"]) > 20_000


def test_rerun_runs_only_failed_rows_and_keeps_finished_jobs_byte_identical(local_run):
    manifest, output, _, before = local_run
    again = run_batch(manifest, output, n_workers=1)
    assert again.counts() == {"succeeded": len(GOOD_ROWS), "failed": len(BAD_ROWS), "not_run": 0,
                              "ran": len(BAD_ROWS) - 1}  # the bad option row never runs
    after = file_hashes(output)
    good = {r[0] for r in GOOD_ROWS}
    finished = [k for k in before if k.startswith("jobs/") and k.split("/")[1] in good]
    assert len(finished) >= 3 * len(GOOD_ROWS) and all(after[k] == before[k] for k in finished)
    assert [row["id"] for row in results(output).values() if row["status"] == "done"] == [r[0] for r in GOOD_ROWS]


def test_separate_scheduler_and_two_workers_give_the_local_results(local_run, tmp_path):
    manifest, local_output, _, _ = local_run
    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    processes = [subprocess.Popen([*dask, "scheduler", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        processes += [subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                        "--no-dashboard", "--name", f"w{i}"], stderr=subprocess.DEVNULL)
                      for i in range(2)]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        output = tmp_path / "out"
        run = batch_cli(str(manifest), "--output", str(output), "--scheduler", address, "--progress", "json")
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == EXIT_SOME_FAILED, stderr
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    local, remote = results(local_output), results(output)
    compared = ("status", "reason", "predicted_class", "confidence", "uncertainty", "corner_mm", "grid_error_px",
                "likely_failed", "swapped", "key")
    for job_id, row in local.items():
        assert {c: remote[job_id][c] for c in compared} == {c: row[c] for c in compared}, job_id
        if row["transform"]:
            assert (output / row["transform"]).read_bytes() == (local_output / row["transform"]).read_bytes()
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert events[0] == {"progress": 0.0, "message": "10 of 11 jobs to run", "event": "start", "total": 11,
                         "to_run": 10, "skipped": 0}
    assert [e["progress"] for e in events[1:-1]] == [round(n / 10, 4) for n in range(1, 11)]
    assert events[-1]["event"] == "end" and events[-1]["exit_code"] == EXIT_SOME_FAILED
    assert len({remote[r[0]]["worker"] for r in GOOD_ROWS}) == 2


def test_interrupted_and_killed_clients_resume_where_they_stopped(tmp_path):
    manifest = make_cohort(tmp_path / "cohort", GOOD_ROWS)
    output = tmp_path / "out"

    def run_until(done: int, sig: int) -> tuple[int, list[dict]]:
        run = batch_cli(str(manifest), "--output", str(output), "--workers", "1", "--progress", "json",
                        start_new_session=True)
        events = []
        for line in run.stderr:
            if not line.startswith("{"):
                continue
            events.append(json.loads(line))
            if sum(e["event"] == "job" for e in events) >= done:
                os.killpg(run.pid, sig)
                break
        run.communicate(timeout=120)
        return run.returncode, events

    code, _ = run_until(2, signal.SIGINT)  # Ctrl-C: the whole foreground group
    assert code == EXIT_INTERRUPTED
    rows = results(output)
    assert 2 <= sum(r["status"] == "done" for r in rows.values()) < len(GOOD_ROWS)
    assert {r["status"] for r in rows.values()} == {"done", "pending"}
    code, events = run_until(1, signal.SIGKILL)  # the client and its workers killed outright
    assert code == -signal.SIGKILL
    for path in (output / "jobs").rglob("*"):  # whatever has its final name is whole
        if path.suffix == ".tfm":
            read_transform(path)
        elif path.suffix == ".png":
            sitk.ReadImage(str(path))
        elif path.name == "record.json":
            json.loads(path.read_text())
    finished = {p.parent.name for p in (output / "jobs").glob("*/record.json")}
    before = file_hashes(output / "jobs")
    rerun = batch_cli(str(manifest), "--output", str(output), "--workers", "2")
    _, bar = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, bar
    assert f"({len(finished)} already done)" in bar and ("job/s" in bar or "s/job" in bar)
    after = file_hashes(output / "jobs")
    assert all(after[k] == v for k, v in before.items() if k.split("/")[0] in finished)
    assert not [k for k in after if ".partial-" in k]
    assert {r["status"] for r in results(output).values()} == {"done"}


def _models_loaded() -> int:
    from dlreg.rigid3d.model import _load_cached

    return _load_cached.cache_info().misses


@pytest.mark.parametrize("allowed_failures", [3, 0])
def test_a_job_whose_worker_dies_is_retried_or_recorded(tmp_path, allowed_failures):
    import dask
    import distributed  # noqa: F401 - its configuration defaults must exist before dask.config.set

    rows = [(f"seed{n}", "register3d", "stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", str(n), "no") for n in range(6)]
    jobs = read_manifest(make_cohort(tmp_path / "cohort", rows, ("id", "task", "fixed", "moving", "seed", "refine")))
    output = tmp_path / "out"
    records, assigned = [], []
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            dask_client(n_workers=2) as client:
        pids = client.run(os.getpid)
        for record in run_on_dask(client, jobs, output):
            records.append(record)
            if len(records) == 1:  # kill the other worker in the middle of its job
                finisher = int(record["worker"].rsplit(":", 1)[1])
                victim = next(address for address, pid in pids.items() if pid != finisher)
                assigned = [key.split("-")[1] for key in client.processing()[victim]]  # running or queued there
                os.kill(pids[victim], signal.SIGKILL)
        loads = client.run(_models_loaded)
    assert assigned, "the killed worker had jobs"
    by_id = {r["id"]: r for r in records}
    assert sorted(by_id) == [job.id for job in jobs]
    if allowed_failures:  # Dask ran the job again on a live worker
        assert all(r["status"] == "done" for r in records)
        assert any(not by_id[i]["worker"].endswith(f":{pids[victim]}") for i in assigned)
    else:  # the killed worker's job is recorded with the reason (the kill races with its queue, so
        # which of the jobs it held were still unfinished is known only afterwards)
        failed = [r for r in records if r["status"] != "done"]
        assert failed and {r["reason"] for r in failed} == {
            "the worker running this job died each time it was tried (killed, or out of memory)"}
        assert any(r["id"] in assigned for r in failed)
    assert max(loads.values()) == 1  # a worker loads the rigid model once for all its jobs (a new one: none yet)
    assert not [p for p in output.rglob(".*") if ".partial-" in p.name]
