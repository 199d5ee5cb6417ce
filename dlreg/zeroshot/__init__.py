"""Zero-shot 2D registration with uncertainty.

Implements "Zero Shot Learning for Multi-Modal Real Time Image Registration" (A. Kori and
G. Krishnamurthi, arXiv:1908.06213, 2019) as the paper mode, beside a measured default mode.
`register_arrays(fixed, moving, ZeroShotOptions(...)) -> ZeroShotResult` on pixel grids;
`slicewise.register_images` on images with geometry.
"""

from dlreg.lazy import lazy_exports

_EXPORTS = {"ESTIMATORS": "options", "MODES": "options", "ZeroShotOptions": "options",
            "PARAM_ORDER": "pipeline", "ZeroShotResult": "pipeline", "register_arrays": "pipeline"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
