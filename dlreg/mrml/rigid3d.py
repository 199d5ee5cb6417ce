"""RigidDCNNRegistration on scene nodes: two volumes in, transform/volume/table nodes out.

`register_nodes` runs the registration in this process (the module's Logic for the Python
console and batch mode); `add_outputs` makes the same output nodes from a result's JSON and
the resampled image, so a run in a background process (`dlreg.mrml.jobs`) ends in the same
nodes. Input nodes are read, never changed (not even their parent transform). The transform
node holds the fixed -> moving mapping as its transform *from parent*, so applying it to the
moving volume lays the moving volume over the fixed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import SimpleITK as sitk
import vtk

from dlreg.errors import InputImageError
from dlreg.imaging.resample import resample_to
from dlreg.mrml.modality import node_dicom_metadata
from dlreg.mrml.transforms import transform_node_from_matrix
from dlreg.mrml.volumes import image_from_volume_node, volume_node_steps
from dlreg.options import resolve
from dlreg.progress import ProgressCallback
from dlreg.rigid3d.options import RigidOptions


@dataclass
class RigidNodeResult:
    """Output nodes of one run, the result's JSON (`RigidResult.to_json()`) and the nodes used as
    fixed and moving (swapped from the input order when the modality classifier chose)."""

    transform_node: object
    output_volume: object
    table_node: object
    payload: dict
    fixed_node: object
    moving_node: object

    @property
    def matrix(self) -> np.ndarray:
        """The fixed -> moving LPS 4x4."""
        return np.asarray(self.payload["matrix_lps_fixed_to_moving"])

    @property
    def likely_failed(self) -> bool:
        return bool(self.payload.get("likely_failed"))

    def summary_text(self) -> str:
        """A few lines for the module's result box."""
        payload = self.payload
        p, u, m = payload["parameters"], payload["uncertainty"], payload["metrics"]
        lines = [f"fixed '{self.fixed_node.GetName()}', moving '{self.moving_node.GetName()}'"
                 + (" (chosen by the modality classifier)" if payload.get("ordering") else ""),
                 f"rotation (deg) {p['rx_deg']:.2f} {p['ry_deg']:.2f} {p['rz_deg']:.2f}, "
                 f"translation (mm) {p['tx_mm']:.2f} {p['ty_mm']:.2f} {p['tz_mm']:.2f}",
                 f"uncertainty {u['rotation_deg']:.2f} deg, {u['corner_mm']:.2f} mm at the head box corners",
                 "  ".join(f"{k} {v:.3f}" for k, v in m.items()),
                 f"{payload['seconds']:.1f} s, pre-alignment {payload['prealignment']}, "
                 f"refinement {'on' if payload['refined'] else 'off'}"]
        if self.likely_failed:
            lines.append("LIKELY FAILED: " + "; ".join(payload["failure_reasons"]))
        return "\n".join(lines)


def register_nodes(fixed_node, moving_node, options: RigidOptions | None = None, *,
                   output_transform=None, output_volume=None, progress: ProgressCallback | None = None,
                   **changes) -> RigidNodeResult:
    """Rigidly register two scalar volume nodes with `dlreg.rigid3d.register_images`.

    With order "auto" the modality classifier orders the two nodes (MR T1 fixed, CT moving,
    as in the paper, using the nodes' DICOM attributes when present); `fixed_node` and
    `moving_node` are then just the pair, and the result names the fixed and moving nodes.
    """
    from dlreg.rigid3d.pipeline import register_images  # torch: only when registering in this process

    opts = resolve(RigidOptions, options, changes)
    check_pair(fixed_node, moving_node)
    fixed, moving = image_from_volume_node(fixed_node), image_from_volume_node(moving_node)
    dicom = tuple(node_dicom_metadata(n) or None for n in (fixed_node, moving_node))
    result = register_images(fixed, moving, opts, progress=progress, dicom=dicom)
    if result.swapped:
        fixed, moving = moving, fixed
    return add_outputs(fixed_node, moving_node, result.to_json(), resample_to(moving, fixed, result.matrix),
                       output_transform=output_transform, output_volume=output_volume)


def check_pair(fixed_node, moving_node) -> None:
    """Two distinct volume nodes, or an InputImageError."""
    if fixed_node is None or moving_node is None:
        raise InputImageError("two volume nodes are needed")
    if fixed_node is moving_node:
        raise InputImageError("the fixed and moving volumes are the same node")


def add_outputs(fixed_node, moving_node, payload: dict, resampled: sitk.Image, **outputs) -> RigidNodeResult:
    """The output nodes of a result (nodes in input order; `payload["swapped"]` swaps them)."""
    *_, result = output_steps(fixed_node, moving_node, payload, resampled, **outputs)
    return result


def output_steps(fixed_node, moving_node, payload: dict, resampled: sitk.Image, *, output_transform=None,
                 output_volume=None) -> Iterator[RigidNodeResult | None]:
    """`add_outputs` one node group at a time: yields None between steps and the result last."""
    if payload.get("swapped"):
        fixed_node, moving_node = moving_node, fixed_node
    volume = yield from volume_node_steps(resampled, f"{moving_node.GetName()} registered", fixed_node.GetScene(),
                                          output_volume)
    yield None
    name = f"{moving_node.GetName()} to {fixed_node.GetName()}"
    matrix = np.asarray(payload["matrix_lps_fixed_to_moving"])
    transform = transform_node_from_matrix(matrix, fixed_node, moving_node, name=name, node=output_transform)
    table = _results_table(fixed_node.GetScene(), payload, f"{name} rigid registration")
    yield RigidNodeResult(transform, volume, table, payload, fixed_node, moving_node)


def result_rows(payload: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows: parameters, uncertainty, metrics, time, flags."""
    rows = [(key, f"{payload['parameters'][key]:.4f}")
            for key in ("rx_deg", "ry_deg", "rz_deg", "tx_mm", "ty_mm", "tz_mm")]
    rows.append(("center_lps_mm", " ".join(f"{v:.2f}" for v in payload["parameters"]["center_lps_mm"])))
    rows += [(f"uncertainty_{k}", f"{v:.4f}" if isinstance(v, float) else str(v))
             for k, v in payload["uncertainty"].items()]
    rows += [(k, f"{v:.4f}") for k, v in payload["metrics"].items()]
    rows += [("seconds", f"{payload['seconds']:.3f}"), ("prealignment", payload["prealignment"]),
             ("estimator", payload["estimator"]),
             ("refined", str(payload["refined"])), ("likely_failed", str(payload["likely_failed"])),
             ("failure_reasons", "; ".join(payload["failure_reasons"]))]
    rows.append(("matrix_lps_fixed_to_moving",
                 " ".join(f"{v:.6g}" for v in np.asarray(payload["matrix_lps_fixed_to_moving"]).ravel())))
    return rows


def _results_table(scene, payload: dict, name: str):
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    for column in ("Quantity", "Value"):
        table.AddColumn(vtk.vtkStringArray()).SetName(column)
    for quantity, value in result_rows(payload):
        row = table.AddEmptyRow()
        table.SetCellText(row, 0, quantity)
        table.SetCellText(row, 1, value)
    return table
