"""Comparing two result sets: per variant and signal, the ratio new / base, its interval and a verdict.

Each signal has its own rule, and each verdict names the statistic it rests on:

- ``kernels`` (kernel launches per image) is **exact**: the GPU launches the same kernels for the
  same work, so any increase is a regression and any decrease is reported as a change;
- ``kernel_ms`` (the GPU's summed kernel time per image) is steady to well under 1 %: its own
  threshold, 2 % by default;
- ``wall_ratio`` (the variant's wall time beside its side-by-side reference,
  ``measure.core.side_by_side_reference``, timed in alternating rounds in the same process) is judged on
  blocks of rounds by the host-adjusted test (``host_adjusted``): the ratio new / base of the variant's
  minimum at equal reference speed, which cancels what the machine does: threshold 5 %;
- ``avg_gen_s`` (wall time per image) follows the host: compared on each run's **minimum** by
  default (host jitter only adds time), threshold 5 %;
- ``init_gen_s``, ``load_s``, ``total_s`` and ``peak_gpu_mem_gb``: one value per run.

Which signals can fail a comparison is the ``gate`` (default: kernel launches, kernel time, the
side-by-side wall ratio and peak memory). The others are judged and shown but only inform: the
absolute wall minima of unchanged variants move several percent between two processes, more than
any threshold worth gating on (the user guide's method page, "Absolute wall time between processes").

Samples within a run are not independent, so a run is the unit: each run is reduced to its
statistic, then Welch's t test on the logarithms of the per-run statistics (``stats.compare_runs``)
gives the ratio of geometric means, its 95 % interval (never below zero) and the p-value. The wall
ratio's units are blocks of rounds instead, since its fit takes the host's speed out of each block
(``host_adjusted``; its detection and false-alarm rates: the method page, "Blocks of rounds and the
host-adjusted wall test"). The p-values of every gated comparison in the report are Holm-adjusted
together, since many variants and signals are tested at once (the informing ones form a family of
their own). A change is a regression only when it is large enough and significant at ``alpha`` after
the adjustment. A threshold names the smallest change the gate must catch, so the estimate must pass
``FLAG_SHARE`` (half) of it: a 5 % wall threshold flags a significant change above 2.5 %, and a 5 %
slowdown is not left to a coin toss at the bound (the method page, "Flagging past half the
threshold"). With fewer than two runs on a side the verdict is ``insufficient data`` (one load time
per plugin session can never reach alpha). A variant that ran before and fails now is a regression;
one that is skipped now is not.

Runs of one process share that process's level, and two processes of the same code differ by several
percent, so where either side's runs come from two processes or more (``RunRecord.process``; ``merge
--pool-runs`` keeps each session's), the process is the unit instead: ``processes`` fits a mixed model
with a random level per process and tests on the processes' degrees of freedom. Kernel launches keep
their exact rule. Where each side is one process, the comparison is the run-level one above and says
that it cannot judge the drift between processes (``drift_unjudged``, ``drift_note``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pytest_sdxl.analysis.host_adjusted import compare_host_adjusted
from pytest_sdxl.analysis.processes import compare_processes, process_count
from pytest_sdxl.analysis.stats import RUN_STATISTICS, RunComparison, compare_runs, count_runs, holm, run_statistic
from pytest_sdxl.analysis.stretches import left_out_note, without_stretches
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

DEFAULT_THRESHOLD = 0.05
# Unchanged kernel time moves at most about 0.5 % between processes (the user guide's method page,
# "Kernel time between processes"): a 2 % slowdown, flagged past 1 %, stands clear of that.
DEFAULT_KERNEL_THRESHOLD = 0.02
# A threshold is the smallest change the gate is sized to catch, so a change is flagged once its
# estimate passes this share of it: a bound *at* the threshold flags a change of exactly that size
# half the time at best (the method page, "Flagging past half the threshold").
FLAG_SHARE = 0.5
DEFAULT_ALPHA = 0.05
DEFAULT_WALL_STATISTIC = "min"
ONE_PROCESS_NOTE = "one process a side: process-to-process drift not judged"


@dataclass(frozen=True)
class Signal:
    """One compared signal: where its samples come from and which rule judges it."""

    name: str
    samples: str  # the key of ``VariantRecord.run_samples``
    rule: str  # "exact", "threshold" or "host-adjusted"
    description: str


SIGNALS = (
    Signal("wall_ratio", "wall_pair", "host-adjusted", "wall time at equal side-by-side reference speed"),
    Signal("avg_gen_s", "gen_s", "threshold", "wall s per image"),
    Signal("kernel_ms", "kernel_ms", "threshold", "GPU kernel ms per image"),
    Signal("kernels", "kernels", "exact", "kernel launches per image"),
    Signal("init_gen_s", "init_gen_s", "threshold", "first generation s"),
    Signal("load_s", "load_s", "threshold", "load s"),
    Signal("total_s", "total_s", "threshold", "run total s"),
    Signal("peak_gpu_mem_gb", "peak_gpu_mem_gb", "threshold", "peak GPU GB"),
)
SIGNALS_BY_NAME = {signal.name: signal for signal in SIGNALS}
METRIC_NAMES = tuple(SIGNALS_BY_NAME)
DEFAULT_GATE = ("wall_ratio", "kernel_ms", "kernels", "peak_gpu_mem_gb")


@dataclass(frozen=True)
class Rules:
    """Thresholds, significance level and the wall statistic of one comparison."""

    threshold: float = DEFAULT_THRESHOLD
    kernel_threshold: float = DEFAULT_KERNEL_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    wall_statistic: str = DEFAULT_WALL_STATISTIC
    metrics: tuple[str, ...] = METRIC_NAMES
    gate: tuple[str, ...] = DEFAULT_GATE

    def threshold_of(self, signal: str) -> float:
        return self.kernel_threshold if signal == "kernel_ms" else self.threshold

    def statistic_of(self, signal: str) -> str:
        return self.wall_statistic if signal == "avg_gen_s" else "median"


@dataclass(frozen=True)
class MetricComparison:
    """One variant's signal in both result sets and what the comparison concludes."""

    variant: str
    metric: str
    verdict: str  # regressed, improved, changed, unchanged, insufficient data, failed, missing, skipped
    ratio: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan  # Holm-adjusted once the whole report is compared
    test: str = ""
    base_count: int = 0
    new_count: int = 0
    note: str = ""
    threshold: float = math.nan
    gated: bool = True  # False: judged and shown, but it cannot fail the comparison
    # How many processes measured the base's and the new side's runs; (0, 0) where nothing was compared.
    processes: tuple[int, int] = (0, 0)

    @property
    def regressed(self) -> bool:
        return self.gated and self.verdict in ("regressed", "failed")

    @property
    def flag_line(self) -> float:
        """The ratio past which a significant change is flagged: 1 plus ``FLAG_SHARE`` of the threshold."""
        return 1 + FLAG_SHARE * self.threshold

    @property
    def drift_unjudged(self) -> bool:
        """Judged on one process a side: its noise is run to run only, blind to the drift between processes."""
        signal = SIGNALS_BY_NAME.get(self.metric)
        return self.processes == (1, 1) and signal is not None and signal.rule != "exact"


