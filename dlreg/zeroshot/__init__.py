"""Zero-shot 2D registration with uncertainty (issue 3; paper 000_6f4e8c56dae3b56a).

`register_arrays(fixed, moving, mode="default"|"paper", ...) -> ZeroShotResult`.
"""

from dlreg.zeroshot.pipeline import ESTIMATORS, MODES, PARAM_ORDER, ZeroShotResult, register_arrays

__all__ = ["ESTIMATORS", "MODES", "PARAM_ORDER", "ZeroShotResult", "register_arrays"]
