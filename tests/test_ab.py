"""``pytest-sdxl ab`` and ``measure.interleave``: order, looks, early stops, pooled files, exit statuses, bad input.

A fake process runner writes each process's results.json with chosen wall ratios, so the structure is
tested without timing noise: which side ran when, how many processes, what was pooled, when it stopped.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_sdxl.analysis.comparison import MetricComparison, Rules
from pytest_sdxl.cli.main import main
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.machine.interrupts import Terminated
from pytest_sdxl.measure import interleave
from pytest_sdxl.measure.interleave import (
    ABBA,
    BASE,
    HEAD,
    InterleavePlan,
    ProcessOutcome,
    ProcessRequest,
    Side,
    block_orders,
    look_rules,
    measure_interleaved,
    planned_looks,
    undecided,
)
from pytest_sdxl.reports.markdown import verdict_line
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

SETTINGS = {"model": "random:tiny", "image_size": 64, "steps": 1, "prompts": ["a", "b"], "seed": 0, "runs": 1}


def process_results(wall_ratio: float, draw: random.Random, scatter: float) -> ResultSet:
    """One process's results: batch beside its reference in four blocks, at ``wall_ratio`` times a drifting host."""
    host = 0.1 * (1 + draw.gauss(0, 0.05))  # one process runs faster than another
    blocks = []
    for _ in range(4):
        reference = host * (1 + abs(draw.gauss(0, 0.01)))
        blocks.append([reference * wall_ratio * (1 + draw.gauss(0, scatter)), reference])
    run = RunRecord(
        run=1,
        load_s=1.0,
        init_gen_s=0.2,
        gen_s=[block[0] for block in blocks],
        avg_gen_s=blocks[0][0],
        median_gen_s=blocks[0][0],
        total_s=3.0,
        reference="baseline",
        reference_gen_s=[block[1] for block in blocks],
        wall_blocks=blocks,
    )
    return ResultSet(dict(SETTINGS), {"torch": "2"}, [VariantRecord("batch", "speed", runs=[run])])


class FakeRunner:
    """Writes results.json for each request as a real process would; records the requests it got."""

    def __init__(self, head_ratio: float = 1.0, scatter: float = 0.0005, fail: tuple[str, int, int] | None = None):
        self.head_ratio = head_ratio
        self.scatter = scatter
        self.fail = fail  # (side, index, status)
        self.requests: list[ProcessRequest] = []
        self.draw = random.Random(7)

    def __call__(self, request: ProcessRequest) -> ProcessOutcome:
        self.requests.append(request)
        if self.fail is not None and (request.side, request.index) == self.fail[:2]:
            return ProcessOutcome(self.fail[2], 1.0, "Traceback ...\nRuntimeError: out of memory\n")
        ratio = self.head_ratio if request.side == HEAD else 1.0
        request.folder.mkdir(parents=True)
        save_results(process_results(ratio, self.draw, self.scatter), request.folder / "results.json")
        return ProcessOutcome(0, 2.0)


def plan_for(folder: Path, pairs: int = 6, budget_s: float | None = None, order: str = "abba") -> InterleavePlan:
    python = (sys.executable, "-m", "pytest_sdxl")
    return InterleavePlan(
        Side(BASE, python),
        Side(HEAD, python, {"PYTEST_SDXL_EXAMPLE": "1"}),
        ("--model", "random:tiny"),
        folder,
        Rules(),
        pairs=pairs,
        budget_s=budget_s,
        order=order,
    )


def test_blocks_are_abba_with_an_odd_pair_last_and_random_blocks_stay_balanced() -> None:
    assert block_orders(4) == [ABBA, ABBA]
    assert block_orders(3) == [ABBA, (BASE, HEAD)]
    shuffled = block_orders(8, "random", seed=3)
    assert shuffled == block_orders(8, "random", seed=3)
    assert all(sorted(block) == sorted(ABBA) for block in shuffled)
    assert len(set(shuffled)) > 1
    with pytest.raises(ValueError, match="accepted: abba, random"):
        block_orders(2, "zigzag")