def compare_exact(variant: str, base: list[list[float]], new: list[list[float]]) -> MetricComparison:
    """Kernel launches per image: any increase regresses, any decrease is a change worth reporting."""
    base_value = statistics.median(value for run in base for value in run)
    new_value = statistics.median(value for run in new for value in run)
    ratio = new_value / base_value if base_value else math.nan
    if new_value > base_value:
        verdict = "regressed"
    elif new_value < base_value:
        verdict = "changed"
    else:
        verdict = "unchanged"
    return MetricComparison(
        variant,
        "kernels",
        verdict,
        ratio=ratio,
        test=f"exact: median launches per image {base_value:g} -> {new_value:g}",
        base_count=len(base),
        new_count=len(new),
    )


def compare_signal(
    variant: str,
    signal: Signal,
    base: list[list[float]],
    new: list[list[float]],
    rules: Rules,
    base_processes: Sequence[str] = (),
    new_processes: Sequence[str] = (),
) -> MetricComparison:
    """Ratio, interval and raw p-value of one signal; the verdict waits for the Holm adjustment.

    ``*_processes`` name the process of each run (of each block for the wall ratio); without them every run
    of a side counts as one process's.
    """
    counts = (process_count(base_processes), process_count(new_processes))
    if signal.rule == "exact":
        return replace(compare_exact(variant, base, new), processes=counts)
    if min(value for run in base + new for value in run) <= 0:
        return MetricComparison(variant, signal.name, "unchanged", note="non-positive samples: not compared")
    stretches = ""
    if signal.rule == "host-adjusted":
        kept_base, kept_new = without_stretches(base, base_processes), without_stretches(new, new_processes)
        base, base_processes = kept_base.blocks, kept_base.processes
        new, new_processes = kept_new.blocks, kept_new.processes
        stretches = left_out_note(kept_base.left_out, kept_new.left_out)
    if max(counts) > 1:
        result = compare_across_processes(signal, base, new, base_processes, new_processes, rules)
    elif signal.rule == "host-adjusted":
        result = compare_host_adjusted(base, new)
    else:
        result = compare_runs(base, new, statistic=rules.statistic_of(signal.name))
    return MetricComparison(
        variant,
        signal.name,
        "insufficient data" if result.insufficient else "pending",
        ratio=result.ratio,
        low=result.low,
        high=result.high,
        p_value=result.p_value,
        test=result.test + stretches,
        base_count=result.base_runs,
        new_count=result.new_runs,
        note=result.insufficient,
        threshold=rules.threshold_of(signal.name),
        processes=counts,
    )


