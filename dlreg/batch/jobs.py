"""One batch job: a task, its input paths and its options, and the identity that makes a run resumable.

A job is identified by its manifest row (id, task, inputs, slice) and its options: `Job.key`
hashes them, so re-running a manifest recognises finished jobs and redoes a job whose row or
options changed. Jobs hold paths, never images: the worker that runs a job reads its inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

from dlreg.modality.options import ModalityOptions
from dlreg.options import Options
from dlreg.rigid3d.options import RigidOptions
from dlreg.zeroshot.options import ZeroShotOptions

# Task name -> its options class (the single definition of each option).
TASK_OPTIONS: dict[str, type[Options]] = {
    "register3d": RigidOptions,
    "register2d": ZeroShotOptions,
    "classify": ModalityOptions,
}
REGISTRATION_TASKS = ("register3d", "register2d")
KEY_VERSION = 1  # bump when the meaning of a job's outputs changes


@dataclass(frozen=True)
class Job:
    """A registration (fixed, moving) or classification (image) of absolute paths, with its options."""

    id: str
    task: str
    options: Options
    fixed: Optional[str] = None
    moving: Optional[str] = None
    image: Optional[str] = None
    slice: Optional[int] = None      # register2d: the fixed volume's slice in the options' plane
    save_image: bool = False         # registrations: also write the moving image resampled on the fixed grid

    @property
    def inputs(self) -> dict[str, str]:
        """The input paths by role (fixed, moving or image)."""
        roles = ("fixed", "moving") if self.task in REGISTRATION_TASKS else ("image",)
        return {role: getattr(self, role) for role in roles}

    @property
    def key(self) -> str:
        """Hex digest of the row and the options: equal keys mean the same outputs."""
        identity = {"version": KEY_VERSION, "id": self.id, "task": self.task, "inputs": self.inputs,
                    "slice": self.slice, "options": self.options.to_dict(), "save_image": self.save_image}
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def base_record(job: Job) -> dict:
    """The fields every job's record has, before the job runs (status pending)."""
    return {"id": job.id, "task": job.task, "key": job.key, "status": "pending", "reason": "",
            **job.inputs, "slice": job.slice, "options": job.options.to_dict(), "files": {}}


@dataclass(frozen=True)
class RowFailure:
    """A manifest row that cannot become a job; it is reported with its reason and never run."""

    id: str
    task: str
    reason: str
    inputs: dict
