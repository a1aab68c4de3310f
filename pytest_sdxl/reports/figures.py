"""Figures as people read them: each kind rounded to the digits that carry meaning.

Times get three significant digits: a timing repeats to about 1 % at best, so a fourth digit is
noise, and a fixed number of decimals would print 0.0 for a fast stage or 12345.678 for a slow load.
Percentages get one decimal, ratios three (a 0.5 % change must still show), memory two decimals of
a GB. Only the display rounds: results.json keeps every digit. A figure that is missing (NaN or
None) reads '-'.
"""

from __future__ import annotations

import math

MISSING = "-"
TIME_DIGITS = 3


def significant(value: float | None, digits: int = TIME_DIGITS) -> str:
    """``digits`` significant digits in fixed-point notation (12345.678 -> '12346', 0.0123456 -> '0.0123')."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value) or value == 0:
        return str(value) if math.isinf(value) else "0"
    # Rounded first, so that 9.996 becomes 10.0 (three digits) rather than 10.00.
    rounded = float(f"{value:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def seconds(value: float | None) -> str:
    return significant(value)


def milliseconds(value_s: float | None) -> str:
    """Seconds shown as milliseconds."""
    return MISSING if value_s is None or math.isnan(value_s) else significant(value_s * 1000)


def percent(fraction: float | None) -> str:
    return MISSING if fraction is None or math.isnan(fraction) else f"{fraction * 100:.1f} %"


def ratio(value: float | None, suffix: str = "") -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.3f}{suffix}"


def gigabytes(value: float | None) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.2f}"
