"""``power --across processes``: trials of fresh processes, the injection only in the head's, and its hook in the child.

A fake process runner stands for the processes (its head is slower exactly when the environment names
an injection), so the counting is tested without timing noise; the child's hook is tested on the
pipeline class itself and through one real, cheap child process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from power_fakes import PER_IMAGE_S, Processes, power

from pytest_sdxl.analysis.comparison import Rules
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.measure import interleave
from pytest_sdxl.measure.injection import (
    CHILD_ENTRY,
    VARIABLE,
    Injection,
    install,
    install_from_environment,
    parse_injection,
)
from pytest_sdxl.measure.interleave import ProcessOutcome, ProcessRequest
from pytest_sdxl.measure.power import POWER_GATE, POWER_SIGNALS, power_report
from pytest_sdxl.measure.power_processes import ProcessTrials, measure_power_across_processes
from pytest_sdxl.settings import Settings
from pytest_sdxl.variants.registry import parse


def test_an_injection_is_named_by_kind_milliseconds_and_variant() -> None:
    injection = parse_injection("host:12.5ms@tiny_vae+batch")
    assert injection == Injection("host", 12.5, "tiny_vae+batch")
    assert parse_injection(injection.spec()) == injection
    for bad in ("host:12.5@batch", "gpu:1ms@batch", "host:1ms", "device:-1ms@batch"):
        with pytest.raises(SettingsError, match=r"accepted; give kind:millisecondsms@variant.*host:12\.5ms@batch"):
            parse_injection(bad)


class Pipeline:
    """Stands in for VariantPipeline's instances: the hook reads ``id`` and ``device`` only."""

    def __init__(self, variant: str) -> None:
        self.id = variant
        self.device = "cpu"


def test_the_hook_slows_only_the_injected_variants_calls_and_comes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.measure import power
    from pytest_sdxl.variants.assembly import VariantPipeline

    called: list[str] = []
    slept: list[float] = []
    monkeypatch.setattr(VariantPipeline, "call", lambda self, prompts, generators: called.append(self.id))
    monkeypatch.setattr(power, "host_sleep", lambda seconds: lambda: slept.append(seconds))
    plain = VariantPipeline.call
    undo = install(Injection("host", 20.0, "batch"))
    try:
        for variant in ("batch", "baseline", "batch"):
            VariantPipeline.call(Pipeline(variant), ["a"], [None])  # type: ignore[arg-type]
    finally:
        undo()
    assert called == ["batch", "baseline", "batch"]
    assert slept == [0.02, 0.02]  # the reference (baseline) is never slowed
    assert VariantPipeline.call is plain


def test_without_the_variable_the_child_entry_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.variants.assembly import VariantPipeline

    monkeypatch.delenv(VARIABLE, raising=False)
    plain = VariantPipeline.call
    assert install_from_environment() is None
    assert VariantPipeline.call is plain


