"""Image-modality identification (paper section "Identification of image modality").

`classify_image` says whether a head volume is CT (by its Hounsfield units) or one MR
contrast (by a network on its voxels, combined with the DICOM header where given), with
calibrated probabilities, the evidence of each source, and an "unknown" answer with its
reason for anything else. `order_images` uses it to decide which of two volumes is the
fixed image of a registration.
"""
