"""ZeroShotRegistration on scene nodes: volumes in, transform/volume/heatmap/table nodes out.

`register_nodes` runs the registration in this process (the module's Logic for the Python
console and batch mode); `add_outputs` makes the same output nodes from a result's JSON and
images, so a run in a background process (`dlreg.mrml.jobs`) ends in the same nodes. Input
nodes are read, never changed; nothing is shown in the views (`dlreg.mrml.display` does that
when asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np
import SimpleITK as sitk
import slicer.util

from dlreg.mrml.transforms import transform_node_from_matrix
from dlreg.mrml.volumes import image_from_volume_node, volume_node_steps
from dlreg.progress import ProgressCallback
from dlreg.zeroshot.options import ZeroShotOptions

SliceChoice = Union[int, str, None]  # a slice index, "all", or None for one-slice images

METRICS = ("dice", "ssim", "mi", "mse")


@dataclass
class ZeroShotNodeResult:
    """Output nodes of one run and the result's JSON (`SlicewiseResult.to_json()`)."""

    transform_node: object | None  # None when several slices each have their own transform
    output_volume: object
    uncertainty_volume: object
    table_node: object
    payload: dict

    @property
    def slices(self) -> list[dict]:
        """One JSON result per registered slice."""
        return self.payload.get("slices", [self.payload])

    @property
    def likely_failed(self) -> bool:
        """True when any registered slice is probably wrong."""
        return any(s.get("likely_failed", False) for s in self.slices)

    def summary_text(self) -> str:
        """A few lines for the module's result box."""
        failed = [s for s in self.slices if s.get("likely_failed")]
        if "slices" in self.payload:
            lines = [f"{len(self.slices)} {self.payload['plane']} slices registered "
                     f"({len(self.payload.get('skipped', {}))} skipped: blank or too little anatomy): "
                     f"one transform per slice in table '{self.table_node.GetName()}'"]
            if failed:
                lines.append(f"LIKELY FAILED on {len(failed)} slices: " + ", ".join(str(s["slice"]) for s in failed))
            return "\n".join(lines)
        r = self.payload
        error = r["uncertainty"].get("predicted_grid_error_px", np.nan)
        lines = [f"slice {r['slice']}: predicted grid error {error:.2f} px, {r['elapsed_s']:.2f} s "
                 f"({r['mode']} mode, {r['estimator']} estimator)"]
        lines += [f"{m}: {r['metrics_before'][m]:.3f} -> {r['metrics_after'][m]:.3f}" for m in METRICS]
        if failed:
            lines.append("LIKELY FAILED: " + "; ".join(r.get("failure_reasons", [])))
        return "\n".join(lines)


def register_nodes(fixed_node, moving_node, options: ZeroShotOptions | None = None, *,
                   slice_index: SliceChoice = None, output_transform=None, output_volume=None,
                   output_uncertainty=None, progress: ProgressCallback | None = None,
                   **changes) -> ZeroShotNodeResult:
    """Register two volume nodes slice-wise (`dlreg.zeroshot.slicewise.register_images`)."""
    from dlreg.zeroshot.slicewise import register_images  # torch: only when registering in this process

    result = register_images(image_from_volume_node(fixed_node), image_from_volume_node(moving_node),
                             options, slice_index=slice_index, progress=progress, **changes)
    return add_outputs(fixed_node, moving_node, result.to_json(), result.resampled, result.uncertainty,
                       output_transform=output_transform, output_volume=output_volume,
                       output_uncertainty=output_uncertainty)


def add_outputs(fixed_node, moving_node, payload: dict, resampled: sitk.Image, uncertainty: sitk.Image,
                **outputs) -> ZeroShotNodeResult:
    """The output nodes of a result: new ones, or the given ones filled."""
    *_, result = output_steps(fixed_node, moving_node, payload, resampled, uncertainty, **outputs)
    return result


def output_steps(fixed_node, moving_node, payload: dict, resampled: sitk.Image, uncertainty: sitk.Image, *,
                 output_transform=None, output_volume=None,
                 output_uncertainty=None) -> Iterator[ZeroShotNodeResult | None]:
    """`add_outputs` one node group at a time: yields None between steps and the result last."""
    scene = fixed_node.GetScene()
    volume = yield from volume_node_steps(resampled, f"{moving_node.GetName()} registered", scene, output_volume)
    yield None
    heatmap = yield from volume_node_steps(uncertainty, f"{moving_node.GetName()} uncertainty", scene,
                                           output_uncertainty)
    yield None
    transform = None
    if "slices" not in payload:
        transform = transform_node_from_matrix(np.asarray(payload["matrix_lps_fixed_to_moving"]), fixed_node,
                                               moving_node, name=f"{moving_node.GetName()} to {fixed_node.GetName()}",
                                               node=output_transform)
    table = _results_table(scene, payload.get("slices", [payload]), f"{moving_node.GetName()} registration")
    yield ZeroShotNodeResult(transform, volume, heatmap, table, payload)


def _results_table(scene, slices: list[dict], name: str):
    """One row per registered slice: parameters, their variance, uncertainty, metrics, time, flag."""
    columns = {"slice": [s["slice"] for s in slices]}
    names = list(slices[0]["params"])  # a11, a12, tx, a21, a22, ty
    for key in names:
        columns[key] = [s["params"][key] for s in slices]
    for key in names:
        columns[f"var_{key}"] = [s["param_variance"][key] for s in slices]
    columns["predicted_error_px"] = [s["uncertainty"].get("predicted_grid_error_px", np.nan) for s in slices]
    for metric in METRICS:
        columns[f"{metric}_before"] = [s["metrics_before"][metric] for s in slices]
        columns[f"{metric}_after"] = [s["metrics_after"][metric] for s in slices]
    columns["seconds"] = [s["elapsed_s"] for s in slices]
    columns["likely_failed"] = [float(s.get("likely_failed", False)) for s in slices]
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slicer.util.updateTableFromArray(table, [np.asarray(v, float) for v in columns.values()], list(columns))
    return table
