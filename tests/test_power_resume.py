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
    status, _, err = power(*COMMON, "--untouched", "tiny_vae", "--trials", str(trials), "--resume", "--json", str(file))
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
    assert sorted(path.name for path in work.iterdir()) == ["trial-02", "trial-03"]
    total: dict[str, Any] = json.loads(file.read_text())
    assert total["calibration"] == first["calibration"] and total["calibration_from"] == ""
    assert (total["trials"], total["unchanged_trials"], len(total["estimates"])) == (3, 3, 3)
    assert total["estimates"][0] == first["estimates"][0]
    assert total["detections"]["host 20%"]["wall_ratio"] == 3 and not total["false_alarms"]
    assert len(total["untouched_estimates"]) == 3 and total["untouched_flags"] == {"none": {}, "host 20%": {}}
    assert sorted({entry["trial"] for entry in total["interleaved"]}) == [1, 2, 3]
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


def test_a_budget_counts_the_kept_trials_toward_the_trials_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sdxl.cli import power as power_command

    file = first_command(tmp_path, monkeypatch)
    readings = iter(range(0, 10_000, 100))  # each reading of the clock 100 s after the one before
    monkeypatch.setattr(power_command, "clock", lambda: float(next(readings)))
    status, _, err = power(
        *COMMON, "--untouched", "tiny_vae", "--trials", "5", "--resume", "--json", str(file), "--budget-s", "250"
    )
    assert status == 0, err
    # This command's pace: 100 s a trial; after its second (200 s) a third would end past 250 s.
    assert "stopped after 3 of 5 trials: another would pass --budget-s 250 (200 s spent, 100 s a trial)" in err
    assert json.loads(file.read_text())["trials"] == 3


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
