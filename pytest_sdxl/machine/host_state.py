"""How much the host let the measuring thread run while it was timed: run-queue waits, preemptions, stolen time.

On one GPU the wall clock measures the host thread that launches the kernels (the GPU is busy a
fraction of an eager call), so a host that keeps that thread waiting for a CPU makes every call
slower without the code changing. Three readings tell such a host apart from slower code:

- **run-queue wait**: the seconds the thread was ready to run but no CPU ran it (the second field of
  ``/proc/thread-self/schedstat``; Linux with scheduler statistics). A sleep or a blocking wait in the
  code is not counted: only time the host took.
- **preemptions**: how often the kernel took the CPU from the thread (``ru_nivcsw`` of
  ``getrusage(RUSAGE_THREAD)``), a count where the wait itself is not available.
- **steal**: CPU time the hypervisor gave to other guests (the ``steal`` column of ``/proc/stat``, over all
  CPUs), which the guest's own scheduler cannot see.

A reading is taken before and after each timed round, of the variant's calls and of its side-by-side
reference's (the wall ratio reads both); their difference is the round's sample, and a run's samples
add up to its summary (sums merge exactly, as a side of a comparison is every run of it). A figure
the host cannot give stays None and its summary says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEDSTAT = Path("/proc/thread-self/schedstat")
PROC_STAT = Path("/proc/stat")
# ``/proc/stat``'s first line: "cpu user nice system idle iowait irq softirq steal ...", in clock ticks.
STEAL_FIELD = 8
NOT_RECORDED = "not recorded (these results predate host state readings)"
# The wall-ratio gate flags a head 2.5 % slower (``analysis.comparison``): where the measuring thread drives
# the device, time it spent waiting for a CPU adds to the wall time one for one, so shares further apart than
# that can explain a wall verdict on their own.
DEFAULT_WAIT_TOLERANCE = 0.025


@dataclass(frozen=True)
class HostReading:
    """The measuring thread's and the host's counters at one instant; None where this host does not give one."""

    wall_s: float
    waited_s: float | None
    preemptions: int | None
    steal_s: float | None


@dataclass(frozen=True)
class HostStateSample:
    """What happened between two readings: the wall seconds, and how much of them the host took."""

    wall_s: float
    waited_s: float | None
    preemptions: int | None
    steal_s: float | None

    @classmethod
    def between(cls, before: HostReading, after: HostReading) -> HostStateSample:
        def change(first: float | None, second: float | None) -> float | None:
            return None if first is None or second is None else max(second - first, 0.0)

        preemptions = change(before.preemptions, after.preemptions)
        return cls(
            wall_s=max(after.wall_s - before.wall_s, 0.0),
            waited_s=change(before.waited_s, after.waited_s),
            preemptions=None if preemptions is None else int(preemptions),
            steal_s=change(before.steal_s, after.steal_s),
        )


def thread_wait_seconds() -> float | None:
    """The calling thread's run-queue wait so far; None without scheduler statistics.

    Some kernels (and sandboxes) keep the file but never count: a thread that has run with nothing
    counted as running reads as unavailable, not as a thread that never waited.
    """
    try:
        fields = SCHEDSTAT.read_text().split()
        running_ns, waiting_ns = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    if running_ns == 0:
        return None
    return waiting_ns / 1e9


def thread_preemptions() -> int | None:
    """How often the calling thread was preempted so far; None where ``RUSAGE_THREAD`` does not exist."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw)  # type: ignore[attr-defined]
    except (ImportError, AttributeError, OSError):
        return None


def host_steal_seconds() -> float | None:
    """CPU seconds stolen from this guest so far, summed over its CPUs; None off Linux or without the column."""
    try:
        fields = PROC_STAT.read_text().split("\n", 1)[0].split()
        ticks = int(fields[STEAL_FIELD])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def read_host() -> HostReading:
    """The counters now, for the calling thread (the one that times the calls)."""
    return HostReading(time.perf_counter(), thread_wait_seconds(), thread_preemptions(), host_steal_seconds())


