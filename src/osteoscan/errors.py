"""Exception families. Each message names the file or value at fault and says what to do.

The CLI turns any :class:`OsteoscanError` into one readable line and a non-zero exit.
"""

from __future__ import annotations


class OsteoscanError(Exception):
    """Base class of every error a user can cause and fix."""


class BadImageError(OsteoscanError):
    """An image file cannot be read, or is unusable (too small, too large, not an image)."""


class BadManifestError(OsteoscanError):
    """A dataset folder or CSV manifest is malformed (missing column, bad T-score, empty class)."""


class BadWeightsError(OsteoscanError):
    """Pretrained or bundle weights are missing, corrupt, or do not fit the model."""


class BadConfigError(OsteoscanError):
    """An option is invalid: unknown model name, impossible mode, bad task."""


class BadBundleError(OsteoscanError):
    """A model bundle directory is missing files or was written by an incompatible version."""


class InterruptedRun(OsteoscanError):
    """A run was stopped by a signal (Ctrl-C, or SIGTERM from a scheduler) before it finished.

    ``exit_code`` follows the shell convention 128 + signal number (130 for SIGINT, 143 for
    SIGTERM); nothing half-written is left behind.
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


class NotWritableError(OsteoscanError):
    """An output folder (``--out``, ``--cache-dir``) cannot be created or written to."""


class ExportRefusedError(OsteoscanError):
    """An exported model disagrees with the model it was made from beyond the stated tolerance."""
