"""3D rigid multi-modal registration of head volumes.

Implements the registration framework of "A deep learning based framework for the
registration of three dimensional multi-modal medical images of the head" (K. T. Islam,
S. Wijewickrema and S. O'Leary, Scientific Reports 11, 1860, 2021): the paper's DCNN + ANN
estimator beside the default keypoint DCNN. `register_images(fixed, moving,
RigidOptions(...)) -> RigidResult`; training lives in `dlreg.training`.
"""

from dlreg.lazy import lazy_exports

_EXPORTS = {"ESTIMATORS": "options", "RigidOptions": "options",
            "RigidResult": "pipeline", "register_images": "pipeline"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
