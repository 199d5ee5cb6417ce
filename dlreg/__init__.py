"""SlicerDLReg core: learned image registration with uncertainty.

Pure Python over numpy, SimpleITK and torch. No Slicer, no Qt: `dlreg.mrml`
is the only sub-package that talks to MRML.
"""

__version__ = "0.1.0"