def test_a_real_child_starts_through_the_entry_and_refuses_a_bad_injection() -> None:
    good = subprocess.run(
        [sys.executable, "-c", CHILD_ENTRY, "--version"],
        env={**os.environ, VARIABLE: "host:1ms@batch"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0 and good.stdout.startswith("pytest-sdxl "), good.stderr
    bad = subprocess.run(
        [sys.executable, "-c", CHILD_ENTRY, "--version"],
        env={**os.environ, VARIABLE: "host:fast@batch"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "PYTEST_SDXL_INJECT: 'host:fast@batch' is not accepted" in bad.stderr


def test_each_trial_compares_interleaved_processes_with_the_slowdown_in_the_heads_only(tmp_path: Path) -> None:
    processes = Processes()
    trials = ProcessTrials(sys.executable, ("--model", "random:tiny"), tmp_path, pairs=4)
    saved: list[int] = []
    result = measure_power_across_processes(
        trials,
        Settings(model="random:tiny", device="cpu"),
        parse("batch"),
        2,
        [("host", 0.10)],
        Rules(metrics=POWER_SIGNALS, gate=POWER_GATE),
        runner=processes,
        on_trial=lambda so_far: saved.append(so_far.trials),
    )
    # Calibrated on the first, unchanged process: four images a call (the default prompts less the first).
    assert result.calibration["wall_ms_per_call"] == pytest.approx(PER_IMAGE_S * 4 * 1000, rel=0.05)
    calibration, *compared = processes.requests
    assert calibration.side == "calibration" and not calibration.environment
    assert calibration.command[:3] == (sys.executable, "-c", CHILD_ENTRY)
    assert calibration.command[-2:] == ("--variants", "batch")
    # Per trial: the unchanged comparison, then the injected one; each four processes a side at most, ABBA.
    assert [entry["comparison"] for entry in result.interleaved] == ["none", "host 10%"] * 2
    assert all(entry["order"] == "ABBAABBA" for entry in result.interleaved)
    injected = {request.environment.get(VARIABLE) for request in compared if request.side == "head"}
    spec = f"host:{result.calibration['wall_ms_per_call'] * 0.1:.6g}ms@batch"
    assert injected == {None, spec}
    assert all(VARIABLE not in request.environment for request in compared if request.side == "base")
    assert (result.across, result.processes, result.trials, result.unchanged_trials) == ("processes", 4, 2, 2)
    assert result.detections["host 10%"].get("wall_ratio") == 2 and not result.false_alarms
    # Saved once calibrated (no trial yet: a command cut in its first trial keeps the calibration), then per trial.
    assert saved == [0, 1, 2]
    assert "up to 4 fresh processes of one run, interleaved as pytest-sdxl ab does (--across processes), a " in (
        power_report(result)
    )
    # The comparisons of a trial share its base processes: four base and four a head a trial, in mirrored blocks.
    first_trial = compared[:12]
    assert [request.side for request in first_trial] == ["base", "head", "head", "head", "head", "base"] * 2
    assert [request.environment.get(VARIABLE) for request in first_trial[:3]] == [None, None, spec]
    assert len({request.folder for request in compared}) == len(compared) == 24
    assert result.shared_base and "trial's comparisons sharing its base processes" in power_report(result)


def across_processes_with(processes: Processes, tmp_path: Path, untouched: str | None = None, **given: Any) -> Any:
    """Two trials of batch, unchanged and slowed 10 %, with ``untouched`` measured beside it in every process."""
    return measure_power_across_processes(
        ProcessTrials(sys.executable, ("--model", "random:tiny"), tmp_path, pairs=4),
        Settings(model="random:tiny", device="cpu"),
        parse("batch"),
        2,
        [("host", 0.10)],
        Rules(metrics=POWER_SIGNALS, gate=POWER_GATE),
        runner=processes,
        untouched=None if untouched is None else parse(untouched),
        **given,
    )


def test_an_untouched_variant_runs_in_every_process_and_only_the_slowed_one_is_flagged(tmp_path: Path) -> None:
    processes = Processes()
    result = across_processes_with(processes, tmp_path, "tiny_vae")
    # The calibration too: every process measures both, so each side of a comparison is the same job.
    assert all(request.command[-2:] == ("--variants", "batch,tiny_vae") for request in processes.requests)
    assert result.calibration["wall_ms_per_call"] == pytest.approx(PER_IMAGE_S * 4 * 1000, rel=0.05)
    assert result.detections["host 10%"].get("wall_ratio") == 2 and not result.false_alarms
    assert result.untouched == "tiny_vae"
    assert result.untouched_flags == {"none": {}, "host 10%": {}}
    # Each trial keeps both variants' estimates apart: the slowed one's ratio moved, the untouched one's did not.
    assert len(result.untouched_estimates) == len(result.estimates) == 2
    for slowed, untouched in zip(result.estimates, result.untouched_estimates, strict=True):
        assert slowed["host 10%"]["wall_ratio"][0] > 1.05
        assert untouched["host 10%"]["wall_ratio"][0] == pytest.approx(1.0, abs=0.02)
    table = power_report(result)
    assert "untouched variant: tiny_vae" in table and "every flag here is a false alarm" in table
    assert "| host 10% | 0/2 (" in table.split("untouched variant")[1]


def test_each_process_of_a_trial_keeps_its_own_figures_for_both_variants(tmp_path: Path) -> None:
    processes = Processes()
    result = across_processes_with(processes, tmp_path, "tiny_vae")
    compared = [request for request in processes.requests if request.side != "calibration"]
    measured = {(request.folder.parent.parent.name, f"{request.folder.parent.name}/{request.folder.name}")
                for request in compared}  # fmt: skip
    rows = result.process_figures
    # One row a variant for every process of every trial, and none for the calibration's.
    assert {(f"trial-{row['trial']:02d}", row["process"]) for row in rows} == measured
    assert len(rows) == 2 * len(compared)
    assert {row["variant"] for row in rows} == {"batch", "tiny_vae"}

    def wall_ratios(side: str, variant: str) -> list[float]:
        return [row["wall_ratio"] for row in rows if row["process"].startswith(side) and row["variant"] == variant]

    # The fake heads are 10 % slower on batch only: each injected process shows it, and the untouched one does not.
    assert min(wall_ratios("host-10pct/", "batch")) > max(wall_ratios("base/", "batch")) * 1.05
    assert max(wall_ratios("host-10pct/", "tiny_vae")) < min(wall_ratios("base/", "tiny_vae")) * 1.05
    assert all(math.isnan(row["kernel_ms"]) for row in rows)  # the fakes record no kernels
    # Steadiness: each side's median call over its fastest; the fakes scatter their calls by about 1 %.
    assert all(1.0 <= value < 1.05 for row in rows for value in row["steadiness"])


def test_the_untouched_variants_flags_are_counted_apart_from_the_slowed_ones(tmp_path: Path) -> None:
    # tiny_vae runs slower in every head process: a flag of its own in every comparison, none of them batch's.
    result = across_processes_with(Processes(always_slower="tiny_vae"), tmp_path, "tiny_vae")
    assert result.untouched_flags["none"].get("wall_ratio") == 2
    assert result.untouched_flags["host 10%"].get("wall_ratio") == 2
    assert not result.false_alarms  # batch's unchanged comparisons stay clean beside a regressed tiny_vae
    assert result.detections["host 10%"].get("wall_ratio") == 2
    assert all(trial["none"]["wall_ratio"][0] > 1.05 for trial in result.untouched_estimates)
    assert all(trial["none"]["wall_ratio"][0] < 1.02 for trial in result.estimates)


def test_each_comparison_records_what_ab_would_have_left_undecided(tmp_path: Path) -> None:
    steady = across_processes_with(Processes(), tmp_path / "steady", "tiny_vae")
    # Steady processes: the slowdown flagged, the unchanged comparisons ruled out; nothing left open.
    assert [entry["undecided"] for entry in steady.interleaved] == [[]] * 4
    assert "| host 10% | 0/2 | 0/2 | 0/2 |" in power_report(steady)
    # Processes 8 % apart from one another: the intervals of four a side reach past the flag lines.
    busy = across_processes_with(Processes(process_spread=0.08), tmp_path / "busy", "tiny_vae")
    unchanged = [entry["undecided"] for entry in busy.interleaved if entry["comparison"] == "none"]
    assert unchanged and all(unchanged), busy.interleaved
    assert {item for found in unchanged for item in found} <= {"batch wall_ratio", "tiny_vae wall_ratio"}
    # A slowdown the spread hides is reported undecided, never passed: each trial either flagged it or left it open.
    slowed = [entry["undecided"] for entry in busy.interleaved if entry["comparison"] == "host 10%"]
    assert busy.detections["host 10%"].get("wall_ratio", 0) + sum("batch wall_ratio" in found for found in slowed) == 2
    table = power_report(busy).split("undecided: ")[1]
    assert "| comparison | batch | tiny_vae (untouched) | either (the job) |" in table
    assert "| none | " in table and table.count("/2 |") == 6
    assert "| none | 0/2 | 0/2 | 0/2 |" not in table


def test_a_file_written_before_undecided_was_recorded_reports_no_undecided_table(tmp_path: Path) -> None:
    result = across_processes_with(Processes(), tmp_path, "tiny_vae")
    for entry in result.interleaved:
        del entry["undecided"]
    assert "undecided: " not in power_report(result)


def test_the_command_writes_which_mode_it_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave, "run_process", Processes())
    # Where bytecode is turned off, the header says where the processes keep theirs.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "power.json"
    status, table, err = power(
        "--across", "processes", "--processes", "2", "--trials", "1", "--inject", "host:20%",
        "--model", "random:tiny", "--device", "cpu", "--cpus", "off", "--json", str(out),
        "--work-folder", str(tmp_path / "work"),
    )  # fmt: skip
    assert status == 0, err
    assert "across processes of" in err and "CPUs: not pinned (--cpus off)" in err
    assert f"keep their bytecode in {tmp_path / 'cache' / 'pytest-sdxl' / 'bytecode'}" in err
    document: dict[str, Any] = json.loads(out.read_text())
    assert (document["across"], document["processes"], document["trials"]) == ("processes", 2, 1)
    assert "(--across processes)" in table
    assert (tmp_path / "work" / "trial-01" / "host-20pct" / "process-01" / "results.json").is_file()
    assert (tmp_path / "work" / "trial-01" / "base" / "process-01" / "results.json").is_file()


def test_the_command_writes_the_untouched_variants_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave, "run_process", Processes())
    out = tmp_path / "power.json"
    status, table, err = power(
        "--across", "processes", "--processes", "2", "--trials", "1", "--inject", "host:20%", "--untouched",
        "tiny_vae", "--model", "random:tiny", "--device", "cpu", "--cpus", "off", "--json", str(out),
    )  # fmt: skip
    assert status == 0, err
    assert "untouched beside batch: tiny_vae" in err
    document: dict[str, Any] = json.loads(out.read_text())
    assert document["untouched"] == "tiny_vae" and set(document["untouched_flags"]) == {"none", "host 20%"}
    assert [set(trial) for trial in document["untouched_estimates"]] == [{"none", "host 20%"}]
    assert "untouched variant: tiny_vae" in table


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--across", "processes", "--rounds", "12"), "--rounds applies to --across rounds only"),
        (("--processes", "2"), "--processes applies to --across processes only"),
        (("--across", "threads"), "invalid choice: 'threads'"),
        (("--untouched", "tiny_vae"), "--untouched needs --across processes"),
        (("--across", "processes", "--untouched", "tiny-vea"), "unknown variant 'tiny_vea'. Did you mean 'tiny_vae'?"),
        (("--across", "processes", "--untouched", "Batch"), "--untouched Batch is the slowed variant (batch,"),
        (
            ("--across", "processes", "--variant", "tiny_vae", "--untouched", "tiny_vae+batch"),
            "--untouched tiny_vae+batch is timed beside tiny_vae, the slowed variant, as its side-by-side reference",
        ),
    ],
)
def test_options_of_the_other_mode_are_refused(arguments: tuple[str, ...], message: str) -> None:
    status, _, err = power(*arguments, "--cpus", "off")
    assert status == 2 and message in err


