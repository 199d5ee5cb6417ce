"""Background runs for the Slicer modules: `python -m dlreg` in a child process, on scene nodes.

Why a child process: the registration then never holds Slicer's main thread (nor its Python
interpreter lock), Cancel is a kill that always works, and torch is imported by the child
only. A `NodeJob` writes its input nodes to a temporary folder, names the command that works
there (progress as JSON lines on stderr, `dlreg.progress.json_progress`; the result as JSON on
stdout), and turns the outputs back into nodes with the same `add_outputs` as a run in this
process. `JobRunner` drives one job from an event loop without blocking it: every file
written or read and every node made is one step, scheduled through the host's `defer`, so
the loop repaints between steps (one 1 mm head volume is tens of milliseconds).

The host (`JobHost`) is the small Qt-specific part: a QProcess and a zero-delay timer in
Slicer (SlicerDLRegLib), a plain subprocess in `run_job` (tests, scripts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import SimpleITK as sitk

from dlreg.errors import CancelledError, DLRegError
from dlreg.imaging.io import read_image
from dlreg.mrml.volumes import volume_image
from dlreg.options import Options
from dlreg.progress import ProgressCallback, parse_progress_line

Steps = Iterator[None]
# The share of a run's progress bar that the child's own reports fill (the rest: files and nodes).
CHILD_SPAN = (0.05, 0.95)


@dataclass
class NodeJob:
    """One background run: its arguments after `python -m dlreg`, its folder, its steps.

    `inputs` writes the input files (one yield per file); `outputs(payload)` makes the
    result nodes from the command's JSON (one yield per file read or node group made) and
    leaves the module-level result in `result`.
    """

    arguments: list[str]
    folder: Path
    inputs: Callable[[], Steps]
    outputs: Callable[[dict], Steps]
    result: object = None

    def command(self, python: str | None = None) -> list[str]:
        """The full command line (`python` defaults to `python_executable()`)."""
        return [python or python_executable(), "-m", "dlreg", "--progress", "json", *self.arguments]

    def cleanup(self) -> None:
        """Remove the temporary folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def python_executable() -> str:
    """Slicer's PythonSlicer where it exists (inside Slicer, sys.executable is the application), else
    this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def child_environment() -> dict[str, str]:
    """This process's environment with the folder holding `dlreg` first on PYTHONPATH."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env


def option_arguments(options: Options, exclude: Sequence[str] = ()) -> list[str]:
    """Command-line arguments that give a command exactly these options (but `exclude`)."""
    out = []
    for name, value in options.to_dict().items():
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            out += [flag, str(value)]
    return out


def new_folder() -> Path:
    """A fresh temporary folder for one job."""
    return Path(tempfile.mkdtemp(prefix="dlreg-job-"))


def write_volume(node, path: Path) -> None:
    """A volume node as an uncompressed NRRD, its voxels in their own type (one copy; the child checks them)."""
    sitk.WriteImage(volume_image(node), str(path), useCompression=False)


def _last_steps(steps: Iterator, job: NodeJob) -> Steps:
    """Run `steps` (None between them, the result last), keeping the last value as the job's result."""
    for value in steps:
        job.result = value
        yield


def zeroshot_job(fixed_node, moving_node, options, *, slice_index=None, outputs: dict | None = None) -> NodeJob:
    """`register2d` on two volume nodes; the result is a ZeroShotNodeResult (`dlreg.mrml.zeroshot`)."""
    from dlreg.mrml.zeroshot import output_steps

    folder = new_folder()
    arguments = ["register2d", str(folder / "fixed.nrrd"), str(folder / "moving.nrrd"), "--output-transform",
                 str(folder / "t.tfm"), "--output-image", str(folder / "registered.nrrd"),
                 "--output-uncertainty", str(folder / "uncertainty.nrrd"), "--json", *option_arguments(options)]
    if slice_index is not None:
        arguments += ["--slice", str(slice_index)]

    def inputs() -> Steps:
        write_volume(fixed_node, folder / "fixed.nrrd")
        yield
        write_volume(moving_node, folder / "moving.nrrd")
        yield

    def make_outputs(payload: dict) -> Steps:
        registered = read_image(folder / "registered.nrrd", validate=False)  # our own output
        yield
        uncertainty = read_image(folder / "uncertainty.nrrd", validate=False)  # all zero when n_uncertainty < 2
        yield
        yield from _last_steps(output_steps(fixed_node, moving_node, payload, registered, uncertainty, **_node_outputs(
            outputs, "output_transform", "output_volume", "output_uncertainty")), job)

    job = NodeJob(arguments, folder, inputs, make_outputs)
    return job


