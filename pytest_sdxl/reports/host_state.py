"""The host state in the reports: how much of each run's timed time the host kept the timing thread from a CPU.

A run's state adds up the readings taken around each of its timed rounds (``machine.host_state``): the
timing thread's run-queue wait, its preemptions, and the CPU time the hypervisor stole. Runs of one
side merge into that side's figure, which ``compare`` and ``ab`` print before their verdicts.
"""

from __future__ import annotations

from pytest_sdxl.machine.host_state import HostStateSummary, merge
from pytest_sdxl.reports.gpu_state import measured_runs
from pytest_sdxl.results.schema import ResultSet, RunRecord


def run_host_state(run: RunRecord) -> HostStateSummary:
    """The run's summary; a run recorded without one reads as n/a, not recorded."""
    return run.host_state if run.host_state is not None else HostStateSummary.from_dict(None)


def side_host_state(result_set: ResultSet) -> HostStateSummary:
    """Every measured run's host state as one (a side of a comparison)."""
    return merge(run_host_state(run) for _, run in measured_runs(result_set))
