"""3D rigid multi-modal head registration (issue 4; paper 004_7c0d6bd2fd4a7ab7).

`register_images(fixed, moving, ...) -> RigidResult`; training in `dlreg.rigid3d.keypoint_training`
(the default keypoint estimator) and `dlreg.rigid3d.training` (the paper's DCNN + ANN).
"""

from dlreg.rigid3d.pipeline import RigidResult, register_images

__all__ = ["RigidResult", "register_images"]