def rigid_job(fixed_node, moving_node, options, *, outputs: dict | None = None) -> NodeJob:
    """`register3d` on two volume nodes; the result is a RigidNodeResult (`dlreg.mrml.rigid3d`)."""
    from dlreg.mrml.modality import node_dicom_metadata
    from dlreg.mrml.rigid3d import check_pair, output_steps

    check_pair(fixed_node, moving_node)
    folder = new_folder()
    paths = [str(folder / "fixed.nrrd"), str(folder / "moving.nrrd")]
    metadata = {p: node_dicom_metadata(n) for p, n in zip(paths, (fixed_node, moving_node))}
    arguments = ["register3d", *paths, "--output-transform", str(folder / "t.tfm"), "--output-image",
                 str(folder / "registered.nrrd"), "--json", *option_arguments(options)]
    if any(metadata.values()):
        arguments += ["--dicom-metadata", str(folder / "dicom.json")]

    def inputs() -> Steps:
        (folder / "dicom.json").write_text(json.dumps(metadata))
        for node, path in zip((fixed_node, moving_node), paths):
            write_volume(node, Path(path))
            yield

    def make_outputs(payload: dict) -> Steps:
        registered = read_image(folder / "registered.nrrd", validate=False)  # our own output
        yield
        yield from _last_steps(output_steps(fixed_node, moving_node, payload, registered,
                                            **_node_outputs(outputs, "output_transform", "output_volume")), job)

    job = NodeJob(arguments, folder, inputs, make_outputs)
    return job


def classify_job(nodes: Sequence, options, *, write_attribute: bool = True, table=None) -> NodeJob:
    """`classify` of volume nodes; the result is the list of ModalityResults, in node order."""
    from dlreg.modality.result import ModalityResult
    from dlreg.mrml.modality import node_dicom_metadata, set_modality_attributes, write_results_table

    if not nodes:
        raise DLRegError("select at least one volume to classify")
    folder = new_folder()
    paths = [str(folder / f"volume{i}.nrrd") for i in range(len(nodes))]
    metadata = {p: node_dicom_metadata(n) for p, n in zip(paths, nodes)}
    arguments = ["classify", *paths, "--json", "--dicom-metadata", str(folder / "dicom.json"),
                 *option_arguments(options, exclude=("prefer_fixed",))]

    def inputs() -> Steps:
        (folder / "dicom.json").write_text(json.dumps(metadata))
        for node, path in zip(nodes, paths):
            write_volume(node, Path(path))
            yield

    def make_outputs(payload: dict) -> Steps:
        results = [ModalityResult.from_json(payload[p]) for p in paths]
        if write_attribute:
            for node, result in zip(nodes, results):
                set_modality_attributes(node, result)
        if table is not None:
            write_results_table(table.GetScene(), [(n.GetName(), r) for n, r in zip(nodes, results)], table=table)
        job.result = results
        yield

    job = NodeJob(arguments, folder, inputs, make_outputs)
    return job


def train_rigid_job(data: str, output_folder: str, *, estimator: str = "keypoints", steps: int = 1500,
                    epochs: int = 30, device: str = "auto") -> NodeJob:
    """`train-rigid` of a folder or CSV of volumes; the result is the path of the weights written."""
    for what, value in (("training data", data), ("output folder", output_folder)):
        if not str(value).strip():
            raise DLRegError(f"choose the {what} first")
    length = ["--steps", str(steps)] if estimator == "keypoints" else ["--epochs", str(epochs)]
    arguments = ["train-rigid", str(data), "--output", str(output_folder), "--estimator", estimator, *length,
                 "--device", device, "--json"]

    def make_outputs(payload: dict) -> Steps:
        job.result = Path(payload["weights"])
        yield

    job = NodeJob(arguments, new_folder(), lambda: iter(()), make_outputs)
    return job


def _node_outputs(outputs: dict | None, *names: str) -> dict:
    return {name: (outputs or {}).get(name) for name in names}


