"""``power --resume``: one experiment's cross-process trials grown over several commands in its ``--json`` file.

The processes are the fakes of tests/power_fakes.py (a head is slower exactly when its environment names an
injection), so what is tested is the bookkeeping: which trials a later command measures, from which
calibration, and what the file holds after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from power_fakes import Processes, power

from pytest_sdxl.measure import interleave

COMMON = (
    "--across", "processes", "--processes", "2", "--inject", "host:20%", "--model", "random:tiny",
    "--device", "cpu", "--cpus", "off",
)  # fmt: skip


def first_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trials: int = 1, *extra: str) -> Path:
    """A first command's file: ``trials`` trials of batch with tiny_vae untouched beside it, calibrated here."""
    monkeypatch.setattr(interleave, "run_process", Processes())
    file = tmp_path / "power.json"
    status, _, err = power(
        *COMMON, "--untouched", "tiny_vae", "--trials", str(trials), "--resume", "--json", str(file),
        "--output", str(tmp_path / "table.md"),
    )  # fmt: skip
    assert status == 0, err
    assert "resuming" not in err  # no file yet: the first command starts it
    return file


def test_a_later_command_keeps_the_files_trials_and_measures_only_those_still_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = first_command(tmp_path, monkeypatch)
    first: dict[str, Any] = json.loads(file.read_text())
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    work = tmp_path / "work"
    status, table, err = power(
        *COMMON, "--untouched", "tiny_vae", "--trials", "3", "--resume", "--json", str(file), "--work-folder", str(work)
    )
    assert status == 0, err
    assert f"resuming {file}: 1 trial(s) kept, 2 to measure" in err
    # No calibration process: the first command's sizes, so all three trials measure one slowdown.
    assert all(request.side != "calibration" for request in processes.requests)
    assert sorted(path.name for path in work.iterdir()) == ["experiment.json", "trial-02", "trial-03"]
    total: dict[str, Any] = json.loads(file.read_text())
    assert total["calibration"] == first["calibration"] and total["calibration_from"] == ""
    assert (total["trials"], total["unchanged_trials"], len(total["estimates"])) == (3, 3, 3)
    assert total["estimates"][0] == first["estimates"][0]
    assert total["detections"]["host 20%"]["wall_ratio"] == 3 and not total["false_alarms"]
    assert len(total["untouched_estimates"]) == 3 and total["untouched_flags"] == {"none": {}, "host 20%": {}}
    assert sorted({entry["trial"] for entry in total["interleaved"]}) == [1, 2, 3]
    # Each process's figures too: the first command's kept as they were, this one's added after them.
    kept = [row for row in total["process_figures"] if row["trial"] == 1]
    assert kept == first["process_figures"] and kept
    assert sorted({row["trial"] for row in total["process_figures"]}) == [1, 2, 3]
    assert "3 trials" in table


def test_a_file_holding_every_trial_asked_for_measures_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = first_command(tmp_path, monkeypatch, 2)
    before = file.read_text()
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    status, table, err = power(*COMMON, "--untouched", "tiny_vae", "--trials", "2", "--resume", "--json", str(file))
    assert status == 0, err
    assert f"resuming {file}: 2 trial(s) kept, 0 to measure" in err
    assert processes.requests == [] and "2 trials" in table
    assert json.loads(file.read_text()) == json.loads(before)


def test_a_budget_counts_the_kept_trials_and_goes_by_their_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sdxl.cli import power as power_command

    readings = iter(range(0, 10_000, 100))  # each reading of the clock 100 s after the one before
    monkeypatch.setattr(power_command, "clock", lambda: float(next(readings)))
    file = first_command(tmp_path, monkeypatch)
    assert json.loads(file.read_text())["trial_seconds"] == [100.0]
    status, _, err = power(
        *COMMON, "--untouched", "tiny_vae", "--trials", "5", "--resume", "--json", str(file), "--budget-s", "450"
    )
    assert status == 0, err
    # Readings: 0 the command's start, 100 before trial 2 (the file's pace, 100 s: it starts), 200 and 300 its
    # start and end, 400 after it; then trial 3 would end at 500, past 450.
    assert "stopped after 2 of 5 trials: another would pass --budget-s 450 (400 s spent, 100 s a trial)" in err
    saved = json.loads(file.read_text())
    assert (saved["trials"], saved["trial_seconds"]) == (2, [100.0, 100.0])


def test_a_resumed_command_starts_no_trial_its_files_pace_says_would_pass_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sdxl.cli import power as power_command

    readings = iter(range(0, 10_000, 300))
    monkeypatch.setattr(power_command, "clock", lambda: float(next(readings)))
    file = first_command(tmp_path, monkeypatch)  # its one trial: 300 s
    before = json.loads(file.read_text())
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    status, _, err = power(
        *COMMON, "--untouched", "tiny_vae", "--trials", "3", "--resume", "--json", str(file), "--budget-s", "500"
    )
    assert status == 0, err
    assert "stopped after 1 of 3 trials: another would pass --budget-s 500 (300 s spent, 300 s a trial)" in err
    assert processes.requests == [] and json.loads(file.read_text()) == before