def test_alpha_is_split_over_the_looks_from_the_second_block_on() -> None:
    assert [planned_looks(blocks) for blocks in (1, 2, 3, 4)] == [1, 1, 2, 3]
    assert look_rules(Rules(alpha=0.05), 2).alpha == pytest.approx(0.025)


def comparison(metric: str, verdict: str, high: float = float("nan"), gated: bool = True) -> MetricComparison:
    threshold = 0.02 if metric == "kernel_ms" else 0.05
    return MetricComparison("batch", metric, verdict, high=high, threshold=threshold, gated=gated)


def test_a_signal_is_decided_when_flagged_or_its_interval_is_clear_below_the_flag_line() -> None:
    decided = [
        comparison("wall_ratio", "unchanged", high=1.02),  # below 1 + 5 % / 2
        comparison("kernel_ms", "improved", high=0.95),
        comparison("kernels", "unchanged"),  # exact: known at once
        comparison("peak_gpu_mem_gb", "regressed", high=1.3),
        comparison("avg_gen_s", "unchanged", high=1.5, gated=False),  # shown only
        comparison("-", "missing"),
    ]
    assert undecided(decided) == ()
    still_open = [
        comparison("wall_ratio", "unchanged", high=1.03),  # a 2.5 % slowdown not ruled out
        comparison("kernel_ms", "unchanged", high=1.011),  # past 1 + 2 % / 2
        comparison("wall_ratio", "insufficient data"),
    ]
    assert undecided(still_open) == ("batch wall_ratio", "batch kernel_ms", "batch wall_ratio")


def test_processes_alternate_abba_and_stop_once_every_gated_signal_is_decided(tmp_path: Path) -> None:
    runner = FakeRunner()
    outcome = measure_interleaved(plan_for(tmp_path), runner)
    # Six pairs planned (three blocks, two looks); the first look, after two blocks, decides.
    assert outcome.order == "ABBAABBA"
    assert [request.index for request in runner.requests] == [1, 1, 2, 2, 3, 3, 4, 4]
    (look,) = outcome.looks
    assert (look.block, look.processes_per_side, look.undecided) == (2, 4, ())
    assert look.alpha == pytest.approx(0.025)
    assert outcome.stop == "every gated signal decided after block 2"
    assert not outcome.regressed and not outcome.interrupted and outcome.failure is None
    # Each process reports to its own folder; only the head's processes get the head's variables.
    assert runner.requests[1].folder == tmp_path / "head" / "process-01"
    assert [dict(request.environment) for request in runner.requests[:2]] == [{}, {"PYTEST_SDXL_EXAMPLE": "1"}]
    command = runner.requests[0].command
    assert command[:10] == (
        sys.executable,
        "-m",
        "pytest_sdxl",
        "run",
        "--runs",
        "1",
        "--quiet",
        "--no-chart",
        "--report",
        str(tmp_path / "base" / "process-01"),
    )
    assert command[10:] == ("--model", "random:tiny")
    assert outcome.base is not None and outcome.head is not None
    for pooled in (outcome.base, outcome.head):
        (record,) = pooled.variants
        assert len(record.runs) == 4 and len({run.process for run in record.runs}) == 4


def test_a_regression_is_flagged_and_stops_the_measurement(tmp_path: Path) -> None:
    outcome = measure_interleaved(plan_for(tmp_path), FakeRunner(head_ratio=1.2))
    assert outcome.regressed and outcome.order == "ABBAABBA"
    assert [item.metric for item in outcome.comparisons if item.regressed] == ["wall_ratio"]