def test_a_budget_stops_before_a_trial_that_would_pass_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.cli import power as power_command

    monkeypatch.setattr(interleave, "run_process", Processes())
    readings = iter(range(0, 10_000, 100))  # each reading of the clock 100 s after the one before
    monkeypatch.setattr(power_command, "clock", lambda: float(next(readings)))
    out = tmp_path / "power.json"
    status, table, err = power(
        "--across", "processes", "--processes", "2", "--trials", "5", "--inject", "host:20%",
        "--model", "random:tiny", "--device", "cpu", "--cpus", "off", "--json", str(out), "--budget-s", "650",
    )  # fmt: skip
    assert status == 0, err
    # Readings: 0 the start, 100 once calibrated (no pace yet: trial 1 starts), 200-300 trial 1 (100 s), 400 after
    # it (another would end at 500, within 650), 500-600 trial 2, 700 after it: a third would end at 800.
    assert json.loads(out.read_text())["trials"] == 2
    assert "stopped after 2 of 5 trials: another would pass --budget-s 650 (700 s spent, 100 s a trial)" in err
    assert "2 trials" in table


@pytest.mark.parametrize("budget", ["0", "-5", "ten"])
def test_a_budget_that_is_not_a_positive_number_of_seconds_is_refused(budget: str) -> None:
    status, _, err = power("--across", "processes", "--model", "random:tiny", "--device", "cpu", "--budget-s", budget)
    assert status == 2
    assert f"--budget-s: {budget!r} is not accepted; give a number of seconds above 0" in err