def test_trials_zero_keeps_the_calibration_for_the_commands_that_measure_the_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = first_command(tmp_path, monkeypatch, 0)
    calibrated: dict[str, Any] = json.loads(file.read_text())
    assert "0 trials (the calibration only, for later --resume commands)" in (tmp_path / "table.md").read_text()
    assert (calibrated["trials"], calibrated["estimates"], calibrated["trial_seconds"]) == (0, [], [])
    assert calibrated["calibration"]["wall_ms_per_call"] > 0 and calibrated["calibration"]["process_s"] == 1.0
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    status, _, err = power(*COMMON, "--untouched", "tiny_vae", "--trials", "2", "--resume", "--json", str(file))
    assert status == 0, err
    assert f"resuming {file}: 0 trial(s) kept, 2 to measure" in err
    assert all(request.side != "calibration" for request in processes.requests)
    total: dict[str, Any] = json.loads(file.read_text())
    assert total["calibration"] == calibrated["calibration"] and total["trials"] == 2


def test_a_command_cut_in_its_first_trial_keeps_its_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class CutAfterCalibration(Processes):
        def __call__(self, request: interleave.ProcessRequest) -> interleave.ProcessOutcome:
            if request.side != "calibration":
                raise KeyboardInterrupt  # the device's time limit, say, ending the command
            return super().__call__(request)

    monkeypatch.setattr(interleave, "run_process", CutAfterCalibration())
    file = tmp_path / "power.json"
    status, _, err = power(*COMMON, "--trials", "3", "--resume", "--json", str(file))
    assert status == 130, err
    kept: dict[str, Any] = json.loads(file.read_text())
    assert kept["trials"] == 0 and kept["calibration"]["wall_ms_per_call"] > 0
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    status, _, err = power(*COMMON, "--trials", "1", "--resume", "--json", str(file))
    assert status == 0 and all(request.side != "calibration" for request in processes.requests), err


def test_each_process_is_reported_as_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave, "run_process", Processes())
    status, _, err = power(*COMMON, "--trials", "1", "--json", str(tmp_path / "power.json"))
    assert status == 0, err
    lines = [line.strip() for line in err.splitlines() if line.endswith("s, exit status 0")]
    assert lines[0] == "calibration: 1.0 s, exit status 0"
    assert any(line.startswith("trial-01/") for line in lines[1:]) and len(lines) >= 5, err


@pytest.mark.parametrize(
    "arguments",
    [("--across", "processes", "--trials", "0"), ("--trials", "0", "--json", "power.json")],
)
def test_trials_zero_without_a_file_or_across_rounds_is_refused(arguments: tuple[str, ...]) -> None:
    status, _, err = power(*arguments, "--cpus", "off")
    assert status == 2 and "--trials 0 measures the calibration only" in err, err


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        (("--processes", "3"), "its processes a side is 2, this run's 3"),
        (("--untouched", "cached_embeds"), "its untouched variant is 'tiny_vae', this run's 'cached_embeds'"),
        (("--inject", "host:10%"), "its injection set is 'host 20%', this run's 'host 10%'"),
        (("--variant", "tiny_vae+batch"), "its variant is 'batch', this run's 'tiny_vae+batch'"),
        (("--calibration", "other.json"), "the file exists, and its own calibration sizes the injections"),
    ],
)
def test_a_file_of_another_experiment_is_refused_naming_what_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: tuple[str, ...], message: str
) -> None:
    file = first_command(tmp_path, monkeypatch)
    before = file.read_text()
    processes = Processes()
    monkeypatch.setattr(interleave, "run_process", processes)
    arguments = [*COMMON, "--untouched", "tiny_vae", "--trials", "2", "--resume", "--json", str(file)]
    flag, value = changed
    if flag in arguments:
        arguments[arguments.index(flag) + 1] = value
    else:
        arguments += [flag, value]
    status, _, err = power(*arguments)
    assert status == 2 and f"--resume {file}: " in err and message in err, err
    assert processes.requests == [] and file.read_text() == before


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "power.json"
    file.write_text("{not json")
    status, _, err = power(*COMMON, "--trials", "2", "--resume", "--json", str(file))
    assert status == 2 and f"--resume {file}: cannot read it as power results" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--across", "processes", "--resume"), "--resume needs --json FILE"),
        (("--resume", "--json", "power.json"), "--resume applies to --across processes only"),
    ],
)
def test_resume_without_its_file_or_in_the_other_mode_is_refused(arguments: tuple[str, ...], message: str) -> None:
    status, _, err = power(*arguments, "--cpus", "off")
    assert status == 2 and message in err
