"""Checks that generated images are images, and the largest pixel difference of two sets.

How alike two sets look (PSNR, SSIM, LPIPS) is ``analysis.quality``'s, computed by torchmetrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_sdxl.errors import ImageCheckError

# Images are floats in [0, 1]; a maximum below one 8-bit step is black on any screen.
BLACK_LEVEL = 1.0 / 255.0


def as_array(images: Any) -> np.ndarray:
    """Pipeline output (numpy, torch or a list of either) as a float array of shape (N, H, W, C)."""
    if isinstance(images, (list, tuple)):
        images = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    return array


def check_images(images: Any, label: str) -> np.ndarray:
    """Raise ImageCheckError when any image holds NaN or infinite values or is all black."""
    array = as_array(images)
    # One pass over the whole array in the common case; the per-image search only on failure.
    if np.isfinite(array).all() and float(array.reshape(array.shape[0], -1).max(axis=1).min()) >= BLACK_LEVEL:
        return array
    count = array.shape[0]
    not_finite = [index for index in range(count) if not np.isfinite(array[index]).all()]
    if not_finite:
        raise ImageCheckError(
            f"{label}: {len(not_finite)} of {count} images hold NaN or infinite values (image(s) {not_finite}); "
            "typically a half-precision overflow. This generation is a failure, not a timing."
        )
    black = [index for index in range(count) if float(array[index].max()) < BLACK_LEVEL]
    if black:
        raise ImageCheckError(
            f"{label}: {len(black)} of {count} images are all black (image(s) {black}); "
            "typically NaN values clamped by post-processing. This generation is a failure, not a timing."
        )
    return array


def max_abs_difference(reference: Any, candidate: Any) -> float:
    """The largest per-pixel difference between two image sets of the same shape."""
    first, second = as_array(reference), as_array(candidate)
    if first.shape != second.shape:
        raise ValueError(f"cannot compare images of shapes {first.shape} and {second.shape}")
    return float(np.max(np.abs(first - second)))