def test_open_signals_run_every_planned_block(tmp_path: Path) -> None:
    # No change under much scatter: a 2.5 % slowdown is not ruled out at any look.
    outcome = measure_interleaved(plan_for(tmp_path), FakeRunner(scatter=0.1))
    assert outcome.order == "ABBA" * 3
    assert [look.block for look in outcome.looks] == [2, 3]
    assert outcome.stop == "all 6 pairs measured"


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves ``step`` seconds each time it is read."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_the_budget_stops_before_a_block_that_would_pass_it_and_what_there_is_is_judged(tmp_path: Path) -> None:
    # The clock is read at the start and before each block: the first block "takes" 100 s; another would end past 150 s.
    outcome = measure_interleaved(plan_for(tmp_path, budget_s=150), FakeRunner(scatter=0.05), clock=ticking(100))
    assert outcome.order == "ABBA"
    assert outcome.stop.startswith("the budget: another block would pass 150 s")
    assert len(outcome.looks) == 1 and outcome.comparisons


def test_a_failed_process_stops_with_its_side_number_and_error_and_keeps_what_finished(tmp_path: Path) -> None:
    outcome = measure_interleaved(plan_for(tmp_path), FakeRunner(fail=(HEAD, 2, 1)))
    assert outcome.order == "AB"
    assert outcome.failure is not None
    assert "head process 2 exited with status 1" in outcome.failure.describe()
    assert "RuntimeError: out of memory" in outcome.failure.describe()
    assert outcome.base is not None and outcome.head is not None and not outcome.comparisons


def interrupting(after: int, stop: type[KeyboardInterrupt] = KeyboardInterrupt) -> Callable[..., ProcessOutcome]:
    runner = FakeRunner()

    def run(request: ProcessRequest) -> ProcessOutcome:
        if len(runner.requests) == after:
            raise stop
        return runner(request)

    return run


@pytest.mark.parametrize(("stop", "status"), [(KeyboardInterrupt, 130), (Terminated, 143)], ids=["sigint", "sigterm"])
def test_a_stop_signal_keeps_each_sides_finished_processes(
    tmp_path: Path, stop: type[KeyboardInterrupt], status: int
) -> None:
    outcome = measure_interleaved(plan_for(tmp_path), interrupting(after=3, stop=stop))
    assert outcome.interrupted == status and outcome.order == "ABB"
    assert outcome.base is not None and outcome.head is not None
    assert len(outcome.head.variants[0].runs) == 2


@pytest.mark.parametrize("status", [130, 143], ids=["sigint", "sigterm"])
def test_a_process_a_stop_signal_ended_stops_the_job_with_its_status(tmp_path: Path, status: int) -> None:
    """The signal reached the process group: the process's own status says which, and the job ends the same way."""
    outcome = measure_interleaved(plan_for(tmp_path), FakeRunner(fail=(HEAD, 1, status)))
    assert outcome.interrupted == status and outcome.failure is None and outcome.order == "A"
    assert outcome.base is not None and outcome.head is None


@pytest.fixture
def fake_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeRunner]]:
    """The command's processes replaced by a FakeRunner made with the given arguments."""

    def install(**keywords: object) -> FakeRunner:
        runner = FakeRunner(**keywords)  # type: ignore[arg-type]
        monkeypatch.setattr(interleave, "run_process", runner)
        return runner

    yield install


def ab(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["ab", "--base-python", sys.executable, "--head-python", sys.executable, *arguments])
    return status, out.getvalue(), err.getvalue()


