"""What ``ab`` says under its verdict: the measurement in one paragraph, and what would decide a signal left open.

``measurement_summary`` gives the processes a side and their order, the looks and their alpha, why the measurement
stopped, the CPUs, and how steady each side's reference calls were; ``undecided_lines`` gives, for each gated signal
still undecided at the last look, how far its interval reaches and what would decide it (more processes, a quieter
host, another machine). Apart from ``cli.ab``, which measures, writes the files and chooses the exit status: these
only put an outcome already measured into words, for the printed verdict and comparison.md alike.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_sdxl.analysis.comparison import MetricComparison
    from pytest_sdxl.measure.interleave import Interleaved
    from pytest_sdxl.results.schema import ResultSet


def undecided_lines(
    comparisons: Sequence[MetricComparison],
    still_open: Sequence[str],
    sides: Sequence[ResultSet],
    alpha: float,
) -> list[str]:
    """One line for each gated signal left open at the last look (``still_open``), and what would decide it.

    Open means no regression was found and none of the threshold's size was ruled out either (the interval's
    upper end at or past the flag line, ``measure.interleave.undecided``): on a host whose processes spread as
    much as the slowdown, that is the honest answer, and "no regression" alone would read as a pass. For a wall
    ratio, the spread between ``sides``' processes and the processes a side it would take to see the threshold
    there (``analysis.process_spread``) say whether more processes or a quieter host would decide it.
    """
    if not still_open:
        return []
    lines = []
    for item in comparisons:
        if f"{item.variant} {item.metric}" not in still_open:
            continue
        reach = f"its interval reaches {item.high:.3f}" if math.isfinite(item.high) else "it has no interval"
        line = (
            f"undecided: {item.variant} {item.metric} {item.ratio:.3f} ({item.verdict}): {reach}, at or past the "
            f"flag line {item.flag_line:.3f}, so a slowdown of its {item.threshold:.0%} threshold is not ruled out"
        )
        if item.metric == "wall_ratio":
            line += spread_clause(sides, item, alpha)
        lines.append(line)
    lines.append(what_would_decide(sides))
    return lines


def what_would_decide(sides: Sequence[ResultSet]) -> str:
    """The cure for an open wall signal, as the sides' host state tells it (``machine.host_state``).

    A timing thread that waited for a CPU past the wall threshold shared the runner's CPUs with other work, which
    keeping the runner to the job ends. One that hardly waited while its calls strayed all the same was slowed
    below what the machine sees of itself (a virtual machine's neighbours, on the shared GPU hosts measured), which
    only more processes or another machine get past.
    """
    from pytest_sdxl.machine.host_state import DEFAULT_WAIT_TOLERANCE
    from pytest_sdxl.reports.host_state import side_host_state

    shares = [share for side in sides if (share := side_host_state(side).waited_share) is not None]
    if len(shares) < len(sides):
        return (
            "more processes a side (--pairs) or a quieter host would decide it: the reference calls' steadiness "
            "above says how busy the host was"
        )
    waited = " and ".join(f"{share:.1%}" for share in shares)
    if max(shares) > DEFAULT_WAIT_TOLERANCE:
        return (
            f"the timing thread waited for a CPU {waited} of its timed time (base and head): other work shared "
            "the runner's CPUs; keep the runner to the job (or give ab CPUs of its own, --cpus), or take more "
            "processes a side (--pairs)"
        )
    return (
        f"the timing thread hardly waited for a CPU ({waited} of its timed time, base and head): what slowed the "
        "calls lies below what this machine sees of itself (a virtual machine's neighbours, say); more processes "
        "a side (--pairs) or another machine would decide it, keeping other work off the runner would not"
    )


def spread_clause(sides: Sequence[ResultSet], item: MetricComparison, alpha: float) -> str:
    """How far one side's processes landed apart on ``item``'s variant, and the processes a side its threshold
    takes there; "" where no side holds two processes."""
    from pytest_sdxl.analysis.process_spread import SIZING_POWER, processes_to_see, wall_ratio_spread

    spread, processes = wall_ratio_spread(sides, item.variant)
    if not (math.isfinite(spread) and spread > 0):
        return ""
    needed = processes_to_see(spread, item.threshold, alpha)
    return (
        f"; its processes' wall ratios spread {spread:.1%} within a side (standard deviation of the "
        f"logarithms, {processes} processes), where seeing {item.threshold:.0%} takes about {needed} "
        f"processes a side or more (two-sample t test, power {SIZING_POWER:g})"
    )


def measurement_summary(outcome: Interleaved, pinning: str) -> str:
    """One paragraph: processes and their order, the looks and their alpha, why it stopped, the CPUs."""
    from pytest_sdxl.measure.interleave import BASE, HEAD

    plan = outcome.plan
    looks = "; ".join(
        f"after block {look.block} ({look.processes_per_side} a side): "
        + (f"{len(look.undecided)} open" if look.undecided else "decided")
        for look in outcome.looks
    )
    alpha = outcome.looks[-1].alpha if outcome.looks else plan.rules.alpha
    return (
        f"base and head measured in {outcome.count(BASE)} and {outcome.count(HEAD)} fresh processes, "
        f"order {outcome.order or '-'} ({plan.order}); alpha {plan.rules.alpha:g} split over the planned looks "
        f"(Bonferroni): {alpha:.3g} a look; looks: {looks or 'none'}; stopped: {outcome.stop}; "
        f"{sum(outcome.seconds):.0f} s in processes; CPUs {pinning}" + steadiness_clause(outcome)
    )


def steadiness_clause(outcome: Interleaved) -> str:
    """The range over each side's processes of how steady their reference calls were; "" where none has any.

    Per process: the median over its runs of each run's median reference call over its fastest
    (``stats.median_over_fastest``), near 1 on a quiet host. Said, not judged: a busy host leaves the fastest
    calls the wall ratio takes, until it slows a whole variant's calls (the method page, "Where minima do not
    help").
    """
    from pytest_sdxl.analysis.stats import median_over_fastest

    ranges = []
    for side in ("base", "head"):
        pooled = getattr(outcome, side)
        by_process: dict[str, list[float]] = {}
        for record in pooled.variants if pooled is not None else []:
            for run in record.runs:
                if run.reference_gen_s:
                    by_process.setdefault(run.process, []).append(median_over_fastest(run.reference_gen_s))
        values = [statistics.median(each) for each in by_process.values()]
        if values:
            ranges.append(f"{side} {min(values):.2f}-{max(values):.2f}")
    if not ranges:
        return ""
    return f"; reference calls' median over fastest, a process: {', '.join(ranges)}"
