"""Two pipelines timed back to back in one process, round after round: asv's side-by-side ratios.

``alternating_rounds`` times two sides round after round in alternating order and ``ratio_of_minima`` turns
their samples into one ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_sdxl.measure.core import MIN_RATIO_SAMPLES


def alternating_rounds(
    first: Callable[[], float],
    second: Callable[[], float],
    min_rounds: int = MIN_RATIO_SAMPLES,
    min_seconds: float = 5.0,
    max_rounds: int = 61,
) -> tuple[list[float], list[float]]:
    """Samples of two sides timed back to back, round after round, in alternating order.

    Each side is a function that times itself (a ``TimedLoop`` round) and returns seconds per
    image. Whatever slows the machine for a while slows both sides; alternating the order keeps
    either from always running on a warmer cache. Rounds go on until ``min_rounds`` are done and
    ``min_seconds`` measured, or ``max_rounds``.
    """
    firsts: list[float] = []
    seconds: list[float] = []
    measured = 0.0
    for round_index in range(max_rounds):
        if round_index % 2 == 0:
            firsts.append(first())
            seconds.append(second())
        else:
            seconds.append(second())
            firsts.append(first())
        measured += firsts[-1] + seconds[-1]
        if len(firsts) >= min_rounds and measured >= min_seconds:
            break
    return firsts, seconds


def ratio_of_minima(first: Sequence[float], second: Sequence[float]) -> float:
    """min(first) / min(second): host jitter only adds time, so each side's minimum is its steadiest figure.

    The batch-over-one-by-one ratio of minima from 40 alternating rounds moved 1.3 % across fresh
    processes, where the ratio of medians moved 37 % (the user guide's method page, "Minima, not medians").
    """
    return min(first) / min(second)
