"""What each profile (``options.PROFILES``) measures, as the measurement core's options.

- ``gate``: the gated signals only (``analysis.comparison.DEFAULT_GATE``: the side-by-side wall ratio,
  kernel time and launches, peak memory), so no stage split, FLOPs, image quality or energy; rounds and
  profiled passes stop once their intervals are narrow enough for the gate's thresholds
  (``measure.sequential``), within the variant's budget;
- ``full``: every signal, rounds and passes stopped the same way;
- ``reference``: every signal, the fixed rounds of the reference protocol (``core.rounds_per_run``).

Under a session budget (``measure.session_budget``) each variant of gate and full is measured under its
share of the session's deadline (``variant_settings``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_sdxl.measure.core import MeasuringOptions

if TYPE_CHECKING:
    from pytest_sdxl.measure.session_budget import SessionDeadline
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


def timed_budget_s(settings: Settings, device_type: str) -> float | None:
    """Seconds of timed rounds a variant is given (all its runs), or None where rounds are fixed (reference)."""
    return None if settings.profile == "reference" else settings.budget_for(device_type)


def variant_settings(settings: Settings, deadline: SessionDeadline | None, device_type: str, left: int) -> Settings:
    """The settings one variant is measured under: under a session budget, its variant budget is its share.

    ``left``: the variants still to measure, this one included (``SessionDeadline.share_s``).
    """
    if deadline is None or settings.profile == "reference":
        return settings
    return settings.with_changes(variant_budget=deadline.share_s(settings.budget_for(device_type), left))


def settings_block(settings: Settings) -> dict[str, object]:
    """What a results' settings block records of the profile, the budgets and the variant selection."""
    return {
        "profile": settings.profile,
        "variant_budget": "auto" if settings.variant_budget is None else settings.variant_budget,
        "session_budget": settings.session_budget,
        "variant_selection": settings.variant_selection,
    }
