"""A session budget: one deadline for a whole session's measuring, shared out variant by variant.

``--session-budget SECONDS`` bounds the wall time of a session's measuring with everything counted:
loads, first generations, compiles, warm-ups, timed rounds, stage splits and profiled passes. Only
the timed rounds can be shortened (``measure.sequential``), so before each variant its budget of timed
rounds becomes the smaller of its own variant budget and an equal share of the seconds left among
the variants left, itself included. What earlier variants spent beyond their shares (a load, a
compile) is so taken from the later ones, and a variant that stops early leaves its rest to them. The one
compile that can give up, ``compile_max_autotune``'s, gives up at that equal part of what is left
(``equal_part_s``), which may be far below its own compile budget.

A share can reach zero. The variant then still times its minimum rounds, since a figure from fewer
would not be valid, so a session can end past its deadline; its results say by how much
(``session_overrun_s``) instead of hiding it. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The deadline's clock where none is given; the tests of a whole session put a fake in its place.
CLOCK: Callable[[], float] = time.perf_counter


class SessionDeadline:
    """A session's deadline, from when it is made; ``share_s`` gives each variant its seconds of timed rounds.

    ``clock`` reads seconds (``CLOCK`` where none is given).
    """

    def __init__(self, budget_s: float, clock: Callable[[], float] | None = None) -> None:
        self.budget_s = budget_s
        self.clock = CLOCK if clock is None else clock
        self.started = self.clock()

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def left_s(self) -> float:
        """Seconds to the deadline; zero once it has passed, never negative."""
        return max(0.0, self.budget_s - self.elapsed_s())

    def overrun_s(self) -> float:
        """Seconds past the deadline; zero while it holds."""
        return max(0.0, self.elapsed_s() - self.budget_s)

    def share_s(self, variant_budget_s: float, variants_left: int) -> float:
        """A variant's seconds of timed rounds: its own budget, or less, an equal part of what is left.

        ``variants_left`` counts the variants still to measure, this one included.
        """
        return min(variant_budget_s, self.equal_part_s(variants_left))

    def equal_part_s(self, variants_left: int) -> float:
        """An equal part of the seconds left, over ``variants_left`` (this variant included): all a variant's
        time, loads and compiles included, where it is not to take the others'; a compile that can give up
        (``compile_max_autotune``) gives up there."""
        if variants_left < 1:
            raise ValueError(f"variants left must be at least 1 (this variant), got {variants_left}")
        return self.left_s() / variants_left

    def recorded(self) -> dict[str, float]:
        """What a results' settings block records of the deadline now: the seconds spent and those past it."""
        return {"session_elapsed_s": round(self.elapsed_s(), 1), "session_overrun_s": round(self.overrun_s(), 1)}
