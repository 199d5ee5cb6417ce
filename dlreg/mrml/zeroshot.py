"""ZeroShotRegistration on scene nodes: volumes in, transform/volume/heatmap/table nodes out.

The one function the module's logic calls. Input nodes are read, never
changed; results go to new nodes or to the output nodes the caller gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer.util

from dlreg.mrml.display import show_overlay
from dlreg.mrml.transforms import transform_node_from_matrix
from dlreg.mrml.volumes import image_from_volume_node, volume_node_from_image
from dlreg.progress import ProgressCallback
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
    result: SlicewiseResult

    def summary_text(self) -> str:
        """A few lines for the module's result box."""
        single = self.result.single
        if single is None:
            return (f"{len(self.result.slices)} {self.result.plane} slices registered "
                    f"({len(self.result.skipped)} skipped: blank or too little anatomy): "
                    f"one transform per slice in table '{self.table_node.GetName()}'")
        r = single.result
        lines = [f"slice {single.slice_index}: predicted grid error "
                 f"{r.uncertainty_summary.get('predicted_grid_error_px', float('nan')):.2f} px, "
                 f"{r.elapsed_s:.2f} s ({r.mode} mode, {r.estimator} estimator)"]
        lines += [f"{m}: {r.metrics_before[m]:.3f} -> {r.metrics_after[m]:.3f}" for m in METRICS]
        return "\n".join(lines)


def register_nodes(fixed_node, moving_node, *, slice_axis: str = "axial", slice_index: SliceChoice = None,
                   output_transform=None, output_volume=None, output_uncertainty=None,
                   show: bool = True, progress: ProgressCallback | None = None,
                   **options) -> ZeroShotNodeResult:
    """Register two volume nodes slice-wise; `options` go to `dlreg.zeroshot.register_arrays`.

    With `show`, the uncertainty heatmap is shown over the fixed volume in all
    slice views (heat colours, 50% opacity).
    """
    scene = fixed_node.GetScene()
    result = register_images(image_from_volume_node(fixed_node), image_from_volume_node(moving_node),
                             plane=slice_axis, slice_index=slice_index, progress=progress, **options)
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
    if show:
        show_overlay(fixed_node, uncertainty, opacity=0.5)
    return ZeroShotNodeResult(transform, volume, uncertainty, table, result)


def _results_table(scene, result: SlicewiseResult, name: str):
    """One row per registered slice: parameters, their variance, uncertainty, metrics, time."""
    columns = {"slice": [s.slice_index for s in result.slices]}
    for i, key in enumerate(PARAM_ORDER):
        columns[key] = [s.result.params[i] for s in result.slices]
    for i, key in enumerate(PARAM_ORDER):
        columns[f"var_{key}"] = [s.result.param_variance[i] for s in result.slices]
    columns["predicted_error_px"] = [s.result.uncertainty_summary.get("predicted_grid_error_px", np.nan)
                                     for s in result.slices]
    for metric in METRICS:
        columns[f"{metric}_before"] = [s.result.metrics_before[metric] for s in result.slices]
        columns[f"{metric}_after"] = [s.result.metrics_after[metric] for s in result.slices]
    columns["seconds"] = [s.result.elapsed_s for s in result.slices]
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    slicer.util.updateTableFromArray(table, [np.asarray(v, float) for v in columns.values()],
                                     list(columns))
    return table
