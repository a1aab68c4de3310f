"""What holds a variant back: the busy fraction's bands, the busiest stage on the roofline, and n/a."""

from __future__ import annotations

import math

import pytest

from pytest_sdxl.analysis.bottleneck import GPU_BOUND_FROM, LAUNCH_BOUND_BELOW, NEAR_ROOF_FROM, what_holds_back
from pytest_sdxl.analysis.serving import StageRoofline


def stages(unet_share_of_peak: float | None) -> list[StageRoofline]:
    """A UNet of 1 TFLOP in 8 kernel ms (125 TFLOP/s) beside a VAE of 2 ms; the peak set for the share asked."""
    peak = None if unet_share_of_peak is None else 125.0 / unet_share_of_peak
    return [
        StageRoofline("text_encode", 1e10, 0.5, 1.0, peak),
        StageRoofline("unet", 1e12, 8.0, 9.0, peak),
        StageRoofline("vae_decode", 2e11, 2.0, 3.0, peak),
    ]


def test_an_eager_one_step_variant_is_launch_bound_with_its_host_time() -> None:
    # An eager baseline on a fast GPU: 46 ms of kernels in 112 ms of wall time.
    verdict = what_holds_back(112.2, 46.0, stages(0.1))
    assert verdict.startswith("launch-bound: GPU busy 41.0% (46.0 kernel ms of 112.2 wall ms per image)")
    assert "66.2 ms per image is the host launching kernels" in verdict


@pytest.mark.parametrize(
    ("wall_ms", "kernel_ms", "band"),
    [
        (10.0, 4.99, "launch-bound"),
        (10.0, 5.0, "partly launch-bound"),
        (10.0, 8.0, "GPU-bound"),
        (10.0, 12.0, "GPU-bound"),
    ],
)
def test_the_busy_fraction_picks_the_band(wall_ms: float, kernel_ms: float, band: str) -> None:
    assert (LAUNCH_BOUND_BELOW, GPU_BOUND_FROM) == (0.5, 0.8)
    assert what_holds_back(wall_ms, kernel_ms, stages(0.5)).startswith(band + ":")


@pytest.mark.parametrize(
    ("share", "says"),
    [
        (0.2, "unet takes 8.0 of 9.5 kernel ms at 20% of the matrix peak: memory traffic or small kernels"),
        (
            NEAR_ROOF_FROM,
            "unet takes 8.0 of 9.5 kernel ms at 40% of the matrix peak: compute-heavy, 2.5x under the measured peak",
        ),
        (None, "unet takes 8.0 of 9.5 kernel ms (no matrix peak measured here to place it on the roofline)"),
    ],
)
def test_once_gpu_bound_the_busiest_stage_is_placed_on_the_roofline(share: float | None, says: str) -> None:
    assert says in what_holds_back(10.5, 9.5, stages(share))


def test_a_busy_fraction_just_under_a_band_edge_is_not_printed_as_the_edge() -> None:
    # A fast batch-16 composition: 4.59 kernel ms of 5.74 wall ms, 79.9 % busy.
    verdict = what_holds_back(5.745, 4.59, [])
    assert verdict.startswith("partly launch-bound: GPU busy 79.9% (4.6 kernel ms of 5.7 wall ms per image)")


def test_missing_figures_give_na_with_the_reason() -> None:
    assert what_holds_back(None, 5.0) == "n/a: no wall time measured"
    assert what_holds_back(30.0, None) == "n/a: no GPU kernel time (no CUDA kernels here)"
    assert what_holds_back(30.0, math.nan) == "n/a: no GPU kernel time (no CUDA kernels here)"
    assert "no per-stage kernel time" in what_holds_back(10.0, 9.0, [])
