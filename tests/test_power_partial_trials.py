"""A cross-process trial cut between processes by ``--budget-s`` goes on in the next ``--resume`` command.

The fake processes (tests/power_fakes.py) take 100 s each on a fake clock they move themselves, so the
budget's arithmetic is exact; the reuse itself (``measure.process_reuse``) is tested on its records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from power_fakes import Processes, power

from pytest_sdxl.measure import interleave
from pytest_sdxl.measure.interleave import ProcessOutcome, ProcessRequest
from pytest_sdxl.measure.process_reuse import (
    OUTCOME_FILE,
    ProcessBudgetSpent,
    recorded_outcome,
    recording_and_reusing,
    within_budget,
)

COMMON = (
    "--across", "processes", "--processes", "2", "--inject", "host:20%", "--model", "random:tiny",
    "--device", "cpu", "--cpus", "off", "--trials", "1",
)  # fmt: skip
PROCESS_S = 100.0


class TimedProcesses(Processes):
    """Fake processes of 100 s each on the clock ``now`` reads."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def now(self) -> float:
        return self.seconds

    def __call__(self, request: ProcessRequest) -> ProcessOutcome:
        super().__call__(request)
        self.seconds += PROCESS_S
        return ProcessOutcome(0, PROCESS_S)


def command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> tuple[TimedProcesses, int, str]:
    from pytest_sdxl.cli import power as power_command

    processes = TimedProcesses()
    monkeypatch.setattr(interleave, "run_process", processes)
    monkeypatch.setattr(power_command, "clock", processes.now)
    status, _, err = power(
        *COMMON, "--json", str(tmp_path / "power.json"), "--work-folder", str(tmp_path / "work"), *extra
    )
    return processes, status, err


def folders(processes: TimedProcesses, root: Path) -> list[str]:
    return [str(request.folder.relative_to(root)) for request in processes.requests]


def test_a_trial_cut_between_processes_goes_on_from_its_finished_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole"
    uncut, status, err = command(whole, monkeypatch)
    assert status == 0, err
    in_one = folders(uncut, whole / "work")
    assert len(in_one) > 5 and in_one[0] == "calibration"

    cut = tmp_path / "cut"
    first, status, err = command(cut, monkeypatch, "--budget-s", "450")
    assert status == 0, err
    # The calibration ends at 100 s; at its pace each later process starts while it would end by 450 s: three.
    assert folders(first, cut / "work") == in_one[:4]
    assert "stopped after 0 of 1 trials, within the next:" in err
    assert "not started: at 100 s a process it would pass --budget-s 450 (400 s spent)" in err
    assert f"its finished processes are kept in {cut / 'work'}" in err
    assert json.loads((cut / "power.json").read_text())["trials"] == 0  # the calibration is kept

    second, status, err = command(cut, monkeypatch, "--resume")
    assert status == 0, err
    # The second command starts only the processes the first did not finish, in the order one command would.
    assert folders(second, cut / "work") == in_one[4:]
    assert err.count("reused, measured by an earlier command in 100.0 s") == 3
    document: dict[str, Any] = json.loads((cut / "power.json").read_text())
    assert document["trials"] == 1
    assert document["trial_seconds"] == [PROCESS_S * (len(in_one) - 1)]  # every process of the trial counted once
    assert len(document["process_figures"]) == len(in_one) - 1


def test_a_process_cut_or_run_differently_or_elsewhere_is_run_again_from_an_empty_folder(tmp_path: Path) -> None:
    ran: list[ProcessRequest] = []

    def runner(request: ProcessRequest) -> ProcessOutcome:
        ran.append(request)
        request.folder.mkdir(parents=True)
        (request.folder / "results.json").write_text("{}")
        return ProcessOutcome(0, 42.0)

    reusing = recording_and_reusing(runner, "NVIDIA H100 80GB HBM3")
    folder = tmp_path / "trial-01" / "head" / "process-01"
    command = ("/usr/bin/python3", "-c", "x", "run", "--report", str(folder))
    request = ProcessRequest("head", 1, command, {}, None, folder)
    assert reusing(request) == ProcessOutcome(0, 42.0)
    assert json.loads((folder / OUTCOME_FILE).read_text())["ran"]["arguments"][-1] == "{folder}"

    # Another interpreter's path (another machine) and the same run: reused, its own seconds said.
    moved = ProcessRequest("head", 1, ("/venv/bin/python", *request.command[1:]), {}, None, folder)
    assert reusing(moved) == ProcessOutcome(0, 42.0, reused=True) and len(ran) == 1
    # Another injection size: not the same process, run again.
    resized = ProcessRequest("head", 1, request.command, {"PYTEST_SDXL_INJECT": "host:1.0:batch"}, None, folder)
    assert recorded_outcome(resized, "NVIDIA H100 80GB HBM3") is None
    # The same process on another card: nothing to reuse there.
    assert recorded_outcome(moved, "NVIDIA H200") is None
    assert recorded_outcome(moved, "NVIDIA H100 80GB HBM3") == ProcessOutcome(0, 42.0, reused=True)
    assert reusing(resized).reused is False and len(ran) == 2
    # A process cut before its outcome was recorded (a results file without outcome.json): run again.
    (folder / OUTCOME_FILE).unlink()
    (folder / "stale.log").write_text("cut")
    assert reusing(resized).reused is False and len(ran) == 3
    assert not (folder / "stale.log").exists()


def test_the_budget_goes_by_the_slowest_process_after_a_commands_first(tmp_path: Path) -> None:
    now = [0.0]
    costs = iter([70.0, 40.0, 50.0, 45.0])

    def runner(request: ProcessRequest) -> ProcessOutcome:
        seconds = next(costs)
        now[0] += seconds
        return ProcessOutcome(0, seconds)

    bounded = within_budget(runner, 200.0, lambda: now[0], 0.0, first_pace=90.0)
    requests = [ProcessRequest("base", i, ("python",), {}, None, tmp_path / f"process-{i:02d}") for i in range(1, 5)]
    for request in requests[:3]:
        bounded(request)  # 0 + 90 (the first pace), 70 + 70 (the first's), 110 + 40 (the slowest after it)
    # At 160 s the pace is 50 s (the slowest after the first, which wrote the bytecode): 210 would pass 200.
    with pytest.raises(ProcessBudgetSpent, match="at 50 s a process it would pass --budget-s 200 \\(160 s spent\\)"):
        bounded(requests[3])


def test_a_work_folder_holding_processes_is_refused_without_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work" / "trial-01").mkdir(parents=True)
    _, status, err = command(tmp_path, monkeypatch)
    assert status == 2
    assert "--work-folder" in err and "is not empty: its processes are another measurement's" in err
    assert "or --resume with that measurement's --json file to go on from them" in err


def test_a_resumed_command_over_another_experiments_work_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, status, err = command(tmp_path, monkeypatch, "--budget-s", "250")
    assert status == 0, err
    assert json.loads((tmp_path / "work" / "experiment.json").read_text())["injection set"] == ["host 20%"]
    (tmp_path / "power.json").unlink()  # a new file: the work folder alone still says whose processes it holds
    _, status, err = command(tmp_path, monkeypatch, "--resume", "--inject", "host:20%,device:2%")
    assert status == 2
    assert "--work-folder" in err and "its injection set is ['host 20%'], this run's ['device 2%', 'host 20%']" in err
