"""Saving faults: a report folder's lock held past its wait, a chart that cannot be drawn, a report a pytest session
cannot write. None of them may lose what was measured or hide what happened.

On random:tiny on the CPU, in-process. The lock is held the way ``flock FILE sleep N`` holds it (``fcntl.flock`` on
results.json.lock from this test), with the waits shortened; the chart fails by a patched drawing, as it fails when
a Ctrl-C left matplotlib half imported; the disk fills by a patched write, as in test_nothing_lost.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_nothing_lost import record

from pytest_sdxl.cli.main import INTERRUPTED, main

# Imported here, before pytester's child sessions, so that the patches below reach them (pytester forgets the
# modules a child session imports).
from pytest_sdxl.plugin import report as plugin_report  # noqa: F401
from pytest_sdxl.reports import chart
from pytest_sdxl.results import schema, store
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--quiet", "--compile-cache", "off", "--model", "random:tiny", "--device", "cpu"]
LOCK_WAIT_S = 2.0
# How the lock holder is said when it is no pytest-sdxl session (the `flock` of the fault battery).
NO_SESSION = "held by no live pytest-sdxl session of this folder (a `flock` on it, a hung process?) or never freed"
# The error a Ctrl-C in torchmetrics' import of matplotlib leaves the chart's own import to raise.
HALF_IMPORTED = AttributeError("module 'matplotlib' has no attribute '_docstring'")


def half_imported(result_set: ResultSet) -> bytes:
    """``chart.chart_png`` as it fails where a Ctrl-C left matplotlib half imported."""
    raise HALF_IMPORTED


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock's waits shortened (120 s, 5 s and 5 s in use); their ratios kept."""
    monkeypatch.setattr(store, "LOCK_TIMEOUT_S", LOCK_WAIT_S)
    monkeypatch.setattr(store, "NOTICE_AFTER_S", 0.5)
    monkeypatch.setattr(store, "AFTER_GIVING_UP_S", 0.2)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """``hold(folder)`` takes the folder's results.json.lock as `flock` does; ``hold.free()`` (or the test's end)
    releases it."""
    held: list[int] = []

    def hold(folder: Path) -> None:
        descriptor = os.open(folder / store.LOCK_NAME, os.O_RDWR | os.O_CREAT)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        held.append(descriptor)

    def free() -> None:
        while held:
            os.close(held.pop())  # releases the flock

    hold.free = free  # type: ignore[attr-defined]
    yield hold
    free()


def run_arguments(prompts: Path, report: Path, variants: str, runs: int, *extra: str) -> list[str]:
    where = ["--prompts", str(prompts), "--report", str(report), "--variants", variants]
    return ["run", *COMMON, "--runs", str(runs), *where, *extra]


def before_run(monkeypatch: pytest.MonkeyPatch, number: int, action: Callable[[], None]) -> None:
    """``action()`` as the protocol starts run ``number`` of a variant (it may raise, as SIGINT would land there)."""
    from pytest_sdxl.measure import protocol

    measure_run = protocol.measure_run

    def measured(settings: Any, composition: Any, run: int, *rest: Any) -> Any:
        if run == number:
            action()
        return measure_run(settings, composition, run, *rest)

    monkeypatch.setattr(protocol, "measure_run", measured)


def stop() -> None:
    raise KeyboardInterrupt


def timed_closes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """How long each ReportFolder.close took, in seconds."""
    took: list[float] = []
    close = store.ReportFolder.close

    def timed(folder: store.ReportFolder) -> None:
        started = time.monotonic()
        try:
            close(folder)
        finally:
            took.append(time.monotonic() - started)

    monkeypatch.setattr(store.ReportFolder, "close", timed)
    return took


def rescue_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("results.json.*.unsaved.json"))


@pytest.mark.slow
def test_a_lock_held_past_its_wait_mid_run_fails_the_run_and_keeps_its_runs_in_a_file_of_its_own(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short_waits: None,
    lock_holder: Callable[[Path], None],
) -> None:
    """The fault battery's rj6: the lock taken during run 1's warm-up; the old behaviour was exit 2, nothing kept,
    a silent wait, and the close waiting as long again."""
    report = tmp_path / "report"
    before_run(monkeypatch, 1, lambda: lock_holder(report))
    closes = timed_closes(monkeypatch)
    assert main(run_arguments(prompts, report, "baseline", 2)) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    lock = report / "results.json.lock"
    waiting = [line for line in errors if "waiting for its lock" in line]
    assert waiting == [
        f"pytest-sdxl: report folder {report}: waiting for its lock {lock}, {NO_SESSION}; giving up after 2 s"
    ]
    (rescue,) = rescue_files(report)
    assert errors[-1] == (
        f"pytest-sdxl run: cannot write {report / 'results.json'}: waited 2 s for its lock {lock}, {NO_SESSION}; "
        f"nothing of this run was saved before. This run's results so far, baseline (1 of 2 runs), are kept in "
        f"{rescue} (results.json as this save would have left it): once the lock is free, move it over "
        "results.json, then go on with --resume"
    )
    assert not (report / "results.json").exists()
    (baseline,) = load_results(rescue).variants
    assert [run.run for run in baseline.runs] == [1] and baseline.partial == "running"
    assert closes and closes[-1] < LOCK_WAIT_S / 2, "the close waited for the lock again"
    # The advice works: the lock freed, the file moved over results.json, --resume measures run 2 only.
    monkeypatch.undo()
    lock_holder.free()  # type: ignore[attr-defined]
    os.replace(rescue, report / "results.json")
    assert main(run_arguments(prompts, report, "baseline", 2, "--resume")) == 0
    (resumed,) = load_results(report / "results.json").variants
    assert [run.run for run in resumed.runs] == [1, 2] and resumed.runs[0] == baseline.runs[0]


