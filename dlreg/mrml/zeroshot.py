"""ZeroShotRegistration on scene nodes: volumes in, transform/volume/heatmap/table nodes out.

The one function the module's logic calls. Input nodes are read, never
changed; results go to new nodes or to the output nodes the caller gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer.util

from dlreg.mrml.transforms import transform_node_from_matrix
from dlreg.mrml.volumes import image_from_volume_node, volume_node_from_image
from dlreg.progress import ProgressCallback
from dlreg.zeroshot.options import ZeroShotOptions
from dlreg.zeroshot.pipeline import PARAM_ORDER
from dlreg.zeroshot.slicewise import SliceChoice, SlicewiseResult, register_images

METRICS = ("dice", "ssim", "mi", "mse")


@dataclass
class ZeroShotNodeResult:
    """Output nodes of one run and the core result behind them."""

    transform_node: object | None  # None when several slices each have their own transform
    output_volume: object
    uncertainty_volume: object
    table_node: object
    registration: SlicewiseResult

    def summary_text(self) -> str:
        """A few lines for the module's result box."""
        single = self.registration.single
        if single is None:
            return (f"{len(self.registration.slices)} {self.registration.plane} slices registered "
                    f"({len(self.registration.skipped)} skipped: blank or too little anatomy): "
                    f"one transform per slice in table '{self.table_node.GetName()}'")
        r = single.in_plane
        lines = [f"slice {single.slice_index}: predicted grid error "
                 f"{r.uncertainty_summary.get('predicted_grid_error_px', float('nan')):.2f} px, "
                 f"{r.elapsed_s:.2f} s ({r.mode} mode, {r.estimator} estimator)"]
        lines += [f"{m}: {r.metrics_before[m]:.3f} -> {r.metrics_after[m]:.3f}" for m in METRICS]
        return "\n".join(lines)


def register_nodes(fixed_node, moving_node, options: ZeroShotOptions | None = None, *,
                   slice_index: SliceChoice = None, output_transform=None, output_volume=None,
                   output_uncertainty=None, progress: ProgressCallback | None = None,
                   **changes) -> ZeroShotNodeResult:
    """Register two volume nodes slice-wise (`dlreg.zeroshot.slicewise.register_images`).

    Creates (or fills the given) output nodes and changes nothing else: showing a result
    in the slice views is a separate step (`dlreg.mrml.display.show_overlay`).
    """
    scene = fixed_node.GetScene()
    result = register_images(image_from_volume_node(fixed_node), image_from_volume_node(moving_node),
                             options, slice_index=slice_index, progress=progress, **changes)
    transform = None
    if result.single is not None:
        transform = transform_node_from_matrix(result.single.matrix, fixed_node, moving_node,
                                               name=f"{moving_node.GetName()} to {fixed_node.GetName()}",
                                               node=output_transform)
    volume = volume_node_from_image(result.resampled, f"{moving_node.GetName()} registered",
                                    scene=scene, node=output_volume)
    uncertainty = volume_node_from_image(result.uncertainty, f"{moving_node.GetName()} uncertainty",
                                         scene=scene, node=output_uncertainty)
    table = _results_table(scene, result, f"{moving_node.GetName()} registration")
    return ZeroShotNodeResult(transform, volume, uncertainty, table, result)


def _results_table(scene, result: SlicewiseResult, name: str):
    """One row per registered slice: parameters, their variance, uncertainty, metrics, time."""
    columns = {"slice": [s.slice_index for s in result.slices]}
    for i, key in enumerate(PARAM_ORDER):
        columns[key] = [s.in_plane.params[i] for s in result.slices]
    for i, key in enumerate(PARAM_ORDER):
        columns[f"var_{key}"] = [s.in_plane.param_variance[i] for s in result.slices]
    columns["predicted_error_px"] = [s.in_plane.uncertainty_summary.get("predicted_grid_error_px", np.nan)
                                     for s in result.slices]
    for metric in METRICS:
        columns[f"{metric}_before"] = [s.in_plane.metrics_before[metric] for s in result.slices]
        columns[f"{metric}_after"] = [s.in_plane.metrics_after[metric] for s in result.slices]
    columns["seconds"] = [s.in_plane.elapsed_s for s in result.slices]
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slicer.util.updateTableFromArray(table, [np.asarray(v, float) for v in columns.values()],
                                     list(columns))
    return table