def test_a_decided_head_starts_no_more_processes_while_another_goes_on(tmp_path: Path) -> None:
    from pytest_sdxl.measure.interleave import Side
    from pytest_sdxl.measure.interleave_heads import HeadsPlan, block_sides, measure_heads_interleaved

    assert block_sides(["a", "b"], odd_pair=False) == [None, "a", "b", "b", "a", None]
    assert block_sides(["a"], odd_pair=True) == [None, "a"]
    processes = Processes()
    plain = (sys.executable, "-c", CHILD_ENTRY)
    slower = Injection("host", PER_IMAGE_S * 4 * 1000 * 0.3, "batch").spec()
    heads = {"none": Side("head", plain), "host 30%": Side("head", plain, {VARIABLE: slower})}
    rules = Rules(metrics=POWER_SIGNALS, gate=POWER_GATE)
    plan = HeadsPlan(Side("base", plain), heads, ("--variants", "batch"), tmp_path, rules, pairs=6)
    # Three blocks, judged after the second and third: 30 % slower is flagged at the first look and stops there.
    looked: list[str] = []
    outcomes = measure_heads_interleaved(plan, processes, report=looked.append)
    flagged = outcomes["host 30%"]
    assert flagged.regressed and flagged.stop == "every gated signal decided after block 2"
    assert (flagged.count("base"), flagged.count("head")) == (4, 4) and flagged.order == "ABBAABBA"
    unchanged = outcomes["none"]
    assert not unchanged.regressed and unchanged.count("base") == unchanged.count("head")
    heads_started = [request.environment.get(VARIABLE) for request in processes.requests if request.side == "head"]
    assert heads_started.count(slower) == 4  # none in the third block
    assert any(line.startswith("look after block 2: ") for line in looked)