def test_an_interrupt_whose_save_cannot_take_the_lock_exits_as_interrupted_naming_the_rescue_file(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short_waits: None,
    lock_holder: Callable[[Path], None],
) -> None:
    """Run 1 saved; the lock taken, then SIGINT as run 2 starts: the interrupt's save gives up, exit 130 all the same
    (before: the write error escaped the interrupt handler as a usage error, 2)."""
    report = tmp_path / "report"

    def locked_then_stopped() -> None:
        lock_holder(report)
        raise KeyboardInterrupt

    before_run(monkeypatch, 2, locked_then_stopped)
    assert main(run_arguments(prompts, report, "baseline", 2)) == INTERRUPTED
    last = capsys.readouterr().err.strip().splitlines()[-1]
    (rescue,) = rescue_files(report)
    assert last.startswith(
        "pytest-sdxl run: interrupted; measured baseline (1 of 2 runs), but cannot write "
        f"{report / 'results.json'}: waited 2 s for its lock"
    ), last
    assert (
        f"it holds baseline (1 of 2 runs). This run's results so far, baseline (1 of 2 runs), are kept in {rescue}"
        in last
    )
    assert load_results(rescue).partial == "interrupted"
    assert load_results(report / "results.json").partial == "running"  # run 1's save, as it was


def test_a_lock_held_before_measuring_is_a_failed_write_that_measured_nothing(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    short_waits: None,
    lock_holder: Callable[[Path], None],
) -> None:
    """Not a usage error (2): nothing was wrong with the command; a conflict with a live session still is one."""
    from pytest_sdxl.measure import protocol

    monkeypatch.setattr(protocol, "measure_run", lambda *arguments: pytest.fail("measured"))
    report = tmp_path / "report"
    report.mkdir()
    lock_holder(report)
    assert main(run_arguments(prompts, report, "baseline", 1)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pytest-sdxl run: cannot write {report / 'results.json'}: waited 2 s for its lock "
        f"{report / 'results.json.lock'}, {NO_SESSION}; nothing of this run was saved before. Nothing was measured; "
        "run again once the lock is free, or give another --report folder"
    )
    assert rescue_files(report) == [] and not (report / "results.json").exists()


WORKLOAD = {"model": "random:tiny", "resolved_dtype": "float32", "steps": 1, "prompts": ["a", "b"], "runs": 2}


def writer(folder: Path, *measures: str) -> store.ReportFolder:
    opened = store.ReportFolder(folder, store.Writer("test", dict(WORKLOAD), {}, measures=measures))
    opened.open()
    return opened


def test_the_wait_is_said_once_naming_the_live_writers_and_a_save_after_giving_up_waits_briefly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], short_waits: None, lock_holder: Callable[[Path], None]
) -> None:
    report = tmp_path / "report"
    mine, other = writer(report, "baseline"), writer(report, "tiny_vae")
    try:
        lock_holder(report)
        with pytest.raises(store.ReportFolderLocked) as refused:
            mine.save(ResultSet(settings=dict(WORKLOAD), variants=[record("baseline")]))
        waiting = [line for line in capsys.readouterr().err.splitlines() if "waiting for its lock" in line]
        assert len(waiting) == 1 and f"live now: {other.writer.describe()}" in waiting[0], waiting
        rescue = refused.value.rescue
        assert rescue == report / f"results.json.{mine.writer.session}.unsaved.json"
        assert str(refused.value) == (
            f"report folder {report}: waited 2 s for its lock {report / 'results.json.lock'}, held by a writer of the "
            f"folder (live now: {other.writer.describe()}); what it would have written is in {rescue}: move that over "
            "results.json once the lock is free"
        )
        assert [item.variant for item in load_results(rescue).variants] == ["baseline"]
        # Given up once, a later save tries briefly (AFTER_GIVING_UP_S) and says nothing more.
        started = time.monotonic()
        with pytest.raises(store.ReportFolderLocked):
            mine.save(ResultSet(settings=dict(WORKLOAD), variants=[record("baseline", 2)]))
        assert time.monotonic() - started < LOCK_WAIT_S / 2
        assert "waiting" not in capsys.readouterr().err
        assert len(load_results(rescue).variants[0].runs) == 2  # the newer save's, over the older one
    finally:
        mine.close()
        other.close()


