"""Package attributes that import their module on first use.

A pipeline package exports its entry points at the top (`dlreg.zeroshot.register_arrays`),
but importing the package must stay cheap: the CLI and the Slicer modules import only the
options, which need no torch.
"""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` resolving `exports` (attribute -> submodule of `package`)."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