def test_a_failed_process_stops_every_comparison_of_the_trial(tmp_path: Path) -> None:
    from pytest_sdxl.measure.interleave import Side
    from pytest_sdxl.measure.interleave_heads import HeadsPlan, measure_heads_interleaved

    processes = Processes()

    def failing_third(request: ProcessRequest) -> ProcessOutcome:
        if len(processes.requests) == 2:
            processes.requests.append(request)
            return ProcessOutcome(1, 0.5, "Traceback: out of memory")
        return processes(request)

    plain = (sys.executable, "-c", CHILD_ENTRY)
    heads = {"none": Side("head", plain), "other": Side("head", plain)}
    plan = HeadsPlan(Side("base", plain), heads, ("--variants", "batch"), tmp_path, Rules(), pairs=2)
    outcomes = measure_heads_interleaved(plan, failing_third)
    assert len(processes.requests) == 3
    for outcome in outcomes.values():
        assert outcome.failure is not None and outcome.stop == "other process 1 failed"
        assert "out of memory" in outcome.failure.describe() and not outcome.comparisons


def test_a_given_calibration_sizes_the_injections_without_a_calibration_process(tmp_path: Path) -> None:
    from pytest_sdxl.measure.power_processes import Calibration

    processes = Processes()
    calibration = Calibration(300.0, float("nan"), source="earlier.json")
    result = across_processes_with(processes, tmp_path, calibration=calibration, card="CPU Test")
    assert all(request.side != "calibration" for request in processes.requests)
    assert {request.environment.get(VARIABLE) for request in processes.requests} == {None, "host:30ms@batch"}
    assert (result.calibration["wall_ms_per_call"], result.calibration_from, result.card) == (
        300.0, "earlier.json", "CPU Test",
    )  # fmt: skip
    assert "on CPU Test, sized from the calibration in earlier.json" in power_report(result)