def test_a_save_that_gets_through_again_removes_the_rescue_file(tmp_path: Path, short_waits: None) -> None:
    report = tmp_path / "report"
    mine = writer(report, "baseline")
    descriptor = os.open(report / store.LOCK_NAME, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        with pytest.raises(store.ReportFolderLocked) as refused:
            mine.save(ResultSet(settings=dict(WORKLOAD), variants=[record("baseline")]))
    finally:
        os.close(descriptor)
    assert refused.value.rescue is not None and refused.value.rescue.is_file()
    mine.save(ResultSet(settings=dict(WORKLOAD), variants=[record("baseline", 2)]))
    mine.close()
    assert rescue_files(report) == []
    assert len(load_results(report / "results.json").variants[0].runs) == 2


def test_a_rescue_the_folder_cannot_take_goes_to_the_temporary_folder_or_says_why_none_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_waits: None, lock_holder: Callable[[Path], None]
) -> None:
    report, temporary = tmp_path / "report", tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    save_results = schema.save_results

    def refused_in_the_folder(result_set: ResultSet, path: Any, *rest: Any) -> Path:
        if Path(path).parent == report:
            raise OSError(errno.EACCES, "Permission denied", str(path))
        return save_results(result_set, path, *rest)

    def refused_everywhere(result_set: ResultSet, path: Any, *rest: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    mine, again = writer(report, "baseline"), writer(report, "tiny_vae")
    lock_holder(report)
    try:
        monkeypatch.setattr(store, "save_results", refused_in_the_folder)
        with pytest.raises(store.ReportFolderLocked) as refused:
            mine.save(ResultSet(settings=dict(WORKLOAD), variants=[record("baseline")]))
        assert refused.value.rescue == temporary / f"results.json.{mine.writer.session}.unsaved.json"
        assert refused.value.rescue.is_file() and rescue_files(report) == []
        monkeypatch.setattr(store, "save_results", refused_everywhere)
        with pytest.raises(store.ReportFolderLocked) as lost:
            again.save(ResultSet(settings=dict(WORKLOAD), variants=[record("tiny_vae")]))
    finally:
        mine.close()
        again.close()
    assert lost.value.rescue is None
    assert str(lost.value).endswith(
        f"no other file could keep what it would have written ({report}: No space left on device; {temporary}: "
        "No space left on device)"
    )


def test_a_pytest_session_that_loses_the_lock_keeps_its_results_and_fails(
    pytester: pytest.Pytester, model_code_imported: None, short_waits: None
) -> None:
    """The lock taken once baseline's test starts: baseline's save gives up after the wait, the end's save at once."""
    pytester.makeconftest(HOLDING_CONFTEST)
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    report = pytester.path / "report"
    result = pytester.runpytest(*SMALL, "--sdxl-variants=baseline", "--sdxl-runs=1", f"--sdxl-report={report}")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    (rescue,) = rescue_files(report)
    result.stdout.fnmatch_lines(
        [f"sdxl: could not write the report to {report}: report folder {report}: waited 0.2 s for its lock *"]
    )
    assert f"what it would have written is in {rescue}: move that over results.json once the lock is free" in output
    assert "1 passed" in output and not (report / "results.json").exists()
    kept = load_results(rescue)
    assert [item.variant for item in kept.variants] == ["baseline"] and kept.variants[0].ok and kept.partial == ""


@pytest.mark.parametrize("failure", [HALF_IMPORTED, KeyError("Rectangle:kwdoc")], ids=["attribute-error", "key-error"])
def test_a_chart_that_cannot_be_drawn_during_an_interrupt_save_costs_no_other_file(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: Exception,
) -> None:
    """The fault battery's Ctrl-C in the first PSNR: the old behaviour was exit 1, a traceback, no kept line."""

    def failing(result_set: ResultSet) -> bytes:
        raise failure

    monkeypatch.setattr(chart, "chart_png", failing)
    before_run(monkeypatch, 2, stop)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline", 2)) == INTERRUPTED
    errors = capsys.readouterr().err
    assert "Traceback" not in errors
    assert errors.strip().splitlines()[-1] == (
        f"pytest-sdxl run: interrupted; kept baseline (1 of 2 runs) in {report} (results.json, results.md); "
        f"results.png not drawn: {type(failure).__name__}: {failure}"
    )
    assert load_results(report / "results.json").partial == "interrupted"
    assert (report / "results.md").is_file() and not (report / "results.png").exists()


def test_a_chart_that_cannot_be_drawn_at_a_runs_end_is_a_warning_and_no_earlier_chart_is_left(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "results.png").write_bytes(b"an earlier session's chart")
    monkeypatch.setattr(chart, "chart_png", half_imported)
    assert main(run_arguments(prompts, report, "baseline", 1)) == 0
    output, errors = capsys.readouterr()
    assert f"written: {report / 'results.json'}, {report / 'results.md'}\n" in output
    assert f"pytest-sdxl run: warning: results.png not drawn: AttributeError: {HALF_IMPORTED}\n" in errors
    assert load_results(report / "results.json").variants[0].ok and (report / "results.md").is_file()
    assert not (report / "results.png").exists()


def test_report_and_merge_say_why_the_chart_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source, other = tmp_path / "results.json", tmp_path / "other.json"
    save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record("baseline")]), source)
    save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record("tiny_vae")]), other)
    monkeypatch.setattr(chart, "chart_png", half_imported)
    merged = tmp_path / "merged"
    for command in (["report", str(source)], ["merge", str(source), str(other), "--output", str(merged)]):
        capsys.readouterr()
        assert main(command) == 0
        assert f"warning: results.png not drawn: AttributeError: {HALF_IMPORTED}\n" in capsys.readouterr().err


