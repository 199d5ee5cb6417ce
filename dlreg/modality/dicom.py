"""DICOM evidence beside the pixels: read the header, map it to a class with a reliability.

Sources: a DICOM folder (read with SimpleITK, first file of the series) or the
attributes Slicer's DICOM module leaves on a volume node and its subject-hierarchy
item ("DICOM.Modality", ...; the series description is the node name).

`header_evidence` says what the header supports and how strongly:
- Modality (0008,0060) settles CT against MR (and anything else, PET, ..., is `UNKNOWN`);
- ImageType (0008,0008) DIFFUSION/ADC/TRACE, or words such as DWI, SWI, PD in the
  descriptions, name a series that is none of the classes (`UNKNOWN`);
- the acquisition parameters (TR, TE, TI, ScanningSequence, contrast agent) give the MR
  contrast by the textbook rules (reliability ACQUISITION_RELIABILITY);
- failing those, words of SeriesDescription (0008,103E), ProtocolName (0018,1030) and
  SequenceName (0018,0024) do (DESCRIPTION_RELIABILITY: descriptions are typed by people).
`pipeline` multiplies the pixel probabilities by the header's likelihood (the reliability for
the named contrast, the rest shared by the others) into one answer, and reports disagreement.
The reliabilities are stated priors, not fitted: no labelled DICOM collection was available.
`label_from_metadata` is the label alone: a class of `classes.CLASSES`, "MR" (an MR series
of undetermined contrast), `UNKNOWN`, or None (nothing to go on).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
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
    "FlipAngle": "0018|1314",
    "ImageType": "0008|0008",
}
MR_FAMILY = "MR"
ACQUISITION_RELIABILITY = 0.9
DESCRIPTION_RELIABILITY = 0.8


@dataclass(frozen=True)
class HeaderEvidence:
    """What the DICOM header says: `label` as for label_from_metadata, its basis and reliability."""

    label: str | None
    basis: str
    reliability: float = 1.0

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"label": self.label, "basis": self.basis, "reliability": self.reliability}

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


def header_evidence(metadata: Mapping[str, str] | None) -> HeaderEvidence:
    """What the header supports (see the module docstring)."""
    if not metadata:
        return HeaderEvidence(None, "no DICOM metadata", 0.0)
    modality = str(metadata.get("Modality", "")).strip().upper()
    text = _words(" ".join(str(metadata.get(k, "")) for k in
                           ("SeriesDescription", "ProtocolName", "SequenceName")))
    if modality == CT:
        return HeaderEvidence(CT, "Modality (0008,0060) is CT")
    if modality and modality != MR_FAMILY:
        return HeaderEvidence(UNKNOWN, f"Modality (0008,0060) is {modality}, not CT or MR")
    if not modality and _CT.search(text):
        return HeaderEvidence(CT, f"the series description says CT ('{text}')", DESCRIPTION_RELIABILITY)
    image_type = _words(str(metadata.get("ImageType", "")))
    if re.search(r"\b(diffusion|adc|trace|fa|eadc)\b", image_type):
        return HeaderEvidence(UNKNOWN, f"ImageType (0008,0008) '{image_type}' is a diffusion series")
    has_agent = _has_agent(metadata)
    label = _contrast_from_timing(metadata, has_agent)
    if label is not None:
        return HeaderEvidence(label, _timing_text(metadata, has_agent), ACQUISITION_RELIABILITY)
    label = _contrast_from_text(text, has_agent)
    if label is not None:
        reliability = 1.0 if label == UNKNOWN else DESCRIPTION_RELIABILITY
        return HeaderEvidence(label, f"series description '{text}'", reliability)
    if modality == MR_FAMILY:
        return HeaderEvidence(MR_FAMILY, "Modality (0008,0060) is MR; the contrast is not in the header")
    return HeaderEvidence(None, "the DICOM metadata names no modality", 0.0)


def label_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """Class suggested by DICOM metadata (see the module docstring for the answers)."""
    return header_evidence(metadata).label


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


def _has_agent(metadata: Mapping[str, str]) -> bool:
    agent = str(metadata.get("ContrastBolusAgent", "")).strip().lower()
    return bool(agent) and agent not in ("none", "no", "nil", "n/a")


def _number(metadata: Mapping[str, str], key: str) -> float | None:
    try:
        return float(str(metadata[key]).split("\\")[0])
    except (KeyError, ValueError):
        return None


def _contrast_from_timing(metadata: Mapping[str, str], has_agent: bool) -> str | None:
    """Textbook weighting rules on TR, TE, TI (ms) and ScanningSequence; None when undecided."""
    tr, te = _number(metadata, "RepetitionTime"), _number(metadata, "EchoTime")
    if tr is None or te is None:
        return None
    ti = _number(metadata, "InversionTime") or 0.0
    inversion = "IR" in str(metadata.get("ScanningSequence", "")).upper() or ti > 0
    if inversion and 1500 <= ti <= 3500 and te >= 60:
        return MR_FLAIR
    if inversion and 100 <= ti < 250:
        return UNKNOWN                     # STIR: fat-suppressed inversion recovery, none of the classes
    if te >= 60 and tr >= 1500 and not inversion:
        return MR_T2
    if te <= 30 and (tr <= 1000 or (inversion and 500 <= ti <= 1300)):
        return MR_T1C if has_agent else MR_T1
    return None


def _timing_text(metadata: Mapping[str, str], has_agent: bool) -> str:
    parts = [f"{key} {metadata[key]}" for key in ("RepetitionTime", "EchoTime", "InversionTime", "ScanningSequence")
             if metadata.get(key)]
    return "acquisition parameters " + ", ".join(parts) + (", contrast agent given" if has_agent else "")
