"""Batch throughput on Dask: jobs per minute with 1 and 2 local workers, peak memory per worker,
and the acceptance checks of a 40-job cohort (complete table; a client killed halfway resumes
with finished jobs byte-identical; a corrupt and a missing input end with their reasons).

The cohort: 20 rigid 3D registrations (test-split subjects at 1 mm, the stroke subject, the
bundled 2 mm samples, some with order=auto), 8 zero-shot 2D registrations (slices of 1 mm
volumes and the bundled PNG pair) and 12 classifications. Throughput counts wall-clock time
from the call to the last result, cluster start-up included, on the same 40 jobs for each
worker count; the ratio is the speed-up of 2 workers over 1 measured in the same run.
`--every K` times every K-th job of the cohort only (a mixed subset, for a busy machine); the
resume check always runs all 40 jobs (and the two bad rows) on 2 workers.

    .venv/bin/python benchmarks/batch.py --data DATA_DIR --out benchmarks/results/batch [--every 3]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devdata import DEFAULT_DATA

from dlreg.batch.driver import dask_client, run_on_dask
from dlreg.batch.manifest import read_manifest
from dlreg.batch.results import write_results
from dlreg.sampledata import SAMPLE_DATA_DIR

HEADER = ("id", "task", "fixed", "moving", "image", "slice", "order")
TEST_BRATS = ("Brats18_2013_20_1", "Brats18_CBICA_AQN_1", "Brats18_TCIA01_378_1", "Brats18_TCIA02_606_1",
              "Brats18_TCIA10_637_1")


def cohort_rows(data: Path) -> list[tuple]:
    """The 40 jobs (paths absolute)."""
    rows = []
    subjects = {f"tcga_{c}": data / "tcga_du_7294" / f"{c}.nii.gz" for c in ("t1", "t1c", "t2", "fla")}
    for s in TEST_BRATS:
        subjects.update({f"{s}_{c}": data / "brats2018" / s / f"{s}_{c}.nii.gz" for c in ("t1", "t1ce", "t2", "flair")})
    stroke = {c: data / "stroke" / f"stroke_{c}.nii.gz" for c in ("T1", "T2", "FLAIR")}
    for c in ("t1c", "t2", "fla"):
        rows.append((f"tcga_t1_{c}", "register3d", subjects["tcga_t1"], subjects[f"tcga_{c}"], "", "", ""))
    for s in TEST_BRATS:
        rows.append((f"{s}_t1_t2", "register3d", subjects[f"{s}_t1"], subjects[f"{s}_t2"], "", "", ""))
        rows.append((f"{s}_t1_flair", "register3d", subjects[f"{s}_t1"], subjects[f"{s}_flair"], "", "", ""))
        rows.append((f"{s}_auto", "register3d", subjects[f"{s}_t1ce"], subjects[f"{s}_t1"], "", "", "auto"))
    rows.append(("stroke_t1_t2", "register3d", stroke["T1"], stroke["T2"], "", "", ""))
    samples = SAMPLE_DATA_DIR
    rows.append(("sample_t1_flair", "register3d", samples / "stroke_t1_2mm.nrrd", samples / "stroke_flair_2mm.nrrd",
                 "", "", ""))
    for k in (60, 70, 80):
        rows.append((f"stroke_slice{k}_t2", "register2d", stroke["T1"], stroke["T2"], "", k, ""))
        rows.append((f"tcga_slice{k + 10}_t2", "register2d", subjects["tcga_t1"], subjects["tcga_t2"], "", k + 10, ""))
    rows.append(("png_pair", "register2d", samples / "stroke_t1_axial.png", samples / "stroke_t2_axial.png", "", "",
                 ""))
    rows.append(("sample_slice35", "register2d", samples / "stroke_t1_2mm.nrrd", samples / "stroke_t2_2mm.nrrd", "",
                 35, ""))
    for name in ("tcga_t1", "tcga_t1c", "tcga_t2", "tcga_fla", f"{TEST_BRATS[0]}_t1", f"{TEST_BRATS[1]}_t2",
                 f"{TEST_BRATS[2]}_flair", f"{TEST_BRATS[3]}_t1ce"):
        rows.append((f"class_{name}", "classify", "", "", subjects[name], "", ""))
    for name in ("mni_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", "stroke_flair_2mm.nrrd"):
        rows.append((f"class_{name.split('.')[0]}", "classify", "", "", samples / name, "", ""))
    rows.append(("class_stroke_T1", "classify", "", "", stroke["T1"], "", ""))
    return rows


def write_manifest(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *[[str(v) for v in row] for row in rows]])
    return path


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def throughput(manifest: Path, out: Path, workers: int) -> dict:
    """Run every job on a fresh local cluster of `workers`; jobs per minute and peak memory per worker."""
    jobs = read_manifest(manifest)
    start = time.perf_counter()
    with dask_client(n_workers=workers) as client:
        records = list(run_on_dask(client, jobs, out))
        elapsed = time.perf_counter() - start
        peaks = client.run(peak_rss_mib)
    write_results(out, records)
    failed = [r["id"] for r in records if r["status"] != "done"]
    return {"workers": workers, "jobs": len(records), "failed": failed, "wall_s": round(elapsed, 1),
            "jobs_per_minute": round(60.0 * len(records) / elapsed, 2),
            "job_seconds_total": round(sum(r["seconds"] for r in records), 1),
            "peak_worker_rss_mib": sorted(round(v, 1) for v in peaks.values())}


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def resume_check(manifest: Path, out: Path, kill_after: int) -> dict:
    """Kill the client (and its cluster) after `kill_after` jobs, run the same command again."""
    command = [sys.executable, "-m", "dlreg", "batch", str(manifest), "--output", str(out), "--workers", "2",
               "--progress", "json"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    done = 0
    for line in first.stderr:
        done += line.startswith("{") and json.loads(line)["event"] == "job"
        if done >= kill_after:
            os.killpg(first.pid, signal.SIGKILL)
            break
    first.wait()
    finished = {p.parent.name for p in (out / "jobs").glob("*/record.json")
                if json.loads(p.read_text())["status"] == "done"}
    before = hashes(out / "jobs")
    start = time.perf_counter()
    second = subprocess.run(command, capture_output=True, text=True)
    rerun_s = time.perf_counter() - start
    events = [json.loads(line) for line in second.stderr.splitlines() if line.startswith("{")]
    after = hashes(out / "jobs")
    same = all(after[k] == v for k, v in before.items() if k.split("/")[0] in finished)
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {"killed_after_jobs": done, "finished_before_rerun": len(finished), "rerun_start": events[0],
            "rerun_ran": sum(e["event"] == "job" for e in events), "finished_files_byte_identical": same,
            "rerun_exit_code": second.returncode, "rerun_wall_s": round(rerun_s, 1), "rows": len(rows),
            "status_counts": {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "pending")},
            "failed_rows": {r["id"]: r["reason"] for r in rows if r["status"] == "failed"},
            "partial_files_left": [k for k in after if ".partial-" in k]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default="benchmarks/results/batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--every", type=int, default=1, help="time every K-th job only (default: all 40)")
    parser.add_argument("--skip-resume", action="store_true", help="only the throughput runs")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out).absolute()
    rows = cohort_rows(data)
    missing = [str(p) for row in rows for p in row[2:5] if p and not Path(p).is_file()]
    if missing:
        sys.exit(f"development data missing (--data): {missing[:3]}")
    manifest = write_manifest(out / f"throughput_every{args.every}.csv", rows[::args.every])
    report = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg(), "every": args.every, "runs": []}
    if not args.skip_resume:
        corrupt = out / "inputs" / "half_copied_t2.nrrd"
        corrupt.parent.mkdir(parents=True, exist_ok=True)
        whole = (SAMPLE_DATA_DIR / "stroke_t2_2mm.nrrd").read_bytes()
        corrupt.write_bytes(whole[: len(whole) // 2])
        bad = [("corrupt_input", "register3d", SAMPLE_DATA_DIR / "stroke_t1_2mm.nrrd", corrupt, "", "", ""),
               ("missing_input", "register3d", SAMPLE_DATA_DIR / "stroke_t1_2mm.nrrd", out / "inputs" / "gone.nrrd",
                "", "", "")]
        resume_manifest = write_manifest(out / "cohort42.csv", rows + bad)
        resume_out = out / "resume"
        shutil.rmtree(resume_out, ignore_errors=True)
        report["resume"] = resume_check(resume_manifest, resume_out, kill_after=len(rows) // 2)
        print(json.dumps(report["resume"]), flush=True)
    for workers in args.workers:
        report["runs"].append(throughput(manifest, out / f"run_{workers}w", workers))
        print(json.dumps(report["runs"][-1]), flush=True)
    rates = {run["workers"]: run["jobs_per_minute"] for run in report["runs"]}
    if 1 in rates and 2 in rates:
        report["speedup_2_over_1"] = round(rates[2] / rates[1], 2)
    report["load_average_end"] = os.getloadavg()
    (out / "benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("runs", "resume")}))


if __name__ == "__main__":
    main()
