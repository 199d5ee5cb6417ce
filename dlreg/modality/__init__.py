"""Image-modality identification (paper section "Identification of image modality").

`classify_image` says from the voxels whether a head volume is CT or one MR contrast,
with calibrated probabilities and an "unknown" answer for anything else; DICOM metadata,
where given, is reported beside the prediction. `order_fixed_moving` uses it to decide
which of two volumes is the fixed image of a registration.
"""