class JobHost(Protocol):
    """What `JobRunner` needs from an event loop: a deferred call and one child process."""

    def defer(self, step: Callable[[], None]) -> None:
        """Call `step` soon, after pending events (Qt: a zero-delay single-shot timer)."""

    def start_process(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        """Start the child; its output comes back through the runner's `stdout`/`stderr`/`finished`."""

    def kill_process(self) -> None:
        """Stop the child now."""


@dataclass
class JobRunner:
    """Drives one NodeJob from an event loop: input steps, the child process, output steps.

    `progress(fraction, message)` receives the whole run's progress (writing the inputs up to
    CHILD_SPAN[0], the child's own reports scaled into CHILD_SPAN, then loading the outputs);
    exactly one of `done(result)` and `failed(message)` is called at the end (not after `cancel`).
    """

    job: NodeJob
    host: JobHost
    progress: Callable[[float, str], object]
    done: Callable[[object], None]
    failed: Callable[[str], None]
    python: str | None = None
    _stdout: bytearray = field(default_factory=bytearray)
    _stderr: str = ""
    _errors: list = field(default_factory=list)
    cancelled: bool = False
    running: bool = False

    def start(self) -> None:
        """Begin: write the inputs one step at a time, then start the child."""
        self.running = True
        self.progress(0.0, "writing the input volumes")
        self._schedule(self.job.inputs(), self._launch)

    def stdout(self, data: bytes) -> None:
        self._stdout += data

    def stderr(self, data: bytes) -> None:
        """Child stderr: progress lines go to `progress`, other lines are kept as the error text."""
        self._stderr += data.decode("utf-8", "replace")
        *lines, self._stderr = self._stderr.split("\n")
        for line in filter(None, (s.strip() for s in lines)):
            event = parse_progress_line(line)
            if event is None:
                self._errors.append(line)
            else:
                low, high = CHILD_SPAN
                self.progress(low + (high - low) * event[0], event[1])

    def finished(self, exit_code: int) -> None:
        """The child ended: read its result and make the nodes, or report its error."""
        if self.cancelled:
            return
        self.stderr(b"\n")
        if exit_code != 0:
            return self._fail(self._errors[-1] if self._errors else f"the background run failed (exit {exit_code})")
        try:
            payload = json.loads(self._stdout.decode("utf-8"))
        except ValueError:
            return self._fail("the background run returned no readable result")
        self.progress(CHILD_SPAN[1], "loading the results")
        self._schedule(self.job.outputs(payload), self._succeed)

    def cancel(self) -> None:
        """Stop at once: kill the child, drop the temporary files; nothing is added to the scene."""
        if not self.running:
            return
        self.cancelled = True
        self.running = False
        self.host.kill_process()
        self.job.cleanup()

    def _launch(self) -> None:
        self.progress(CHILD_SPAN[0], "starting the background run")
        self.host.start_process(self.job.command(self.python), child_environment(), str(self.job.folder))

    def _schedule(self, steps: Steps, then: Callable[[], None]) -> None:
        """Run `steps` one per event-loop turn, then `then`."""
        self.host.defer(lambda: self._advance(steps, then))

    def _advance(self, steps: Steps, then: Callable[[], None]) -> None:
        if self.cancelled:
            return
        try:
            next(steps)
        except StopIteration:
            return then()
        except (DLRegError, OSError, RuntimeError) as exc:
            return self._fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self._schedule(steps, then)

    def _succeed(self) -> None:
        self.progress(1.0, "done")
        self._end(self.done, self.job.result)

    def _fail(self, message: str) -> None:
        self._end(self.failed, message)

    def _end(self, callback: Callable, value) -> None:
        self.running = False
        self.job.cleanup()
        callback(value)


class _SubprocessHost:
    """A JobHost on a plain subprocess and a queue of deferred steps (no GUI)."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []
        self.process: subprocess.Popen | None = None
        self.runner: JobRunner | None = None

    def defer(self, step: Callable[[], None]) -> None:
        self.pending.append(step)

    def start_process(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        self.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        reader = threading.Thread(target=self._read_stdout, daemon=True)
        reader.start()
        for line in self.process.stderr:
            self.runner.stderr(line)
        reader.join()
        self.defer(lambda: self.runner.finished(self.process.wait()))

    def _read_stdout(self) -> None:
        for chunk in iter(lambda: self.process.stdout.read(1 << 16), b""):
            self.runner.stdout(chunk)

    def kill_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_job(job: NodeJob, progress: ProgressCallback | None = None, python: str | None = None) -> object:
    """Run a job to the end in this thread (scripts, tests); returns its result or raises.

    `progress` returning False cancels the run (CancelledError).
    """
    host = _SubprocessHost()
    outcome: dict = {}

    def on_progress(fraction: float, message: str) -> None:
        if progress is not None and progress(fraction, message) is False:
            runner.cancel()
            outcome["cancelled"] = message

    runner = JobRunner(job, host, on_progress, lambda r: outcome.setdefault("result", r),
                       lambda m: outcome.setdefault("error", m), python=python)
    host.runner = runner
    runner.start()
    while host.pending and not runner.cancelled:
        host.pending.pop(0)()
    if "cancelled" in outcome:
        raise CancelledError(f"cancelled by the user at: {outcome['cancelled']}")
    if "error" in outcome:
        raise DLRegError(outcome["error"])
    return outcome["result"]
