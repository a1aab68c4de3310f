"""The GPU state in the reports: one row per run (clocks, temperature, power against the cap, throttling).

A run's state is the summary of the readings taken after each of its timed rounds
(``machine.gpu_state``). A throttled run is marked in its row and named under the summary table: its
times are slower than the card's unthrottled speed, which can explain a difference on its own. Where
nothing was read (a CPU, no ``nvidia-ml-py``, results that predate the readings) the report says "n/a"
with the reason in one line instead of a table of empty cells.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_sdxl.machine.gpu_state import GpuStateSummary, Range, merge
from pytest_sdxl.reports.layout import fitted_tables, joined, wrapped
from pytest_sdxl.results.records import RunRecord
from pytest_sdxl.results.schema import ResultSet

GPU_STATE_HEADER = ["variant", "run", "SM MHz", "memory MHz", "max °C", "power W (cap)", "throttled"]
THROTTLED = "THROTTLED"


def run_state(run: RunRecord) -> GpuStateSummary:
    """The run's summary; a run recorded without one reads as n/a, not recorded."""
    return run.gpu_state if run.gpu_state is not None else GpuStateSummary.from_dict(None)


def measured_runs(result_set: ResultSet) -> Iterable[tuple[str, RunRecord]]:
    for record in result_set.variants:
        if record.ok:
            for run in record.runs:
                yield record.variant, run


def side_state(result_set: ResultSet) -> GpuStateSummary:
    """Every measured run's state as one (a side of a comparison)."""
    return merge(run_state(run) for _, run in measured_runs(result_set))


def clock_cell(figure: Range | None) -> str:
    if figure is None:
        return "-"
    if round(figure.low) == round(figure.high):
        return f"{figure.low:.0f}"
    return f"{figure.low:.0f}–{figure.high:.0f}"


def power_cell(state: GpuStateSummary) -> str:
    if state.power_w is None:
        return "-"
    cap = "" if state.power_limit_w is None else f" ({state.power_limit_w.low:.0f})"
    return f"{state.power_w.mean:.0f}{cap}"


def throttled_cell(state: GpuStateSummary) -> str:
    if not state.throttled:
        return "no"
    reasons = ", ".join(state.throttle_reasons)
    return f"{THROTTLED}: {reasons} ({state.throttled_readings}/{state.readings})"


def state_row(variant: str, run: RunRecord, state: GpuStateSummary) -> list[str]:
    temperature = "-" if state.temperature_c is None else f"{state.temperature_c.high:.0f}"
    return [
        variant,
        str(run.run),
        clock_cell(state.sm_clock_mhz),
        clock_cell(state.memory_clock_mhz),
        temperature,
        power_cell(state),
        throttled_cell(state),
    ]


def not_read(result_set: ResultSet) -> dict[str, list[str]]:
    """Runs without readings, as 'variant run N', grouped by why."""
    reasons: dict[str, list[str]] = {}
    for variant, run in measured_runs(result_set):
        state = run_state(run)
        if not state.readings:
            reasons.setdefault(state.not_applicable or "no readings", []).append(f"{variant} run {run.run}")
    return reasons


def gpu_state_notes(result_set: ResultSet) -> list[str]:
    """Lines under the summary table: the one n/a line where nothing was read, and each throttled run."""
    runs = list(measured_runs(result_set))
    if not runs:
        return []
    if not any(run_state(run).readings for _, run in runs):
        return [f"- GPU state n/a: {'; '.join(not_read(result_set))}"]
    throttled = [
        f"{variant} run {run.run} ({', '.join(run_state(run).throttle_reasons)})"
        for variant, run in runs
        if run_state(run).throttled
    ]
    if not throttled:
        return []
    return [
        f"- {THROTTLED} (GPU state below): {', '.join(throttled)}; their times are slower than the card's "
        "unthrottled speed"
    ]


def gpu_state_table(result_set: ResultSet) -> list[str]:
    """The runs with readings, one row each, fitted to the terminal; below, the runs without and why.

    Empty where no run has a reading (``gpu_state_notes`` says n/a in one line instead).
    """
    rows = [
        state_row(variant, run, run_state(run)) for variant, run in measured_runs(result_set) if run_state(run).readings
    ]
    if not rows:
        return []
    lines = joined(fitted_tables(GPU_STATE_HEADER, rows, shared=2))
    missing = [f"- n/a for {', '.join(runs)}: {why}" for why, runs in not_read(result_set).items()]
    notes = [
        "- read after each timed round: SM and memory clock range, the highest temperature, mean power "
        "and the enforced cap; throttled: readings with a reason that held the clocks back",
        *missing,
    ]
    return [*lines, "", *wrapped(notes)]


def gpu_state_section(result_set: ResultSet, heading: str = "## GPU state") -> list[str]:
    """The results.md section (heading and table), or nothing where no run has a reading."""
    table = gpu_state_table(result_set)
    return ["", heading, "", *table] if table else []
