"""RigidDCNNRegistration on scene nodes: two volumes in, transform/volume/table nodes out.

The one function the module's logic calls. Input nodes are read, never changed (not even
their parent transform); results go to new nodes or to the output nodes the caller gives.
The transform node holds the fixed -> moving mapping as its transform *from parent*, so
applying it to the moving volume lays the moving volume over the fixed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vtk

from dlreg.errors import InputImageError
from dlreg.mrml.modality import node_dicom_metadata
from dlreg.mrml.transforms import resampled_volume_node, transform_node_from_matrix
from dlreg.mrml.volumes import image_from_volume_node
from dlreg.options import resolve
from dlreg.progress import ProgressCallback
from dlreg.rigid3d.options import RigidOptions
from dlreg.rigid3d.pipeline import RigidResult, register_images


@dataclass
class RigidNodeResult:
    """Output nodes of one run, the core result behind them and the fixed/moving choice."""

    transform_node: object
    output_volume: object
    table_node: object
    registration: RigidResult
    fixed_node: object
    moving_node: object

    def summary_text(self) -> str:
        """A few lines for the module's result box."""
        payload = self.registration.to_json()
        p, u, m = payload["parameters"], payload["uncertainty"], payload["metrics"]
        lines = [f"fixed '{self.fixed_node.GetName()}', moving '{self.moving_node.GetName()}'"
                 + (" (chosen by the modality classifier)" if self.registration.ordering else ""),
                 f"rotation (deg) {p['rx_deg']:.2f} {p['ry_deg']:.2f} {p['rz_deg']:.2f}, "
                 f"translation (mm) {p['tx_mm']:.2f} {p['ty_mm']:.2f} {p['tz_mm']:.2f}",
                 f"uncertainty {u['rotation_deg']:.2f} deg, {u['corner_mm']:.2f} mm at the head box corners",
                 "  ".join(f"{k} {v:.3f}" for k, v in m.items()),
                 f"{payload['seconds']:.1f} s, pre-alignment {payload['prealignment']}, "
                 f"refinement {'on' if payload['refined'] else 'off'}"]
        if self.registration.likely_failed:
            lines.append("LIKELY FAILED: " + "; ".join(self.registration.failure_reasons))
        return "\n".join(lines)


def register_nodes(fixed_node, moving_node, options: RigidOptions | None = None, *,
                   output_transform=None, output_volume=None, progress: ProgressCallback | None = None,
                   **changes) -> RigidNodeResult:
    """Rigidly register two scalar volume nodes with `dlreg.rigid3d.register_images`.

    With order "auto" the modality classifier orders the two nodes (MR T1 fixed, CT moving,
    as in the paper, using the nodes' DICOM attributes when present); `fixed_node` and
    `moving_node` are then just the pair, and the result names the fixed and moving nodes.
    """
    opts = resolve(RigidOptions, options, changes)
    if fixed_node is None or moving_node is None:
        raise InputImageError("two volume nodes are needed")
    if fixed_node is moving_node:
        raise InputImageError("the fixed and moving volumes are the same node")
    dicom = (node_dicom_metadata(fixed_node), node_dicom_metadata(moving_node))
    result = register_images(image_from_volume_node(fixed_node), image_from_volume_node(moving_node), opts,
                             progress=progress, dicom=tuple(d or None for d in dicom))
    if result.swapped:
        fixed_node, moving_node = moving_node, fixed_node
    name = f"{moving_node.GetName()} to {fixed_node.GetName()}"
    transform = transform_node_from_matrix(result.matrix, fixed_node, moving_node, name=name,
                                           node=output_transform)
    volume = resampled_volume_node(moving_node, fixed_node, result.matrix, node=output_volume)
    table = _results_table(fixed_node.GetScene(), result, f"{name} rigid registration")
    return RigidNodeResult(transform, volume, table, result, fixed_node, moving_node)


def result_rows(result: RigidResult) -> list[tuple[str, str]]:
    """(quantity, value) rows: parameters, uncertainty, metrics, time, flags."""
    payload = result.to_json()
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
                 " ".join(f"{v:.6g}" for v in np.asarray(result.matrix).ravel())))
    return rows


def _results_table(scene, result: RigidResult, name: str):
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    for column in ("Quantity", "Value"):
        table.AddColumn(vtk.vtkStringArray()).SetName(column)
    for quantity, value in result_rows(result):
        row = table.AddEmptyRow()
        table.SetCellText(row, 0, quantity)
        table.SetCellText(row, 1, value)
    return table
