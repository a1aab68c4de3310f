"""Image quality on known images: identical, a known noise level, a shift; LPIPS only from local weights; budgets."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_sdxl.analysis.quality import (
    LPIPS_WEIGHTS_ENV,
    RANDOM_WEIGHTS_NOTE,
    QualityBudget,
    QualityScores,
    image_batch,
    lpips,
    lpips_weights,
    measure_quality,
    parse_limit,
    psnr_db,
    ssim,
)

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def texture(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth, detailed RGB image in [0.1, 0.9] (room for noise of either sign), shape (H, W, 3)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 8, size // 8, 3))
    image = np.kron(coarse, np.ones((8, 8, 1)))  # blocks: structure that a shift moves
    return 0.1 + 0.8 * image


def checkerboard(shape: tuple[int, ...]) -> np.ndarray:
    """+1 and -1 alternating over the pixels, the same on every channel."""
    rows, columns = np.indices(shape[-3:-1])
    signs = np.where((rows + columns) % 2 == 0, 1.0, -1.0)[..., None]
    return np.broadcast_to(signs, shape)


def test_identical_images_have_ssim_one_and_infinite_psnr() -> None:
    images = np.stack([texture(seed=1), texture(seed=2)])
    assert psnr_db(images, images.copy()) == math.inf
    assert ssim(images, images.copy()) == pytest.approx(1.0)
    as_bytes = (images * 255).round().astype(np.uint8)
    scores = measure_quality(as_bytes, as_bytes.copy())
    assert scores.psnr_db == math.inf and scores.ssim == pytest.approx(1.0) and scores.images == 2
    assert scores.describe().startswith("identical, SSIM 1.0000, LPIPS n/a (not measured")


def test_psnr_of_a_known_noise_level_is_the_analytic_value() -> None:
    image = texture()
    # Every pixel off by exactly 0.01: the mean square error is 1e-4, so PSNR = 10 log10(1 / 1e-4) = 40 dB.
    noisy = image + 0.01 * checkerboard(image.shape)
    # torchmetrics takes its log base in single precision: agreement to 1e-6 relative, 0.00004 dB here.
    assert psnr_db(image, noisy) == pytest.approx(40.0, rel=1e-6)
    # uint8 images off by 3 steps: 20 log10(255 / 3) dB.
    as_bytes = (image * 255).round().astype(np.uint8)
    shifted_bytes = (as_bytes.astype(int) + 3 * checkerboard(image.shape).astype(int)).astype(np.uint8)
    assert psnr_db(as_bytes, shifted_bytes) == pytest.approx(20 * math.log10(255 / 3), rel=1e-6)
    # Over a set the error is pooled: one noisy image of two halves the mean square error.
    pair, half_noisy = np.stack([image, image]), np.stack([image, noisy])
    assert psnr_db(pair, half_noisy) == pytest.approx(10 * math.log10(2 / 1e-4), rel=1e-6)


def test_a_shifted_image_has_lower_ssim_the_further_it_moves() -> None:
    image = texture()
    by_one, by_four = np.roll(image, 1, axis=1), np.roll(image, 4, axis=1)
    assert ssim(image, by_four) < ssim(image, by_one) < 0.999
    # Noise that PSNR ranks as mild still lowers SSIM below the identical image's.
    assert ssim(image, image + 0.01 * checkerboard(image.shape)) < 1.0


def test_images_that_cannot_be_compared_are_refused_with_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="shapes"):
        psnr_db(texture(64), texture(32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        image_batch(texture() * 2)
    with pytest.raises(ValueError, match="uint8"):
        image_batch(np.zeros((4, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(texture(8), texture(8))


def test_scores_round_trip_through_json_with_an_infinite_psnr() -> None:
    scores = QualityScores(psnr_db=math.inf, ssim=1.0, images=3, lpips=None, lpips_not_applicable="why")
    assert QualityScores.from_dict(json.loads(json.dumps(scores.as_dict()))) == scores


def test_lpips_is_na_without_weights_and_says_how_to_provide_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image = texture()
    value, why = lpips(image, image, None)
    assert value is None and why.startswith("not measured:") and "--lpips-weights PATH" in why
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were not installed
    value, why = lpips(image, image, tmp_path)
    assert value is None and why.startswith("torchvision is not installed")
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(tmp_path))
    assert lpips_weights(None) == tmp_path
    assert lpips_weights(tmp_path / "given") == tmp_path / "given"


@pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not installed (LPIPS needs it)")
def test_lpips_reads_a_local_checkpoint_and_never_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    torchvision = importlib.import_module("torchvision")

    def no_download(*arguments: object, **keywords: object) -> None:
        raise AssertionError("LPIPS tried to download its weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    file_name = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    value, why = lpips(texture(), texture(), tmp_path)
    assert value is None and why.startswith(f"no {file_name} at {tmp_path}")
    # A randomly initialised AlexNet stands in for the ImageNet one: the file is read, never fetched.
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / file_name)
    image, other = texture(seed=1), texture(seed=2)
    same, why = lpips(image, image.copy(), tmp_path)
    assert why == "" and same == pytest.approx(0.0, abs=1e-6)
    different, _ = lpips(image, other, tmp_path)
    assert different is not None and different > 0.0
    assert measure_quality(image, other, tmp_path / file_name).lpips == pytest.approx(different)


SCORES = QualityScores(psnr_db=27.25, ssim=0.91, images=5, lpips=0.08)


def test_a_budget_names_every_violated_limit() -> None:
    budget = QualityBudget(min_psnr=30, min_ssim=0.95, max_lpips=0.05)
    check = budget.check(SCORES, kind="lossy")
    assert not check.passed
    assert check.violations == (
        "PSNR 27.2 dB is below the 30 dB floor (--min-psnr)",
        "SSIM 0.9100 is below the 0.95 floor (--min-ssim)",
        "LPIPS 0.080 is above the 0.05 ceiling (--max-lpips)",
    )
    assert QualityBudget(min_psnr=25, min_ssim=0.9, max_lpips=0.1).check(SCORES).passed
    assert QualityBudget().check(SCORES) == QualityBudget().check(None)  # no budget: nothing to say


def test_on_random_weights_a_lossy_variant_is_not_judged_and_the_check_says_so() -> None:
    budget = QualityBudget(min_psnr=30)
    check = budget.check(SCORES, kind="lossy", random_weights=True)
    assert check.passed and check.notes == (f"{RANDOM_WEIGHTS_NOTE}; its quality budget is not checked",)
    # An exact variant promises the baseline's images whatever the weights.
    assert not budget.check(SCORES, kind="exact", random_weights=True).passed


def test_an_lpips_limit_without_lpips_is_a_note_not_a_failure() -> None:
    scores = QualityScores(psnr_db=40.0, ssim=0.99, images=5, lpips_not_applicable="torchvision is not installed")
    check = QualityBudget(max_lpips=0.05).check(scores)
    assert check.passed and check.notes == ("--max-lpips not checked: LPIPS n/a (torchvision is not installed)",)
    assert QualityBudget(min_ssim=0.9).check(None).notes[0].startswith("images not compared")


def test_budget_options_are_parsed_with_what_is_accepted() -> None:
    assert parse_limit("--min-psnr", "30") == 30.0
    assert parse_limit("--min-ssim", "0.95") == 0.95
    assert parse_limit("--max-lpips", "0.05") == 0.05
    with pytest.raises(ValueError, match=r"--min-ssim '1\.5' is not accepted; give a similarity up to 1"):
        parse_limit("--min-ssim", "1.5")
    with pytest.raises(ValueError, match="give a distance from 0"):
        parse_limit("--max-lpips", "-0.1")
    with pytest.raises(ValueError, match="give decibels"):
        parse_limit("--min-psnr", "thirty")
