"""Run one job where it is scheduled (a Dask worker): read inputs, run the task, write outputs.

Everything a job writes goes to its own folder (`outputs.job_folder`), each file atomically,
`record.json` last. A bad input never stops the batch: a `DLRegError` becomes the job's one-line
reason, and so does any other exception (first line, with its type), because one strange file
must not cost the rest of a cohort. Models come from the pipelines' loaders, which cache them
per process, so a worker loads each model once.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import SimpleITK as sitk
import torch

from dlreg.batch import thumbnails
from dlreg.batch.jobs import Job, base_record
from dlreg.batch.outputs import job_folder, write_record
from dlreg.errors import DLRegError
from dlreg.imaging.io import read_image, write_image
from dlreg.imaging.outputs import atomic_write, remove_partial
from dlreg.imaging.resample import resample_to
from dlreg.imaging.transforms import write_transform
from dlreg.timing import StageClock

THREADS = 1  # per job: a local cluster runs one worker process per core


@contextmanager
def threads_limited(n: int = THREADS) -> Iterator[None]:
    """Run with torch's and SimpleITK's thread counts at `n`, then restore them (a job run in
    the caller's own process leaves its thread settings as they were)."""
    before = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    torch.set_num_threads(n)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before[1])


def run_job(job: Job, output: str) -> dict:
    """Run `job`, write its outputs under OUTPUT/jobs/ID and return its record (also in record.json)."""
    with threads_limited():
        return _run_job(job, output)


def _run_job(job: Job, output: str) -> dict:
    folder = job_folder(output, job.id)
    folder.mkdir(parents=True, exist_ok=True)
    remove_partial(folder)
    start = time.perf_counter()
    record = base_record(job)
    try:
        record.update(TASKS[job.task](job, folder, Path(output)))
        record["status"] = "done"
    except DLRegError as exc:
        record.update(status="failed", reason=_one_line(str(exc)))
    except Exception as exc:  # any failure of one job is that job's reason, not the batch's
        record.update(status="failed", reason=_one_line(f"{type(exc).__name__}: {exc}"))
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    write_record(folder, record)
    return record


def _stage_fields(clock: StageClock) -> dict[str, float]:
    """The job's stage times as record fields, the last stage (writing) closed now."""
    clock.stage("write")
    return {f"{stage}_seconds": round(seconds, 3) for stage, seconds in clock.seconds.items()}


class _Writer:
    """Writes a job's files atomically and remembers them (paths relative to the batch output)."""

    def __init__(self, folder: Path, output: Path) -> None:
        self.folder, self.output, self.files = folder, output, {}

    def write(self, role: str, name: str, writer: Callable[[Path], object]) -> None:
        path = atomic_write(self.folder / name, writer)
        self.files[role] = path.relative_to(self.output).as_posix()

    def pictures(self, pictures: dict[str, np.ndarray]) -> None:
        for role, rgb in pictures.items():
            self.write(f"{role}_png", f"{role}.png", lambda temp, rgb=rgb: thumbnails.write_png(rgb, temp))


def _register3d(job: Job, folder: Path, output: Path) -> dict:
    from dlreg.rigid3d.pipeline import register_images

    clock = StageClock()
    fixed, moving = read_image(job.fixed), read_image(job.moving)
    clock.stage("read")
    result = register_images(fixed, moving, job.options)
    clock.stage("run")
    if result.swapped:
        fixed, moving = moving, fixed
    registered = resample_to(moving, fixed, result.matrix)
    out = _Writer(folder, output)
    out.write("transform", "transform.tfm", lambda temp: write_transform(temp, result.matrix))
    if job.save_image:
        out.write("registered_image", "registered.nrrd", lambda temp: write_image(registered, temp))
    spread = result.uncertainty
    bound = thumbnails.rigid_bound_map(thumbnails.display_grid(fixed), result.center, spread["rotation_deg"],
                                       spread["translation_mm"])
    out.pictures(thumbnails.registration_pictures(fixed, registered, bound, thumbnails.SCALE_3D_MM))
    return {"files": out.files, "uncertainty": spread["corner_mm"], "uncertainty_unit": "mm",
            "rotation_deg": spread["rotation_deg"], "translation_mm": spread["translation_mm"],
            "corner_mm": spread["corner_mm"], "dsc": result.metrics.get("DSC"), "swapped": result.swapped,
            "likely_failed": result.likely_failed, "failure_reasons": list(result.failure_reasons),
            **_stage_fields(clock), "details": result.to_json()}


def _register2d(job: Job, folder: Path, output: Path) -> dict:
    from dlreg.zeroshot.slicewise import register_images

    clock = StageClock()
    fixed, moving = read_image(job.fixed), read_image(job.moving)
    clock.stage("read")
    result = register_images(fixed, moving, job.options, slice_index=job.slice)
    clock.stage("run")
    item = result.single
    matrix = item.matrix
    if fixed.GetSize()[2] == 1 and moving.GetSize()[2] == 1:
        matrix = matrix[np.ix_([0, 1, 3], [0, 1, 3])]  # two 2D images: the in-plane physical transform
    out = _Writer(folder, output)
    out.write("transform", "transform.tfm", lambda temp: write_transform(temp, matrix))
    if job.save_image:
        out.write("registered_image", "registered.nrrd", lambda temp: write_image(result.resampled, temp))
        out.write("uncertainty_image", "uncertainty.nrrd", lambda temp: write_image(result.uncertainty, temp))
    out.pictures(thumbnails.slice_pictures(fixed, result.resampled, result.uncertainty, result.plane,
                                           item.slice_index))
    summary = item.in_plane.uncertainty_summary
    return {"files": out.files, "uncertainty": summary["predicted_grid_error_px"], "uncertainty_unit": "px",
            "grid_error_px": summary["predicted_grid_error_px"], "max_variance_px2": summary["max_variance_px2"],
            "slice": item.slice_index, "likely_failed": item.in_plane.likely_failed,
            "failure_reasons": list(item.in_plane.failure_reasons), **_stage_fields(clock), "details": result.to_json()}


def _classify(job: Job, folder: Path, output: Path) -> dict:
    from dlreg.modality.dicom import read_dicom_metadata
    from dlreg.modality.pipeline import classify_image

    clock = StageClock()
    image = read_image(job.image)
    metadata = read_dicom_metadata(job.image) if Path(job.image).is_dir() else None
    clock.stage("read")
    result = classify_image(image, job.options, dicom_metadata=metadata, name=job.image)
    clock.stage("run")
    out = _Writer(folder, output)
    out.pictures(thumbnails.image_pictures(image))
    return {"files": out.files, "predicted_class": result.label, "confidence": result.confidence,
            "uncertainty": 1.0 - result.confidence, "uncertainty_unit": "1 - confidence",
            "note": result.reason, **_stage_fields(clock), "details": result.to_json()}


TASKS: dict[str, Callable[[Job, Path, Path], dict]] = {
    "register3d": _register3d, "register2d": _register2d, "classify": _classify}


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed without a message"
