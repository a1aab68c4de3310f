"""What each profile (``options.PROFILES``) measures, as the measurement core's options.

- ``gate``: the gated signals only (``analysis.comparison.DEFAULT_GATE``: the side-by-side wall ratio,
  kernel time and launches, peak memory), so no stage split, FLOPs, image quality or energy; rounds and
  profiled passes stop once their intervals are narrow enough for the gate's thresholds
  (``measure.sequential``), within the variant's budget;
- ``full``: every signal, rounds and passes stopped the same way;
- ``reference``: every signal, the fixed rounds of the reference protocol (``core.rounds_per_run``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_sdxl.measure.core import MeasuringOptions

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings


def measuring_options(settings: Settings, runs: int, device_type: str, budget_share: float = 1.0) -> MeasuringOptions:
    """The core's options for ``runs`` runs under the settings' profile on this device type.

    ``budget_share``: the part of the variant's budget these runs get (a protocol run, a fresh load, gets
    one over the runs).
    """
    lpips = settings.lpips_weights
    budget_s = settings.budget_for(device_type) * budget_share
    if settings.profile == "reference":
        return MeasuringOptions(runs=runs, lpips_weights=lpips)
    everything = settings.profile == "full"
    return MeasuringOptions(
        runs=runs,
        lpips_weights=lpips,
        sequential=True,
        budget_s=budget_s if math.isfinite(budget_s) else math.inf,
        split_stages=everything,
        count_flops=everything,
        energy=everything,
        quality=everything,
    )


def settings_block(settings: Settings) -> dict[str, object]:
    """What a results' settings block records of the profile, the budget and the variant selection."""
    return {
        "profile": settings.profile,
        "variant_budget": "auto" if settings.variant_budget is None else settings.variant_budget,
        "variant_selection": settings.variant_selection,
    }
