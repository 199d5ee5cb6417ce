"""Modality classification of volume nodes: attribute, DICOM attributes, ordering, table.

DICOM metadata comes from what Slicer's DICOM module leaves: "DICOM.*" attributes of
the volume node and of its subject-hierarchy item (e.g. "DICOM.Modality"); a volume
loaded from DICOM (it has "DICOM.instanceUIDs") is named after its series
description, so the name stands in for SeriesDescription.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import slicer
import vtk

from dlreg.errors import DLRegError
from dlreg.modality.classes import CLASSES
from dlreg.modality.dicom import metadata_from_attributes
from dlreg.modality.options import ModalityOptions
from dlreg.modality.result import ModalityResult
from dlreg.mrml.volumes import image_from_volume_node
from dlreg.options import resolve
from dlreg.progress import ProgressCallback, report

ATTRIBUTE = "DLReg.Modality"
CONFIDENCE_ATTRIBUTE = "DLReg.ModalityConfidence"


def node_dicom_metadata(node) -> dict[str, str]:
    """DICOM metadata of a volume node (empty when it was not loaded from DICOM)."""
    attributes = {name: node.GetAttribute(name) for name in node.GetAttributeNames()
                  if name.startswith("DICOM.")}
    scene = node.GetScene()
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene) if scene else None
    item = sh.GetItemByDataNode(node) if sh else 0
    if item:
        attributes.update({name: sh.GetItemAttribute(item, name)
                           for name in sh.GetItemAttributeNames(item) if name.startswith("DICOM.")})
    metadata = metadata_from_attributes(attributes)
    if metadata or "DICOM.instanceUIDs" in attributes:
        metadata.setdefault("SeriesDescription", node.GetName())
    return metadata


def classify_node(node, options: ModalityOptions | None = None, *, write_attribute: bool = True,
                  **changes) -> ModalityResult:
    """Classify a scalar volume node; optionally store the class as its DLReg.Modality attribute."""
    from dlreg.modality.pipeline import classify_image  # torch: only when classifying in this process

    metadata = node_dicom_metadata(node)
    result = classify_image(image_from_volume_node(node), options, dicom_metadata=metadata or None,
                            name=f"volume '{node.GetName()}'", **changes)
    if write_attribute:
        set_modality_attributes(node, result)
    return result


def classify_nodes(nodes: Sequence, options: ModalityOptions | None = None, *, write_attribute: bool = True,
                   table=None, progress: ProgressCallback | None = None, **changes) -> list[ModalityResult]:
    """Classify each node in turn (results in node order); optionally fill `table` with one row each."""
    if not nodes:
        raise DLRegError("select at least one volume to classify")
    opts = resolve(ModalityOptions, options, changes)
    results = []
    for index, node in enumerate(nodes):
        report(progress, index / len(nodes), f"classifying {node.GetName()}")
        results.append(classify_node(node, opts, write_attribute=write_attribute))
    report(progress, 1.0, "classified")
    if table is not None:
        write_results_table(table.GetScene(), [(n.GetName(), r) for n, r in zip(nodes, results)], table=table)
    return results


def set_modality_attributes(node, result: ModalityResult) -> None:
    """Store a result on its node: DLReg.Modality (the class or "unknown") and DLReg.ModalityConfidence."""
    node.SetAttribute(ATTRIBUTE, result.label)
    node.SetAttribute(CONFIDENCE_ATTRIBUTE, f"{result.confidence:.4f}")


def order_nodes(node_a, node_b, options: ModalityOptions | None = None, **changes) -> tuple:
    """(fixed_node, moving_node, details) for two volume nodes; the nodes are not modified."""
    from dlreg.modality.ordering import order_results

    opts = resolve(ModalityOptions, options, changes)
    results = [classify_node(n, opts, write_attribute=False) for n in (node_a, node_b)]
    fixed, moving, details = order_results(*results, prefer_fixed=opts.prefer_fixed)
    nodes = (node_a, node_b)
    details["names"] = [node_a.GetName(), node_b.GetName()]
    return nodes[fixed], nodes[moving], details


def summary_line(name: str, result: ModalityResult) -> str:
    """One line of the module's result text: the volume's name and the result's own summary."""
    return f"{name}: {result.summary()}"


def write_results_table(scene, results: Mapping[str, ModalityResult] | Iterable[tuple[str, ModalityResult]],
                        table=None):
    """A table node (new, or `table` emptied) with one row per (volume name, result)."""
    rows = list(results.items()) if isinstance(results, Mapping) else list(results)
    if table is None:
        name = scene.GenerateUniqueName("Modality classification")
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table.RemoveAllColumns()
    for name in ("Volume", "Class", "Confidence", "DICOM label", "Disagreement", "Note"):
        table.AddColumn(vtk.vtkStringArray()).SetName(name)
    for name in CLASSES:
        table.AddColumn(vtk.vtkStringArray()).SetName(f"P({name})")
    for volume, r in rows:
        row = table.AddEmptyRow()
        cells = [volume, r.label, f"{r.confidence:.4f}", r.dicom_label or "",
                 "yes" if r.disagreement else "no", r.reason]
        cells += [f"{r.probabilities.get(c, 0.0):.4f}" for c in CLASSES]
        for column, text in enumerate(cells):
            table.SetCellText(row, column, text)
    return table
