"""The ``tune`` search's inputs: their defaults, ``TuneOptions`` that holds them, and the parsers that
read them from text (budget, batch sizes and candidate variants; the quality budget's limits are
``analysis.quality.parse_limit``'s).

Each parser returns the value or raises an error that says what was wrong and what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_sdxl.analysis.quality import QualityBudget
from pytest_sdxl.errors import VariantSpecError
from pytest_sdxl.variants.registry import BASELINE, REGISTRY, unknown_name_message

DEFAULT_BEAM = 2
DEFAULT_MARGIN = 0.03
DEFAULT_MIN_PSNR_DB = 30.0
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16)
DEFAULT_BUDGET = "10m"
# tune's default quality budget: the PSNR floor alone (SSIM and LPIPS limits only where asked for).
DEFAULT_QUALITY = QualityBudget(min_psnr=DEFAULT_MIN_PSNR_DB)
UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
BUDGET_PATTERN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)")
# A budget must be more than nothing (zero measured the baseline and stopped, looking like a search) and at
# most a day: a search over every variant on a real model takes minutes to hours, so more is a slipped unit.
BUDGET_RANGE_S = (0.0, 24 * 3600.0)


@dataclass(frozen=True)
class TuneOptions:
    """How the search searches: the beam's width, the time budget, the quality budget, the noise margin."""

    beam: int = DEFAULT_BEAM
    budget_s: float = 600.0
    # What a candidate's images must keep against the baseline's (--min-psnr, --min-ssim, --max-lpips).
    quality: QualityBudget = DEFAULT_QUALITY
    margin: float = DEFAULT_MARGIN
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    # Random model weights: a lossy variant's PSNR says nothing about a real model's images.
    random_weights: bool = False
    # Variants whose own weights are random (tiny_vae with --tiny-vae random) even on a real model.
    random_weight_variants: frozenset[str] = frozenset()


def parse_budget(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds; the error says what is accepted."""
    low, high = BUDGET_RANGE_S
    refused = ValueError(
        f"budget {text!r} is not accepted; accepted: more than {low:g} seconds and at most {high / 3600:g} hours; "
        "give seconds (90 or 90s), minutes (10m) or hours (1h)"
    )
    match = BUDGET_PATTERN.fullmatch(text.strip().lower())
    if match is None:
        raise refused
    seconds = float(match[1]) * UNIT_SECONDS[match[2]]
    if not low < seconds <= high:
        raise refused
    return seconds


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4), sorted, duplicates removed; the error says what is accepted."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ValueError(
            f"batch sizes {text!r} are not accepted; give whole numbers of at least 1, comma-separated, e.g. 1,2,4,8,16"
        )
    return tuple(sorted({int(part) for part in parts}))


def parse_candidates(text: str) -> tuple[str, ...]:
    """'all' or comma-separated single variant names -> the names the search may add (never baseline).

    Raises VariantSpecError naming the valid variants. Called after plugin variants are registered.
    """
    if text.strip().lower() == "all":
        return tuple(name for name in REGISTRY if name != BASELINE)
    names = [part.strip().lower().replace("-", "_") for part in text.split(",") if part.strip()]
    for name in names:
        if "+" in name:
            raise VariantSpecError(
                f"{name!r} is a composition; give single variants, the search composes them. "
                f"Valid variants: {', '.join(REGISTRY)}"
            )
        if name not in REGISTRY:
            raise VariantSpecError(unknown_name_message(name))
    chosen = tuple(dict.fromkeys(name for name in names if name != BASELINE))
    if not chosen:
        raise VariantSpecError(f"no variant to try in {text!r}. Valid variants: {', '.join(REGISTRY)}")
    return chosen
