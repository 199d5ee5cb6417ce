"""DICOM metadata beside the pixel prediction: read it, map it to a class, compare.

Sources: a DICOM folder (read with SimpleITK, first file of the series) or the
attributes Slicer's DICOM module leaves on a volume node and its subject-hierarchy
item ("DICOM.Modality", ...; the series description is the node name). The mapping
uses Modality (0008,0060), then words of SeriesDescription (0008,103E), ProtocolName
(0018,1030) and SequenceName (0018,0024), then TR/TE/TI. Descriptions are often
wrong, so the result is only ever reported and compared, never used to classify.

`label_from_metadata` answers a class of `classes.CLASSES`, "MR" (an MR series of
undetermined contrast), `UNKNOWN` (a series that is none of the classes: PET, DWI, ...)
or None (nothing to go on).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.modality.classes import CT, MR_FLAIR, MR_T1, MR_T1C, MR_T2, UNKNOWN, family

# Metadata name -> DICOM tag as SimpleITK spells it.
TAGS = {
    "Modality": "0008|0060",
    "SeriesDescription": "0008|103e",
    "ProtocolName": "0018|1030",
    "SequenceName": "0018|0024",
    "ScanningSequence": "0018|0020",
    "ContrastBolusAgent": "0018|0010",
    "RepetitionTime": "0018|0080",
    "EchoTime": "0018|0081",
    "InversionTime": "0018|0082",
}
MR_FAMILY = "MR"

_NOT_OURS = re.compile(r"\b(dwi|adc|diffusion|dti|trace|perfusion|pwi|dsc|asl|swi|t2\*|t2star|"
                       r"localizer|localiser|scout|survey|mra|tof|pd|pdw)\b")
_FLAIR = re.compile(r"\b(flair|tirm|t2f|fla|darkfluid|dark fluid)\b")
_CONTRAST = re.compile(r"(\+ ?c\b|\+ ?gd\b|\bpost\b|\bgd\b|\bgad|contrast|\bce\b|\bt1c\b|\bt1ce\b|"
                       r"\bkm\b|\bmit km\b)")
_T1 = re.compile(r"\b(t1|t1w|t1n|mprage|mp rage|spgr|fspgr|tfl|bravo|tfe|t1c|t1ce)\b")
_T2 = re.compile(r"\b(t2|t2w|tse|fse|haste)\b")
_CT = re.compile(r"\b(ct|cta|hu)\b")


def read_dicom_metadata(folder: str | os.PathLike, series_id: str | None = None) -> dict[str, str]:
    """The TAGS of one DICOM series in `folder` (first file), by metadata name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputImageError(f"DICOM folder not found: {folder}")
    series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series:
        raise InputImageError(f"no DICOM series found in folder {folder}")
    if series_id is None:
        if len(series) > 1:
            raise InputImageError(f"folder {folder} holds {len(series)} DICOM series; choose one: "
                                  + ", ".join(series))
        series_id = series[0]
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
    if not files:
        raise InputImageError(f"DICOM series {series_id} not found in {folder}")
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputImageError(f"cannot read DICOM header of {files[0]}: {exc}") from exc
    return {name: reader.GetMetaData(tag).strip() for name, tag in TAGS.items()
            if reader.HasMetaDataKey(tag) and reader.GetMetaData(tag).strip()}


def metadata_from_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Metadata from Slicer-style attributes ("DICOM.Modality") or tag keys ("0008|0060")."""
    by_tag = {tag: name for name, tag in TAGS.items()}
    out = {}
    for key, value in attributes.items():
        if value is None or not str(value).strip():
            continue
        name = key[len("DICOM."):] if key.startswith("DICOM.") else by_tag.get(key.lower(), key)
        if name in TAGS:
            out[name] = str(value).strip()
    return out


def label_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """Class suggested by DICOM metadata (see the module docstring for the answers)."""
    if not metadata:
        return None
    modality = str(metadata.get("Modality", "")).strip().upper()
    text = _words(" ".join(str(metadata.get(k, "")) for k in
                           ("SeriesDescription", "ProtocolName", "SequenceName")))
    if modality == CT:
        return CT
    if modality and modality != MR_FAMILY:
        return UNKNOWN
    if not modality and _CT.search(text):
        return CT
    label = _contrast_from_text(text, bool(metadata.get("ContrastBolusAgent")))
    if label is None:
        label = _contrast_from_timing(metadata)
    if label is None and modality == MR_FAMILY:
        return MR_FAMILY
    return label


def disagrees(pixel_label: str, dicom_label: str | None) -> bool:
    """True when DICOM metadata names a different class than the pixels."""
    if dicom_label is None:
        return False
    if dicom_label == MR_FAMILY:
        return family(pixel_label) != MR_FAMILY
    return dicom_label != pixel_label


def _words(text: str) -> str:
    """Lower case, separators as spaces, '+' and '*' kept."""
    return " ".join(re.sub(r"[^a-z0-9+*]+", " ", text.lower()).split())


def _contrast_from_text(text: str, has_agent: bool) -> str | None:
    if not text:
        return None
    if _FLAIR.search(text):
        return MR_T1 if re.search(r"\bt1\b", text) else MR_FLAIR
    if _NOT_OURS.search(text):
        return UNKNOWN
    if _T1.search(text):
        return MR_T1C if (has_agent or _CONTRAST.search(text)) else MR_T1
    if _T2.search(text):
        return MR_T2
    return None


def _contrast_from_timing(metadata: Mapping[str, str]) -> str | None:
    """Classic weighting rules on TR, TE, TI (ms); None when they are absent."""
    try:
        tr = float(metadata["RepetitionTime"])
        te = float(metadata["EchoTime"])
    except (KeyError, ValueError):
        return None
    try:
        ti = float(metadata.get("InversionTime", 0) or 0)
    except ValueError:
        ti = 0.0
    if te >= 70 and ti >= 1500:
        return MR_FLAIR
    if te >= 70 and tr >= 1500:
        return MR_T2
    if te <= 30:
        return MR_T1C if metadata.get("ContrastBolusAgent") else MR_T1
    return None