def test_ab_pools_each_side_writes_the_comparison_and_passes_an_unchanged_pair(
    tmp_path: Path, fake_processes: Callable[..., FakeRunner]
) -> None:
    runner = fake_processes()
    status, out, err = ab("--report", str(tmp_path), "--cpus", "off", "--model", "random:tiny", "--variants", "batch")
    assert status == 0, err
    assert "imports pytest_sdxl" in err and "CPUs: not pinned (--cpus off)" in err
    assert runner.requests[0].cpus is None
    assert runner.requests[0].command[-2:] == ("--variants", "batch")
    for side in ("base", "head"):
        (record,) = load_results(tmp_path / side / "results.json").variants
        assert len(record.runs) == 4
    assert "no regression" in out and "wall_ratio" in out
    assert "measured in 4 and 4 fresh processes, order ABBAABBA" in out
    # How steady each process's reference calls were, as a range a side: the fakes scatter theirs by about 1 %.
    assert re.search(r"reference calls' median over fastest, a process: base 1\.0\d-1\.0\d, head 1\.0\d-1\.0\d", out)
    assert "Bonferroni" in (tmp_path / "comparison.md").read_text()


def test_ab_says_where_its_processes_keep_bytecode_the_environment_turns_off(
    tmp_path: Path, fake_processes: Callable[..., FakeRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_processes()
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    arguments = ["--cpus", "off", "--model", "random:tiny", "--variants", "batch", "--pairs", "2"]
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    status, _, err = ab("--report", str(tmp_path / "off"), *arguments)
    assert status == 0, err
    assert f"keep their bytecode in {tmp_path / 'cache' / 'pytest-sdxl' / 'bytecode'}" in err
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    status, _, err = ab("--report", str(tmp_path / "on"), *arguments)
    assert status == 0 and "bytecode" not in err


def test_ab_exits_1_on_a_regression(tmp_path: Path, fake_processes: Callable[..., FakeRunner]) -> None:
    fake_processes(head_ratio=1.2)
    status, out, _ = ab("--report", str(tmp_path), "--cpus", "off")
    assert status == 1 and "regressed: batch wall_ratio" in out


def test_ab_names_an_undecided_signal_instead_of_passing_it_and_fails_it_when_asked(
    tmp_path: Path, fake_processes: Callable[..., FakeRunner]
) -> None:
    # Unchanged code on a host whose processes scatter by 10 %: no regression found, none ruled out.
    fake_processes(scatter=0.1)
    arguments = ("--cpus", "off", "--pairs", "2")
    status, out, _ = ab("--report", str(tmp_path / "default"), *arguments)
    assert status == 0
    assert re.search(r"undecided: batch wall_ratio \d\.\d{3} \(unchanged\): its interval reaches \d\.\d{3}", out)
    assert "at or past the flag line 1.025, so a slowdown of its 5% threshold is not ruled out" in out
    # The spread between a side's processes says whether more processes would decide it: more than these two.
    sized = re.search(r"wall ratios spread (\d+\.\d)% within a side \(standard deviation of the logarithms, 4 "
                      r"processes\), where seeing 5% takes about (\d+) processes a side or more", out)  # fmt: skip
    assert sized is not None, out
    assert float(sized[1]) > 1.0 and int(sized[2]) > 2
    assert "no regression; undecided: batch wall_ratio" in out
    markdown = (tmp_path / "default" / "comparison.md").read_text()
    assert "**No regression found; undecided:** `batch` wall_ratio." in markdown
    assert "**No regression.**" not in markdown and "- undecided: batch wall_ratio" in markdown
    fake_processes(scatter=0.1)
    status, out, _ = ab("--report", str(tmp_path / "strict"), *arguments, "--fail-undecided")
    assert status == 1 and "undecided: batch wall_ratio" in out
    # Beside a regression, the open signal is still named, after it.
    assert verdict_line([comparison("kernel_ms", "regressed")], undecided=["batch wall_ratio"]) == (
        "**Regressed:** `batch` kernel_ms. **Undecided:** `batch` wall_ratio."
    )
    # A steady host decides it: nothing undecided, and --fail-undecided passes.
    fake_processes()
    status, out, _ = ab("--report", str(tmp_path / "steady"), *arguments, "--fail-undecided")
    assert status == 0 and "undecided:" not in out


def test_ab_names_the_failed_process_and_its_error(tmp_path: Path, fake_processes: Callable[..., FakeRunner]) -> None:
    fake_processes(fail=(BASE, 2, 1))
    status, _, err = ab("--report", str(tmp_path), "--cpus", "off")
    assert status == 1
    assert "base process 2 exited with status 1" in err and "RuntimeError: out of memory" in err
    assert (tmp_path / "base" / "results.json").is_file() and (tmp_path / "head" / "results.json").is_file()


def test_ab_exits_130_on_sigint_keeping_what_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interleave, "run_process", interrupting(after=2))
    status, _, err = ab("--report", str(tmp_path), "--cpus", "off")
    assert status == 130
    assert "stopped: interrupted" in err
    assert len(load_results(tmp_path / "head" / "results.json").variants[0].runs) == 1


def test_ab_pins_both_sides_to_the_same_cpus(tmp_path: Path, fake_processes: Callable[..., FakeRunner]) -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("this platform cannot pin CPUs")
    runner = fake_processes()
    status, _, err = ab("--report", str(tmp_path), "--cpus", "auto")
    assert status == 0
    allowed = frozenset(os.sched_getaffinity(0))
    expected = allowed - {0} if len(allowed) > 2 else allowed
    assert {request.cpus for request in runner.requests} == {expected}
    assert "CPUs: pinned to CPUs " in err


def usage_error(*arguments: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(["ab", *arguments])
        except SystemExit as exit_:  # argparse's own usage errors
            status = int(exit_.code or 0)
    assert status == 2, err.getvalue()
    return err.getvalue()


def test_ab_refuses_a_missing_interpreter_a_folder_without_one_and_one_without_pytest_sdxl(tmp_path: Path) -> None:
    report = ["--report", str(tmp_path / "out")]
    err = usage_error("--base-python", str(tmp_path / "nowhere"), "--head-python", sys.executable, *report)
    assert "--base-python" in err and "is not an executable file" in err and "virtual environment" in err
    err = usage_error("--base-python", sys.executable, "--head-python", str(tmp_path), *report)
    assert "--head-python" in err and "folder without bin/python" in err
    bare = tmp_path / "bin" / "python"
    bare.parent.mkdir()
    bare.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'pytest_sdxl'\" >&2\nexit 1\n")
    bare.chmod(0o755)
    err = usage_error("--base-python", sys.executable, "--head-python", str(tmp_path), *report)
    assert "cannot import pytest_sdxl (ModuleNotFoundError: No module named 'pytest_sdxl')" in err


def test_ab_takes_a_bare_interpreter_name_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.cli.ab_sides import interpreter

    folder = tmp_path / "bin"
    folder.mkdir()
    python = folder / "python-under-test"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    assert interpreter("python-under-test", "--base-python") == str(python)
    with pytest.raises(SettingsError, match=r"'python-elsewhere' is not an executable file; accepted: .*on PATH"):
        interpreter("python-elsewhere", "--head-python")


def test_an_older_base_without_no_chart_gets_only_the_flags_its_run_knows(tmp_path: Path) -> None:
    """A base whose ``run`` predates ``--no-chart`` is still measured: its processes are started without it."""
    from pytest_sdxl.cli.ab_sides import quiet_flags_known

    older = tmp_path / "older-python"
    help_text = "usage: pytest-sdxl run [-h] [--quiet] [--report REPORT]"
    older.write_text(f'#!/bin/sh\necho "{help_text}"\n')
    older.chmod(0o755)
    assert quiet_flags_known(str(older), "--base-python") == ("--quiet",)
    assert quiet_flags_known(sys.executable, "--head-python") == ("--quiet", "--no-chart")
    command = interleave.process_command(Side(BASE, (str(older),), quiet_flags=("--quiet",)), tmp_path, ())
    assert "--no-chart" not in command and "--quiet" in command
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'run: no such command' >&2\nexit 2\n")
    broken.chmod(0o755)
    with pytest.raises(SettingsError, match=r"'python -m pytest_sdxl run --help' failed \(run: no such command\)"):
        quiet_flags_known(str(broken), "--base-python")


def test_ab_refuses_bad_cpus_pairs_and_budget(tmp_path: Path) -> None:
    both = ["--base-python", sys.executable, "--head-python", sys.executable, "--report", str(tmp_path)]
    assert "give auto, off, or CPU numbers and ranges like 2-5,7" in usage_error(*both, "--cpus", "two")
    if hasattr(os, "sched_getaffinity"):
        assert "are not available here" in usage_error(*both, "--cpus", "4095")
    assert "whole number of at least 1" in usage_error(*both, "--pairs", "0")
    assert "number of seconds above 0" in usage_error(*both, "--budget-s", "-5")
    assert "--report" in usage_error("--base-python", sys.executable, "--head-python", sys.executable)
    (tmp_path / "base").mkdir()
    assert "is not empty; give a new or empty folder" in usage_error(*both)


def test_a_real_process_runs_on_the_cpus_it_was_pinned_to(tmp_path: Path) -> None:
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("this platform cannot pin CPUs")
    cpu = min(os.sched_getaffinity(0))
    script = "import os, sys; print(sorted(os.sched_getaffinity(0))); sys.exit(int(os.environ['EXIT_WITH']))"
    command = (sys.executable, "-c", script)
    request = ProcessRequest(HEAD, 1, command, {"EXIT_WITH": "3"}, frozenset({cpu}), tmp_path / "process")
    outcome = interleave.run_process(request)
    assert outcome.status == 3 and outcome.seconds > 0
    assert outcome.stderr_tail.strip() == f"[{cpu}]"


@pytest.mark.slow
def test_ab_end_to_end_on_the_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pair of real ``run`` processes, base then head, on random:tiny on the CPU: two process starts, hence slow."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the processes' torch: one thread, as on a busy two-core machine
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")  # the fewest the protocol takes: a first and a timed one
    report = tmp_path / "ab"
    status, out, err = ab(
        "--report", str(report), "--pairs", "1", "--model", "random:tiny", "--device", "cpu",
        "--variants", "baseline", "--prompts", str(prompts), "--profile", "gate",
    )  # fmt: skip
    assert status == 0, err
    assert "block 1/1: base process 1" in err and "block 1/1: head process 1" in err
    for side in ("base", "head"):
        # A process's folder is read for its results.json alone: no chart is drawn there (run --no-chart).
        written = {path.name for path in (report / side / "process-01").iterdir()}
        assert {"results.json", "results.md"} <= written and "results.png" not in written
        (record,) = load_results(report / side / "results.json").variants
        assert record.variant == "baseline" and len(record.runs) == 1
    assert "measured in 1 and 1 fresh processes, order AB" in out
    assert (report / "comparison.md").is_file()


def test_ab_exits_3_when_neither_side_measured_a_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nothing_measured(request: ProcessRequest) -> ProcessOutcome:
        request.folder.mkdir(parents=True)
        save_results(ResultSet(dict(SETTINGS), {}, []), request.folder / "results.json")
        return ProcessOutcome(0, 1.0)

    monkeypatch.setattr(interleave, "run_process", nothing_measured)
    status, _, err = ab("--report", str(tmp_path), "--cpus", "off", "--pairs", "2")
    assert status == 3 and "nothing to compare: neither side measured a variant" in err


def test_ab_warns_when_two_interpreters_import_the_same_package(
    tmp_path: Path, fake_processes: Callable[..., FakeRunner]
) -> None:
    fake_processes()
    other = tmp_path / "other-python"
    other.symlink_to(sys.executable)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([
            "ab", "--base-python", sys.executable, "--head-python", str(other),
            "--report", str(tmp_path / "ab"), "--cpus", "off",
        ])  # fmt: skip
    assert status == 0
    assert "warning: both interpreters import the same pytest_sdxl" in err.getvalue()
