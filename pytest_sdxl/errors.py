"""The exceptions pytest-sdxl raises; each message says what was wrong and what is accepted."""

from __future__ import annotations


class SdxlError(Exception):
    """Base class of every error pytest-sdxl raises on purpose."""


class VariantSpecError(SdxlError, ValueError):
    """A variant string names an unknown variant or an impossible combination (a usage error)."""


class SettingsError(SdxlError, ValueError):
    """An option, environment variable or ini value has a value that is not accepted."""


class VariantUnavailable(SdxlError):
    """A variant cannot run on this machine (missing GPU, package or precision): a skip, not a failure."""


class ModelSourceError(SdxlError):
    """Weights could not be found or loaded from the requested model source."""


class ResultsWriteError(SdxlError):
    """Results could not be written (a full disk, a folder made read-only): the file holds its last save."""


class ImageCheckError(SdxlError):
    """A generation produced images that are not images (NaN values, all black); never a timing."""