def host_cpus() -> int:
    """The CPUs this process may run on: the steal share is of these, not of the whole host."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class HostStateSummary:
    """A run's (or a side's) samples added up; a figure no sample had is None, and without samples
    ``not_applicable`` says why."""

    rounds: int = 0
    wall_s: float = 0.0
    waited_s: float | None = None
    preemptions: int | None = None
    steal_s: float | None = None
    cpus: int = 1
    not_applicable: str = ""

    @property
    def waited_share(self) -> float | None:
        """The share of the timed wall time the measuring thread spent waiting for a CPU."""
        return None if self.waited_s is None or self.wall_s <= 0 else self.waited_s / self.wall_s

    @property
    def preemptions_per_s(self) -> float | None:
        return None if self.preemptions is None or self.wall_s <= 0 else self.preemptions / self.wall_s

    @property
    def steal_share(self) -> float | None:
        """The share of the process's CPUs' time the hypervisor gave to other guests while it was timed."""
        return None if self.steal_s is None or self.wall_s <= 0 else self.steal_s / (self.wall_s * self.cpus)

    def describe(self) -> str:
        """One line: 'waited for a CPU 0.4 % of 12.3 s timed, 3.1 preemptions/s, steal 0.0 %' or 'n/a: <reason>'."""
        if not self.rounds:
            return f"n/a: {self.not_applicable or 'no readings'}"
        parts = []
        if self.waited_share is not None:
            parts.append(f"waited for a CPU {self.waited_share:.1%} of {self.wall_s:.1f} s timed")
        else:
            parts.append(f"run-queue wait n/a ({self.wall_s:.1f} s timed)")
        if self.preemptions_per_s is not None:
            parts.append(f"{self.preemptions_per_s:.1f} preemptions/s")
        if self.steal_share is not None:
            parts.append(f"steal {self.steal_share:.1%}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """For results.json: the sums, which merge exactly, and the shares they give."""
        return {
            "rounds": self.rounds,
            "wall_s": self.wall_s,
            "waited_s": self.waited_s,
            "preemptions": self.preemptions,
            "steal_s": self.steal_s,
            "cpus": self.cpus,
            "waited_share": self.waited_share,
            "steal_share": self.steal_share,
            "not_applicable": self.not_applicable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HostStateSummary:
        """The summary ``as_dict`` wrote; a run recorded without one reads as n/a, not recorded."""
        if not data:
            return cls(not_applicable=NOT_RECORDED)

        def optional(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else float(value)

        preemptions = data.get("preemptions")
        return cls(
            rounds=int(data.get("rounds", 0)),
            wall_s=float(data.get("wall_s", 0.0)),
            waited_s=optional("waited_s"),
            preemptions=None if preemptions is None else int(preemptions),
            steal_s=optional("steal_s"),
            cpus=max(int(data.get("cpus", 1)), 1),
            not_applicable=str(data.get("not_applicable", "")),
        )


def _total(values: Iterable[float | None]) -> float | None:
    """The sum, or None when any part is missing: a share over part of the time would mislead."""
    parts = list(values)
    return None if not parts or any(value is None for value in parts) else sum(value for value in parts if value)


def summarize(samples: Iterable[HostStateSample | None], cpus: int | None = None) -> HostStateSummary:
    """A run's samples added up (None for a round without readings); n/a when none."""
    taken = [sample for sample in samples if sample is not None]
    if not taken:
        return HostStateSummary(not_applicable="no readings")
    on = cpus if cpus is not None else host_cpus()
    return merge(
        HostStateSummary(1, sample.wall_s, sample.waited_s, sample.preemptions, sample.steal_s, on) for sample in taken
    )


def merge(summaries: Iterable[HostStateSummary]) -> HostStateSummary:
    """Several runs' summaries as one (a side of a comparison); n/a with every reason when none has readings."""
    every = list(summaries)
    measured = [summary for summary in every if summary.rounds]
    if not measured:
        reasons = dict.fromkeys(summary.not_applicable for summary in every if summary.not_applicable)
        return HostStateSummary(not_applicable="; ".join(reasons) or "no readings")
    wall = sum(summary.wall_s for summary in measured)
    preemptions = _total(summary.preemptions for summary in measured)
    # Steal is summed over CPUs: a side whose runs had different CPU counts weighs each by its wall time.
    cpus = round(sum(summary.cpus * summary.wall_s for summary in measured) / wall) if wall > 0 else 1
    return HostStateSummary(
        rounds=sum(summary.rounds for summary in measured),
        wall_s=wall,
        waited_s=_total(summary.waited_s for summary in measured),
        preemptions=None if preemptions is None else int(preemptions),
        steal_s=_total(summary.steal_s for summary in measured),
        cpus=max(cpus, 1),
    )


def compare_host_states(
    base: HostStateSummary,
    head: HostStateSummary,
    tolerance: float = DEFAULT_WAIT_TOLERANCE,
    sides: tuple[str, str] = ("base", "head"),
) -> list[str]:
    """What a reader must know before a wall verdict: one side's host kept its measuring thread from a CPU
    (or gave its CPUs to other guests) for a share of the timed time further from the other's than ``tolerance``.

    Empty when both hosts let the thread run alike, or when neither side could read it.
    """
    first, second = sides
    sentences = []
    for label, reading in (
        ("its measuring thread waited for a CPU", "waited_share"),
        ("the hypervisor gave its CPUs to other guests", "steal_share"),
    ):
        base_share, head_share = getattr(base, reading), getattr(head, reading)
        if base_share is None or head_share is None or abs(head_share - base_share) <= tolerance:
            continue
        busier, quieter = (second, first) if head_share > base_share else (first, second)
        sentences.append(
            f"The {busier}'s host was busier: {label} {max(base_share, head_share):.1%} of its timed time, against "
            f"{min(base_share, head_share):.1%} on the {quieter}; that alone can move a wall-time verdict, not "
            "kernel time."
        )
    return sentences
