"""Images as physical objects: file I/O, geometry, transforms, resampling, intensity.

Everything here works in LPS physical space (the ITK convention); Slicer's RAS
appears only at the MRML boundary (`dlreg.mrml`) through `geometry.LPS_TO_RAS`.
"""

from dlreg.imaging.geometry import (
    LPS_TO_RAS,
    index_to_physical,
    index_to_physical_matrix,
    lps_ras_convert,
    matrix_to_rigid,
    physical_to_index,
    rigid_to_matrix,
)
from dlreg.imaging.io import read_image, validate_scalar_image, write_image
from dlreg.imaging.resample import resample_to
from dlreg.imaging.transforms import read_transform, to_sitk_transform, write_transform

__all__ = [
    "LPS_TO_RAS",
    "index_to_physical",
    "index_to_physical_matrix",
    "lps_ras_convert",
    "matrix_to_rigid",
    "physical_to_index",
    "read_image",
    "read_transform",
    "resample_to",
    "rigid_to_matrix",
    "to_sitk_transform",
    "validate_scalar_image",
    "write_image",
    "write_transform",
]
