"""DICOM metadata -> class, disagreement, reading a real DICOM folder written by SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.modality.dicom import (
    MR_FAMILY,
    disagrees,
    label_from_metadata,
    metadata_from_attributes,
    read_dicom_metadata,
)


@pytest.mark.parametrize("metadata, expected", [
    ({"Modality": "CT", "SeriesDescription": "T1 MPRAGE"}, "CT"),
    ({"Modality": "MR", "SeriesDescription": "t1_mprage_sag_p2"}, "MR-T1"),
    ({"Modality": "MR", "SeriesDescription": "AX T1 +C"}, "MR-T1C"),
    ({"Modality": "MR", "SeriesDescription": "T1W_3D_TFE", "ContrastBolusAgent": "Gadovist"}, "MR-T1C"),
    ({"Modality": "MR", "SeriesDescription": "t2_tse_tra"}, "MR-T2"),
    ({"Modality": "MR", "SeriesDescription": "T2_FLAIR_AX"}, "MR-FLAIR"),
    ({"Modality": "MR", "ProtocolName": "tirm_dark-fluid"}, "MR-FLAIR"),
    ({"Modality": "MR", "SeriesDescription": "ep2d_diff DWI"}, "unknown"),
    ({"Modality": "PT", "SeriesDescription": "FDG brain"}, "unknown"),
    ({"Modality": "MR", "SeriesDescription": "series 7"}, MR_FAMILY),
    ({"Modality": "MR", "RepetitionTime": "9000", "EchoTime": "120", "InversionTime": "2500"}, "MR-FLAIR"),
    ({"Modality": "MR", "RepetitionTime": "4000", "EchoTime": "100"}, "MR-T2"),
    ({"Modality": "MR", "RepetitionTime": "500", "EchoTime": "12"}, "MR-T1"),
    ({}, None),
])
def test_label_from_metadata(metadata, expected):
    assert label_from_metadata(metadata) == expected


def test_slicer_and_tag_attributes_are_understood():
    meta = metadata_from_attributes({"DICOM.Modality": "MR", "0008|103E": "t2_tse",
                                     "DICOM.instanceUIDs": "1.2", "DICOM.SeriesNumber": "3",
                                     "DLReg.Modality": "MR-T2"})
    assert meta == {"Modality": "MR", "SeriesDescription": "t2_tse"}


def test_disagreement():
    assert disagrees("MR-T2", "MR-T1")
    assert not disagrees("MR-T2", "MR-T2")
    assert not disagrees("MR-FLAIR", MR_FAMILY)
    assert disagrees("CT", MR_FAMILY)
    assert not disagrees("CT", None)
    assert disagrees("MR-T1", "unknown")


def _write_series(folder, tags: dict) -> None:
    """A 3-slice int16 DICOM series with the given tags."""
    volume = sitk.GetImageFromArray(np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(3):
        frame = volume[:, :, k]
        for tag, value in {"0020|000e": "1.2.826.0.1.3680043.2.1125.1", "0020|0013": str(k + 1),
                           "0020|0032": f"0\\0\\{k}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0008|0018": f"1.2.826.0.1.3680043.2.1125.1.{k + 1}", **tags}.items():
            frame.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k}.dcm"))
        writer.Execute(frame)


def test_read_dicom_folder(tmp_path):
    _write_series(tmp_path, {"0008|0060": "MR", "0008|103e": "AX FLAIR", "0018|0081": "120"})
    meta = read_dicom_metadata(tmp_path)
    assert meta["Modality"] == "MR" and meta["SeriesDescription"] == "AX FLAIR"
    assert label_from_metadata(meta) == "MR-FLAIR"


def test_folder_without_dicom_is_a_clear_error(tmp_path):
    with pytest.raises(InputImageError, match="no DICOM series"):
        read_dicom_metadata(tmp_path)
