"""The host state in the reports: how much of each run's timed time the host kept the timing thread from a CPU.

A run's state adds up the readings taken around each of its timed rounds (``machine.host_state``): the
timing thread's run-queue wait, its preemptions, and the CPU time the hypervisor stole. Runs of one
side merge into that side's figure, which ``compare`` and ``ab`` print before their verdicts; a run's
own report says it in one line under its summary table, and names the variants whose thread waited for
a CPU past the wall gate's threshold.
"""

from __future__ import annotations

from pytest_sdxl.machine.host_state import DEFAULT_WAIT_TOLERANCE, HostStateSummary, merge
from pytest_sdxl.reports.gpu_state import measured_runs
from pytest_sdxl.results.records import RunRecord
from pytest_sdxl.results.schema import ResultSet


def run_host_state(run: RunRecord) -> HostStateSummary:
    """The run's summary; a run recorded without one reads as n/a, not recorded."""
    return run.host_state if run.host_state is not None else HostStateSummary.from_dict(None)


def side_host_state(result_set: ResultSet) -> HostStateSummary:
    """Every measured run's host state as one (a side of a comparison)."""
    return merge(run_host_state(run) for _, run in measured_runs(result_set))


def host_state_notes(result_set: ResultSet) -> list[str]:
    """Lines under the summary table: the session's host state, and each variant that waited past the threshold.

    Nothing for files written before the readings.
    """
    runs = list(measured_runs(result_set))
    states = [run.host_state for _, run in runs if run.host_state is not None]
    if not states:
        return []
    lines = [f"- Host while timed: {merge(states).describe()}"]
    crowded = []
    for record in result_set.variants:
        if record.ok:
            share = merge(run_host_state(run) for run in record.runs).waited_share
            if share is not None and share > DEFAULT_WAIT_TOLERANCE:
                crowded.append(f"{record.variant} ({share:.1%})")
    if crowded:
        lines.append(
            f"- Waited for a CPU past {DEFAULT_WAIT_TOLERANCE:.1%} of its timed time: {', '.join(crowded)}; "
            "their wall times include that wait (another thread or process held the CPU)"
        )
    return lines