def test_trials_of_two_commands_share_the_first_ones_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interleave, "run_process", Processes())
    common = (
        "--across", "processes", "--processes", "2", "--trials", "1", "--inject", "host:20%",
        "--model", "random:tiny", "--device", "cpu", "--cpus", "off",
    )  # fmt: skip
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    status, _, err = power(*common, "--json", str(first))
    assert status == 0, err
    reused = ("--calibration", str(first), "--work-folder", str(tmp_path / "w"))
    status, _, err = power(*common, "--json", str(second), *reused)
    assert status == 0, err
    earlier, later = json.loads(first.read_text()), json.loads(second.read_text())
    assert f"injections sized from {first}: " in err
    assert later["calibration"] == earlier["calibration"] and later["calibration_from"] == str(first)
    assert later["card"] == earlier["card"] != "" and earlier["calibration_from"] == ""
    assert not (tmp_path / "w" / "calibration").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variant": "tiny_vae+batch"}, "its variant is 'tiny_vae+batch', this run's 'batch'"),
        ({"across": "rounds"}, "its mode is 'rounds', this run's 'processes'"),
        ({"model": "random:sdxl-turbo"}, "its model is 'random:sdxl-turbo', this run's 'random:tiny'"),
        ({"card": "NVIDIA H200"}, "its card is 'NVIDIA H200', this run's 'CPU"),
        ({"card": ""}, "the file does not record the card it ran on"),
        ({"calibration": {"wall_ms_per_call": "nan", "kernel_ms_per_call": "nan"}}, "holds no wall time per call"),
        ({"variant": None}, "cannot read it as power results"),
    ],
)
def test_a_calibration_of_another_experiment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], message: str
) -> None:
    from pytest_sdxl.cli.power_calibration import this_card

    document = {
        "variant": "batch", "model": "random:tiny", "device": "cpu", "trials": 1, "runs": 1, "across": "processes",
        "card": this_card(Settings(model="random:tiny", device="cpu")),
        "calibration": {"wall_ms_per_call": 200.0, "kernel_ms_per_call": "nan"},
    }  # fmt: skip
    document.update(changes)
    document = {key: value for key, value in document.items() if value is not None}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(document))
    monkeypatch.setattr(interleave, "run_process", Processes())
    status, _, err = power(
        "--across", "processes", "--model", "random:tiny", "--device", "cpu", "--cpus", "off", "--trials", "1",
        "--calibration", str(earlier),
    )  # fmt: skip
    assert status == 2 and f"--calibration {earlier}: " in err and message in err
    assert "give the --json file of an earlier power --across processes run of this variant on this card" in err


def test_a_calibration_is_refused_in_the_other_mode() -> None:
    status, _, err = power("--calibration", "x.json", "--cpus", "off")
    assert status == 2 and "--calibration applies to --across processes only" in err