def compare_across_processes(
    signal: Signal,
    base: list[list[float]],
    new: list[list[float]],
    base_processes: Sequence[str],
    new_processes: Sequence[str],
    rules: Rules,
) -> RunComparison:
    """The signal with each process as a sample (``processes``): each run's statistic, or each wall block
    as [variant minimum, reference minimum] with the reference as the covariate."""
    base_processes = base_processes or [""] * len(base)  # no ids: one process
    new_processes = new_processes or [""] * len(new)
    for side, units, processes in (("base", base, base_processes), ("new", new, new_processes)):
        if len(units) != len(processes):
            raise ValueError(f"{signal.name}: the {side} side has {len(units)} runs but {len(processes)} process ids")
    if signal.rule == "host-adjusted":
        return compare_processes(
            [block[0] for block in base],
            base_processes,
            [block[0] for block in new],
            new_processes,
            base_covariate=[block[1] for block in base],
            new_covariate=[block[1] for block in new],
            what="variant minimum per block on log reference minimum",
        )
    statistic = rules.statistic_of(signal.name)
    return compare_processes(
        [run_statistic(run, statistic) for run in base],
        base_processes,
        [run_statistic(run, statistic) for run in new],
        new_processes,
        what=f"per-run {statistic}",
    )


def compare_variant(base: VariantRecord, new: VariantRecord | None, rules: Rules) -> list[MetricComparison]:
    if new is None:
        return [MetricComparison(base.variant, "-", "missing", note="not in the new results")]
    if not base.ok:
        return [MetricComparison(base.variant, "-", "missing", note=f"base {base.status}: {base.reason}")]
    if new.status == "failed":
        return [MetricComparison(base.variant, "-", "failed", note=new.reason)]
    if not new.ok:
        return [MetricComparison(base.variant, "-", "skipped", note=f"new {new.status}: {new.reason}")]
    comparisons = []
    for name in rules.metrics:
        signal = SIGNALS_BY_NAME[name]
        base_runs, new_runs = base.run_samples(signal.samples), new.run_samples(signal.samples)
        if not base_runs and not new_runs:
            continue  # peak GPU memory or kernel signals on a CPU: nothing to compare
        if not base_runs or not new_runs:
            side = "base" if not base_runs else "new"
            comparisons.append(MetricComparison(base.variant, name, "missing", note=f"no samples on the {side} side"))
            continue
        short = short_of_runs(base, new) if signal.rule == "host-adjusted" else ""
        if short:
            comparison = MetricComparison(base.variant, name, "insufficient data", note=short)
        else:
            comparison = compare_signal(
                base.variant,
                signal,
                base_runs,
                new_runs,
                rules,
                base.run_processes(signal.samples),
                new.run_processes(signal.samples),
            )
        comparisons.append(replace(comparison, gated=name in rules.gate))
    return comparisons


