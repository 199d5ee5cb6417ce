"""Does the window stay responsive? The longest gap between event-loop turns during a 3D registration.

The Slicer modules run registrations through `dlreg.mrml.jobs.JobRunner`: input volumes written
one per event-loop turn, `python -m dlreg register3d` in a QProcess, outputs loaded back one per
turn. Here the same runner drives a real Qt event loop (PySide6's QCoreApplication, the harness
of this measurement; Slicer's own loop is PythonQt's) on a real MRML scene (slicer-core) with
two 1 mm BraTS volumes (240 x 240 x 155), while a 10 ms QTimer records the time between its
ticks: the longest gap is the longest the window would go without processing events (target:
0.2 s). Baseline in the same run: the in-process path the modules used before (the Logic on
the main thread), whose gap is the whole registration.

    .venv/bin/python benchmarks/slicer_background.py [--data DATA] [--repeats 3]

Writes benchmarks/results/slicer_background.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from devdata import DEFAULT_DATA  # noqa: E402
from PySide6.QtCore import QCoreApplication, QProcess, QProcessEnvironment, QTimer  # noqa: E402

from dlreg.imaging.io import read_image  # noqa: E402
from dlreg.mrml.jobs import JobRunner, rigid_job  # noqa: E402
from dlreg.mrml.rigid3d import register_nodes  # noqa: E402
from dlreg.mrml.scene import create_scene  # noqa: E402
from dlreg.mrml.volumes import volume_node_from_image  # noqa: E402
from dlreg.rigid3d.options import RigidOptions  # noqa: E402

FIXED = "brats_gli_00001_000/BraTS-GLI-00001-000-t1n.nii.gz"
MOVING = "brats_gli_00001_000/BraTS-GLI-00001-000-t2w.nii.gz"
TICK_MS = 10


class Ticks:
    """A QTimer's tick times: the gaps between them are the event loop's blocked spans."""

    def __init__(self) -> None:
        self.times = [time.perf_counter()]
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.timer.start(TICK_MS)

    def longest_gap(self) -> tuple[float, float]:
        """(the longest gap in seconds, when it began)."""
        self.timer.stop()
        self.times.append(time.perf_counter())
        return max((b - a, a) for a, b in zip(self.times, self.times[1:]))


class QtHost:
    """JobHost on PySide6 (the modules use the same calls through PythonQt)."""

    def __init__(self) -> None:
        self.runner: JobRunner | None = None
        self.process: QProcess | None = None

    def defer(self, step) -> None:
        QTimer.singleShot(0, step)

    def start_process(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        self.process = QProcess()
        environment = QProcessEnvironment()
        for key, value in env.items():
            environment.insert(key, value)
        self.process.setProcessEnvironment(environment)
        self.process.setWorkingDirectory(cwd)
        self.process.readyReadStandardOutput.connect(
            lambda: self.runner.stdout(bytes(self.process.readAllStandardOutput().data())))
        self.process.readyReadStandardError.connect(
            lambda: self.runner.stderr(bytes(self.process.readAllStandardError().data())))
        self.process.finished.connect(lambda code, status: self.runner.finished(int(code)))
        self.process.start(command[0], command[1:])

    def kill_process(self) -> None:
        if self.process is not None:
            self.process.kill()


def background_run(app: QCoreApplication, fixed, moving, options: RigidOptions) -> dict:
    """One registration through JobRunner in the event loop; its longest gap and seconds."""
    host, outcome, phases = QtHost(), {}, []
    start = time.perf_counter()
    ticks = Ticks()
    runner = JobRunner(rigid_job(fixed, moving, options), host, lambda f, m: phases.append((time.perf_counter(), m)),
                       lambda result: (outcome.setdefault("result", result), app.quit()),
                       lambda message: (outcome.setdefault("error", message), app.quit()))
    host.runner = runner
    QTimer.singleShot(0, runner.start)
    app.exec()
    gap, began = ticks.longest_gap()
    if "error" in outcome:
        raise SystemExit(f"the background run failed: {outcome['error']}")
    during = [message for when, message in phases if when <= began][-1:] or ["before the first step"]
    return {"longest_gap_s": gap, "longest_gap_during": during[0], "seconds": time.perf_counter() - start,
            "ticks": len(ticks.times)}


def in_process_run(app: QCoreApplication, fixed, moving, options: RigidOptions) -> dict:
    """The same registration on the main thread (the modules' earlier path)."""
    start = time.perf_counter()
    ticks = Ticks()
    QTimer.singleShot(0, lambda: (register_nodes(fixed, moving, options), app.quit()))
    app.exec()
    return {"longest_gap_s": ticks.longest_gap()[0], "seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    app = QCoreApplication(sys.argv[:1])
    QTimer.singleShot(0, app.quit)  # the harness's first loop start (plugin loading) is not Slicer's cost
    app.exec()
    context = create_scene()
    fixed = volume_node_from_image(read_image(args.data / FIXED), "t1n", scene=context.scene)
    moving = volume_node_from_image(read_image(args.data / MOVING), "t2w", scene=context.scene)
    options = RigidOptions()
    rows = {"background": [background_run(app, fixed, moving, options) for _ in range(args.repeats)],
            "in_process": [in_process_run(app, fixed, moving, options)]}
    context.close()
    summary = {name: {"longest_gap_s": max(r["longest_gap_s"] for r in runs),
                      "median_seconds": sorted(r["seconds"] for r in runs)[len(runs) // 2]}
               for name, runs in rows.items()}
    result = {"summary": summary, "runs": rows, "load_average": os.getloadavg(),
              "volumes": [FIXED, MOVING], "tick_ms": TICK_MS}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slicer_background.json").write_text(json.dumps(result, indent=1))
    print("| path | longest event-loop gap | seconds (median) |\n|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['longest_gap_s']:.3f} s | {s['median_seconds']:.1f} |")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
