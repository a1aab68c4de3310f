"""How long this process had lived when it first measured: what a fresh process costs before it times.

Read from the kernel's record of when the process started (``/proc/self/stat``, Linux), against
the same boot-time clock, so the interpreter's own start and every import before pytest_sdxl's
(pytest and its other plugins, the CLI) are counted: a clock started at the package's import would
miss them, and they are what a CI job waits for too. The kernel counts in clock ticks (10 ms on
most hosts), far finer than the seconds measured. Off Linux the age is None.

The measurement core calls ``mark_first_timed_round`` as each timed round starts; only the first
call of the process is kept.
"""

from __future__ import annotations

import os
import time

_first_timed_round_s: list[float | None] = []


def process_age_s() -> float | None:
    """Seconds since this process started, or None where the kernel does not say (not Linux)."""
    boot_clock = getattr(time, "CLOCK_BOOTTIME", None)
    if boot_clock is None:
        return None
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # The command name (field 2) may hold spaces and parentheses: fields are counted after its ")".
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        started = int(fields[19]) / ticks_per_second  # field 22, starttime, in ticks since boot
    except (OSError, ValueError, IndexError):
        return None
    return max(time.clock_gettime(boot_clock) - started, 0.0)


def mark_first_timed_round() -> None:
    """Keep the process's age at its first timed round; later calls change nothing."""
    if not _first_timed_round_s:
        _first_timed_round_s.append(process_age_s())


def first_timed_round_s() -> float | None:
    """Seconds from the process's start to its first timed round; None before it, or where unknown."""
    return _first_timed_round_s[0] if _first_timed_round_s else None