def short_of_runs(base: VariantRecord, new: VariantRecord) -> str:
    """Why the wall ratio cannot be judged: blocks of one run share that run's state, so two runs a side are needed.

    The host-adjusted test takes blocks as its units, but a run's blocks share its pipeline build
    and whatever else one run fixes; with at least two runs a side, what differs between runs is in
    the blocks' scatter too (one pytest-benchmark round, the plugin's single run, is not enough).
    """
    counts = {
        side: sum(1 for run in record.runs if run.gen_s and run.reference_gen_s)
        for side, record in (("base", base), ("new", new))
    }
    short = [f"{count_runs(count)} on the {side} side" for side, count in counts.items() if count < 2]
    if not short:
        return ""
    return f"{' and '.join(short)}: the wall ratio needs at least 2 runs a side (their blocks share a run's state)"


def decide(comparisons: list[MetricComparison], rules: Rules) -> list[MetricComparison]:
    """Holm-adjust the p-values of each family of pending comparisons, then give each its verdict.

    The gated comparisons (those that can fail the run) are one family, the informing ones another:
    what is only shown should not dilute what decides.
    """
    decided = list(comparisons)
    for gated in (True, False):
        pending = [index for index, item in enumerate(comparisons) if item.verdict == "pending" and item.gated == gated]
        adjusted = holm([comparisons[index].p_value for index in pending])
        for index, p_value in zip(pending, adjusted, strict=True):
            decided[index] = verdict_of(comparisons[index], p_value, rules)
    return decided


def verdict_of(item: MetricComparison, p_value: float, rules: Rules) -> MetricComparison:
    """The verdict of one comparison at its Holm-adjusted p-value."""
    significant = not math.isnan(p_value) and p_value < rules.alpha
    bound = item.threshold * FLAG_SHARE
    if significant and item.ratio > 1 + bound:
        verdict = "regressed"
    elif significant and item.ratio < 1 - bound:
        verdict = "improved"
    else:
        verdict = "unchanged"
    return replace(item, verdict=verdict, p_value=p_value, test=f"{item.test}, Holm-adjusted")


def compare_results(base: ResultSet, new: ResultSet, rules: Rules | None = None) -> list[MetricComparison]:
    """Every variant of the base result set against the new one, signal by signal."""
    chosen = rules or Rules()
    comparisons = []
    for record in base.variants:
        comparisons += compare_variant(record, new.variant(record.variant), chosen)
    known = {record.variant for record in base.variants}
    for record in new.variants:
        if record.variant not in known:
            comparisons.append(MetricComparison(record.variant, "-", "missing", note="not in the base results"))
    return decide(comparisons, chosen)


def drift_note(comparisons: Sequence[MetricComparison]) -> str:
    """The sentence a report shows where a signal was judged on one process a side; "" where none was."""
    if not any(item.drift_unjudged for item in comparisons):
        return ""
    return (
        f"{ONE_PROCESS_NOTE}: each side's runs came from one process, so the intervals and p-values hold "
        "run-to-run noise only, and two processes of the same code can differ by more than a threshold; "
        "give compare several processes a side (merge --pool-runs of several results files, or pytest-sdxl ab)"
    )


def parse_metrics(text: str) -> tuple[str, ...]:
    """'avg_gen_s,kernel_ms' -> the signals to compare; the error lists the accepted names."""
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in METRIC_NAMES]
    if unknown or not chosen:
        raise ValueError(f"metrics {text!r} not accepted; choose from {', '.join(METRIC_NAMES)} (comma-separated)")
    return chosen


def parse_statistic(text: str) -> str:
    if text not in RUN_STATISTICS:
        raise ValueError(f"statistic {text!r} not accepted; choose one of {', '.join(RUN_STATISTICS)}")
    return text


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05; the error says what is accepted."""
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number < 1 or (not value.endswith("%") and number >= 1):
        raise ValueError(f"threshold {text!r} is not accepted; give a percentage like 5% or a fraction like 0.05")
    return number
