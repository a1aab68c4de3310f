"""The command line's progress display: one live line on a terminal, plain lines in a log.

``ProgressEvent`` is what the protocol reports as it goes; ``ProgressDisplay`` is a ``Progress``
callable that shows it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

FINAL_STEPS = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class ProgressEvent:
    """What the protocol is doing now; ``str(event)`` is a one-line description."""

    variant: str
    run: int
    runs: int
    step: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.variant} run {self.run}/{self.runs}" if self.run else self.variant
        return f"{where}: {self.step}" + (f" ({self.detail})" if self.detail else "")


Progress = Callable[[ProgressEvent], None]


class ProgressDisplay:
    """Shows which variant, run and step the protocol is at, and how long the variant has taken."""

    def __init__(self, total_variants: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total_variants = total_variants
        self.seen: list[str] = []
        self.variant_started = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        if event.variant not in self.seen and event.step not in FINAL_STEPS and event.run:
            self.seen.append(event.variant)
            self.variant_started = time.perf_counter()
        position = f"[{max(len(self.seen), 1)}/{self.total_variants}]"
        elapsed = time.perf_counter() - self.variant_started
        if event.step in FINAL_STEPS:
            self.finish_line(f"{position} {event}  {elapsed:.1f} s")
        elif self.live:
            self.stream.write(f"\r\033[K{position} {event}  {elapsed:.1f} s")
            self.stream.flush()
        elif event.step != "generation":
            # In a log, one line per load and first generation is enough; per-generation lines are noise.
            self.stream.write(f"{position} {event}\n")
            self.stream.flush()

    def finish_line(self, text: str) -> None:
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
