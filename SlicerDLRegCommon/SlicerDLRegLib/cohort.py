"""A cohort from Slicer's Python console: `runCohort("cohort.csv", "cohort-out")`.

The batch runs as `PythonSlicer -m dlreg batch ...` in a child process, as the modules' runs do:
its lines go to the Python console while the window keeps processing events, and the call
returns when the cohort is done (its exit status and the QC report's path). A cohort that
outgrows this machine goes to an existing Dask cluster with `scheduler=`.
"""

import subprocess
from pathlib import Path
from typing import Optional

import slicer

BATCH_PACKAGES = {"dask": "dask[distributed]>=2024.1", "tqdm": "tqdm>=4.60"}


def runCohort(manifest: str, output: str, scheduler: Optional[str] = None, interactive: bool = False) -> tuple:
    """Run a batch manifest; returns (exit status, path of report.html). Exit 0: every job done;
    3: some jobs failed (results.csv says which and why); 2: nothing ran."""
    from SlicerDLRegLib.dependencies import ensureDependencies

    ensureDependencies(interactive, extra=BATCH_PACKAGES)
    from dlreg.mrml.jobs import child_environment, python_executable
    from dlreg.progress import parse_progress_line

    command = [python_executable(), "-m", "dlreg", "batch", str(manifest), "--output", str(output),
               "--progress", "json"]
    if scheduler:
        command += ["--scheduler", scheduler]
    process = subprocess.Popen(command, env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    for line in process.stdout:
        event = parse_progress_line(line)
        print(f"{100 * event[0]:3.0f}% {event[1]}" if event else line.rstrip())
        slicer.app.processEvents()
    return process.wait(), Path(output) / "report.html"
