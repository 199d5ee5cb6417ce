"""Show a heatmap (e.g. registration uncertainty) over a background volume in every slice view."""

from __future__ import annotations

import numpy as np
import slicer.util

# Present both in the Slicer application and in slicer-core, in order of preference.
HEAT_COLOR_NODE_IDS = ("vtkMRMLPETProceduralColorNodePET-Heat", "vtkMRMLColorTableNodeIron")


def heat_color_node_id(scene) -> str:
    """The first available heat colour table of the scene."""
    for node_id in HEAT_COLOR_NODE_IDS:
        if scene.GetNodeByID(node_id) is not None:
            return node_id
    raise RuntimeError("no heat colour table in the scene: the Colors logic is not set up")


def show_overlay(background_node, foreground_node, opacity: float = 0.5,
                 color_node_id: str | None = None, threshold: float = 0.01) -> None:
    """Background grey, foreground in a heat table at `opacity`, in all slice views.

    The heat table spans the foreground's range from 0 to its maximum, and
    values below `threshold` (a fraction of that maximum) are transparent, so
    the background shows unchanged wherever the heatmap is (near) zero.
    """
    scene = background_node.GetScene()
    foreground_node.CreateDefaultDisplayNodes()
    display = foreground_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node_id or heat_color_node_id(scene))
    peak = float(np.max(slicer.util.arrayFromVolume(foreground_node)))
    peak = peak if peak > 0 else 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, peak)
    display.SetApplyThreshold(True)
    display.SetThreshold(threshold * peak, peak)
    for composite in _composite_nodes(scene):
        composite.SetBackgroundVolumeID(background_node.GetID())
        composite.SetForegroundVolumeID(foreground_node.GetID())
        composite.SetForegroundOpacity(float(opacity))


def _composite_nodes(scene):
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


OVERLAYS = ("registered", "uncertainty", "none")


def show_registration(fixed_node, registered_node, uncertainty_node=None, overlay: str = "registered",
                      opacity: float = 0.5) -> None:
    """Show a registration over its fixed volume in every slice view: the registered volume, the
    uncertainty map, or nothing ("none": the views are left as they are)."""
    if overlay not in OVERLAYS:
        raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {overlay!r}")
    foreground = {"registered": registered_node, "uncertainty": uncertainty_node}.get(overlay)
    if foreground is not None:
        show_overlay(fixed_node, foreground, opacity=opacity)
