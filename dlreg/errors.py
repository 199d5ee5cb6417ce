"""Exceptions that carry a message meant for the user.

Every check on user input raises one of these, naming the problem, so no
caller ever has to read a traceback from deep inside SimpleITK or torch.
"""


class DLRegError(Exception):
    """Base class of all errors the user should see as a plain message."""


class InputImageError(DLRegError, ValueError):
    """An input image is missing, unreadable, of the wrong kind or content."""


class MismatchedInputsError(DLRegError, ValueError):
    """Two inputs that must agree (size, dimension, overlap) do not."""


class WeightsError(DLRegError, RuntimeError):
    """Model weights are missing, corrupted or do not fit the model."""


class TransformFileError(DLRegError, ValueError):
    """A transform file cannot be read or holds an unsupported transform."""


class CancelledError(DLRegError):
    """The user cancelled a long-running job through the progress callback."""