def test_an_interrupt_under_no_chart_names_only_the_files_written(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before_run(monkeypatch, 2, stop)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline", 2, "--no-chart")) == INTERRUPTED
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pytest-sdxl run: interrupted; kept baseline (1 of 2 runs) in {report} (results.json, results.md)"
    )
    assert not (report / "results.png").exists()


def test_a_failure_to_draw_is_said_in_a_few_words(monkeypatch: pytest.MonkeyPatch) -> None:
    def long_failure(result_set: ResultSet) -> bytes:
        raise RuntimeError("x" * 500 + "\nthe rest of a long message")

    monkeypatch.setattr(chart, "chart_png", long_failure)
    png, said = chart.chart_or_failure(ResultSet())
    assert png == b"" and said.startswith("RuntimeError: xxx") and said.endswith("...")
    assert len(said) == chart.FAILURE_CHARACTERS


SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
BENCHMARK_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"
# Takes the report folder's lock as the first sdxl test starts and holds it to the session's end, as `flock` would.
HOLDING_CONFTEST = """
import fcntl
import os
from pathlib import Path

HELD = []


def pytest_runtest_setup(item):
    if not HELD:
        descriptor = os.open(Path(item.config.getoption("sdxl_report")) / "results.json.lock", os.O_RDWR)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        HELD.append(descriptor)


def pytest_unconfigure(config):
    for descriptor in HELD:
        os.close(descriptor)
"""


def a_disk_that_fills_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Every write of results.json after the first ``writes`` fails as a full disk fails it."""
    write_atomically, done = schema.write_atomically, [0]

    def filling(path: Any, text: str | bytes) -> Path:
        done[0] += Path(path).name == "results.json"
        if done[0] > writes:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_atomically(path, text)

    monkeypatch.setattr(schema, "write_atomically", filling)


@pytest.mark.parametrize("chart_fails", [False, True], ids=["report-unwritten", "chart-not-drawn"])
def test_a_pytest_session_fails_when_its_report_cannot_be_written_and_passes_without_the_chart(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, model_code_imported: None, chart_fails: bool
) -> None:
    """The fault battery's case: every test passed, the report unwritten, exit 0; now 1 (pytest's TESTS_FAILED)."""
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    report = pytester.path / "report"
    if chart_fails:
        monkeypatch.setattr(chart, "chart_png", half_imported)
    else:
        a_disk_that_fills_after(monkeypatch, 1)  # baseline's save gets through, the later ones do not
    result = pytester.runpytest(*SMALL, "--sdxl-variants=baseline,tiny_vae", "--sdxl-runs=1", f"--sdxl-report={report}")
    output = result.stdout.str()
    assert "2 passed" in output
    saved = load_results(report / "results.json")
    if chart_fails:
        assert result.ret == pytest.ExitCode.OK, output
        result.stdout.fnmatch_lines(
            [f"sdxl: wrote results.json, results.md to {report}; results.png not drawn: AttributeError: *_docstring*"]
        )
        assert [item.variant for item in saved.variants] == ["baseline", "tiny_vae"] and saved.partial == ""
        assert not (report / "results.png").exists()
        return
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.stdout.fnmatch_lines(
        [f"sdxl: could not write the report to {report}: [[]Errno 28[]] No space left on device: *results.json*"]
    )
    assert [item.variant for item in saved.variants] == ["baseline"] and saved.partial == "running"
