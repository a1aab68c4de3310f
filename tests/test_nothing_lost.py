"""Nothing lost: an interrupted run keeps its finished runs, and writers sharing a report folder keep each other's.

On random:tiny on the CPU. The in-process tests stop a run where the protocol starts a run (as SIGINT
would land there) or hold one session while another starts; the subprocess tests send a real SIGINT
once the first run's save is on disk (polled, never a fixed sleep).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.cli.main import INTERRUPTED, TERMINATED, USAGE_ERROR, main
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--quiet", "--compile-cache", "off", "--model", "random:tiny", "--device", "cpu"]
# How long a test waits for another thread or process before it fails: far above what the step takes.
PATIENCE_S = 180


def run_arguments(prompts: Path, report: Path, variants: str, runs: int = 1, *extra: str) -> list[str]:
    where = ["--prompts", str(prompts), "--report", str(report), "--variants", variants]
    return ["run", *COMMON, "--runs", str(runs), *where, *extra]


def stop_at_run(monkeypatch: pytest.MonkeyPatch, stopped: int) -> None:
    """SIGINT as it lands when the protocol starts run ``stopped`` of a variant (the runs before it finished)."""
    from pytest_sdxl.measure import protocol

    measure_run = protocol.measure_run

    def stopped_there(settings: Any, composition: Any, run: int, *rest: Any) -> Any:
        if run == stopped:
            raise KeyboardInterrupt
        return measure_run(settings, composition, run, *rest)

    monkeypatch.setattr(protocol, "measure_run", stopped_there)


@pytest.mark.slow
def test_an_interrupt_in_the_first_variant_keeps_its_finished_runs(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stop_at_run(monkeypatch, 2)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline,tiny_vae", 3)) == INTERRUPTED
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1] == (
        f"pytest-sdxl run: interrupted; not measured: tiny_vae; kept baseline (1 of 3 runs) in {report} "
        "(results.json, results.md, results.png)"
    )
    written = load_results(report / "results.json")
    baseline = written.variant("baseline")
    assert baseline is not None and [run.run for run in baseline.runs] == [1]
    assert (baseline.status, baseline.partial) == ("ok", "interrupted")
    assert (written.partial, written.not_measured) == ("interrupted", ["tiny_vae"])
    assert (report / "results.md").is_file() and (report / "results.png").is_file()
    assert "- partial: interrupted before: tiny_vae, baseline (1 of 3 runs)" in (report / "results.md").read_text()


def test_a_ctrl_c_that_library_code_turned_into_another_error_is_an_interrupt_not_a_failure(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT inside a library that catches it and raises its own error (a context manager's generator, a
    finalizer): the latch saw the press, so the run stops as interrupted and the variant is not called failed."""
    from pytest_sdxl.machine.interrupts import LATCH
    from pytest_sdxl.measure import protocol

    def pressed_then_converted(*arguments: Any) -> Any:
        LATCH.pressed = True  # as the handler records a press before its KeyboardInterrupt is swallowed
        raise RuntimeError("generator didn't stop after throw()")

    monkeypatch.setattr(protocol, "measure_run", pressed_then_converted)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline", 3)) == INTERRUPTED
    assert "interrupted before any run finished" in capsys.readouterr().err
    assert not LATCH.pressed  # spent: a later command in this process is not stopped by it
    assert not (report / "results.json").exists()


def test_an_interrupt_before_any_run_finished_says_so_in_one_line_and_writes_nothing(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stop_at_run(monkeypatch, 1)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline", 3)) == INTERRUPTED
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1] == f"pytest-sdxl run: interrupted before any run finished; nothing written to {report}"
    assert not (report / "results.json").exists()


@pytest.mark.slow
def test_resume_finishes_a_partly_measured_variant_keeping_its_runs(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report"
    with monkeypatch.context() as patch:
        stop_at_run(patch, 2)
        assert main(run_arguments(prompts, report, "baseline", 2)) == INTERRUPTED
    first = load_results(report / "results.json").variants[0]
    assert main(run_arguments(prompts, report, "baseline", 2, "--resume")) == 0
    resumed = load_results(report / "results.json")
    (baseline,) = resumed.variants
    assert [run.run for run in baseline.runs] == [1, 2] and baseline.runs[0] == first.runs[0]
    assert (baseline.partial, resumed.partial) == ("", "")


class Session(threading.Thread):
    """One `run` in a thread: its exit status, or the exception that ended it."""

    def __init__(self, arguments: list[str]) -> None:
        super().__init__(daemon=True)
        self.arguments = arguments
        self.status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.status = main(self.arguments)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def result(self) -> int | None:
        self.join(PATIENCE_S)
        assert not self.is_alive(), "the session did not end"
        if self.error is not None:
            raise self.error
        return self.status


def measuring_gate(monkeypatch: pytest.MonkeyPatch, gate: Callable[[str], None]) -> None:
    """Call ``gate(variant)`` before the protocol measures each variant (for all sessions of this process)."""
    from pytest_sdxl.measure import protocol

    measure_variant = protocol.measure_variant

    def gated(settings: Any, composition: Any, *rest: Any) -> Any:
        gate(composition.id)
        return measure_variant(settings, composition, *rest)

    monkeypatch.setattr(protocol, "measure_variant", gated)


@pytest.mark.slow
def test_two_resumed_sessions_writing_one_folder_at_once_keep_both_variants(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sessions read the folder before either saves (the barrier), as two lanes started together do."""
    both_started = threading.Barrier(2, timeout=PATIENCE_S)
    measuring_gate(monkeypatch, lambda variant: both_started.wait())
    report = tmp_path / "report"
    sessions = [Session(run_arguments(prompts, report, variant, 1, "--resume")) for variant in ("baseline", "tiny_vae")]
    for session in sessions:
        session.start()
    assert [session.result() for session in sessions] == [0, 0]
    written = load_results(report / "results.json")
    assert [record.variant for record in written.variants] == ["baseline", "tiny_vae"]
    assert all(record.ok for record in written.variants)
    assert (written.partial, written.not_measured) == ("", [])
    markdown = (report / "results.md").read_text(encoding="utf-8")
    assert "| baseline" in markdown and "| tiny_vae" in markdown


@pytest.mark.parametrize(
    ("second", "said"),
    [
        (("baseline", 1), "both would write baseline"),
        (("tiny_vae", 2), "runs: 1 vs 2"),
    ],
    ids=["same-variant", "other-settings"],
)
def test_a_second_session_that_would_spoil_the_first_ones_results_is_refused_before_measuring(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    second: tuple[str, int],
    said: str,
) -> None:
    """The first session measures baseline at one run; the second starts while it is measuring."""
    first_measuring, second_ended = threading.Event(), threading.Event()
    measured: list[str] = []

    def gate(variant: str) -> None:
        measured.append(variant)
        if len(measured) == 1:
            first_measuring.set()
            assert second_ended.wait(PATIENCE_S)

    measuring_gate(monkeypatch, gate)
    report = tmp_path / "report"
    first = Session(run_arguments(prompts, report, "baseline", 1))
    first.start()
    try:
        assert first_measuring.wait(PATIENCE_S)
        variant, runs = second
        status = main(run_arguments(prompts, report, variant, runs))
    finally:
        second_ended.set()
    assert first.result() == 0
    error = capsys.readouterr().err
    assert status == USAGE_ERROR, error
    assert measured == ["baseline"], "the refused session measured"
    refusal = next(line for line in error.splitlines() if line.startswith("pytest-sdxl: error:"))
    assert str(report) in refusal and "another session" in refusal and said in refusal
    assert f"pid {os.getpid()}" in refusal
    written = load_results(report / "results.json")
    assert [record.variant for record in written.variants] == ["baseline"] and written.variants[0].ok


def python_module(*arguments: str, cwd: Path) -> subprocess.Popen[str]:
    # One torch thread, as the in-process tests use: several threads on a busy two-core host are several times slower.
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_a_terminal_gives_it,
    )


def sigint_as_a_terminal_gives_it() -> None:
    """The child's SIGINT at its default and unblocked, as a shell starts a command.

    A child inherits an ignored or blocked SIGINT from the process that starts it (Python then leaves it
    ignored), and an xdist worker's state depends on what ran in it before: in two whole-suite runs both
    tests below saw their child finish its work, the SIGINT without effect, though each passes alone. These
    tests are about a user's Ctrl-C reaching the command, so the child starts as a terminal would start it.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_saved_runs(path: Path, process: subprocess.Popen[str], done: Callable[[dict[str, Any]], bool]) -> None:
    """Poll ``path`` until its document satisfies ``done``; fails if the process ends first or takes too long."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        if path.is_file():
            with_contents = json.loads(path.read_text(encoding="utf-8"))
            if done(with_contents):
                return
        if process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before the save: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no save satisfied the test within {PATIENCE_S} s")


def runs_of(document: dict[str, Any]) -> dict[str, int]:
    return {variant["variant"]: len(variant["runs"]) for variant in document.get("variants", [])}


def a_disk_that_fills_after(monkeypatch: pytest.MonkeyPatch, writes: int, name: str | None = "results.json") -> None:
    """Every write of a file called ``name`` (None: of any file) after the first ``writes`` fails as a full disk
    fails it."""
    import errno

    # Both modules that write: store (the session's presence file) binds the function at its own import.
    from pytest_sdxl.results import schema, store

    write_atomically, done = schema.write_atomically, [0]

    def filling(path: Any, text: str, *rest: Any) -> Path:
        done[0] += name is None or Path(path).name == name
        if done[0] > writes:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_atomically(path, text, *rest)

    monkeypatch.setattr(schema, "write_atomically", filling)
    monkeypatch.setattr(store, "write_atomically", filling)


@pytest.mark.parametrize("writes", [0, 1], ids=["first-save", "second-save"])
def test_a_full_disk_stops_the_run_saying_what_the_file_still_holds(
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    writes: int,
) -> None:
    """The old behaviour: a traceback at the failed save. Measuring on would risk runs that no file can keep."""
    from pytest_sdxl.measure import protocol

    measured = []
    measure_run = protocol.measure_run
    monkeypatch.setattr(protocol, "measure_run", lambda *arguments: measured.append(1) or measure_run(*arguments))
    a_disk_that_fills_after(monkeypatch, writes)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline,tiny_vae", 2)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    held = "nothing of this run was saved before" if writes == 0 else "it holds baseline (1 of 2 runs)"
    assert last == (
        f"pytest-sdxl run: cannot write {report / 'results.json'}: No space left on device; {held}. Free the space "
        "or make the folder writable, then go on with --resume"
    )
    assert len(measured) == writes + 1, "measuring stops at the first save that fails"
    if writes:
        (baseline,) = load_results(report / "results.json").variants
        assert len(baseline.runs) == 1
    else:
        assert not (report / "results.json").exists()


def test_a_full_disk_before_measuring_is_the_same_clear_error(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The session's presence file (written as the folder is opened) fails first on a disk already full."""
    a_disk_that_fills_after(monkeypatch, 0, name=None)
    report = tmp_path / "report"
    assert main(run_arguments(prompts, report, "baseline", 1)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"pytest-sdxl run: cannot write {report / '.results.json.writers'}/"), last
    assert last.endswith(
        ": No space left on device; nothing of this run was saved before. Free the space or make "
        "the folder writable, then go on with --resume"
    ), last


# SIGTERM is how a CI job is stopped (a cancel, its time limit, ``timeout`` at its default): kept as Ctrl-C keeps.
STOPS = [(signal.SIGINT, INTERRUPTED), (signal.SIGTERM, TERMINATED)]


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "status"), STOPS, ids=["sigint", "sigterm"])
def test_a_stop_signal_to_a_run_process_after_its_first_run_keeps_that_run(
    tmp_path: Path, prompts: Path, stop: signal.Signals, status: int
) -> None:
    report = tmp_path / "report"
    process = python_module("-m", "pytest_sdxl", *run_arguments(prompts, report, "baseline", 3), cwd=tmp_path)
    wait_for_saved_runs(report / "results.json", process, lambda document: runs_of(document).get("baseline", 0) >= 1)
    process.send_signal(stop)
    _, errors = process.communicate(timeout=PATIENCE_S)
    assert process.returncode == status, errors
    assert "Traceback" not in errors, errors
    last = errors.strip().splitlines()[-1]
    assert last.startswith("pytest-sdxl run: interrupted; kept baseline (") and str(report) in last, errors
    written = load_results(report / "results.json")
    (baseline,) = written.variants
    assert 1 <= len(baseline.runs) < 3 and baseline.partial == "interrupted"
    assert written.partial == "interrupted"


PLUGIN_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_stop_signal_to_a_pytest_session_keeps_every_variant_that_ended(
    tmp_path: Path, prompts: Path, stop: signal.Signals
) -> None:
    (tmp_path / "test_suite.py").write_text(PLUGIN_TEST)
    report = tmp_path / "report"
    arguments = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py", "--sdxl-model=random:tiny"]
    arguments += ["--sdxl-device=cpu", "--sdxl-runs=1", f"--sdxl-prompts={prompts}", f"--sdxl-report={report}"]
    process = python_module(*arguments, "--sdxl-variants=baseline,tiny_vae,vae_slicing", cwd=tmp_path)
    wait_for_saved_runs(report / "results.json", process, lambda document: "baseline" in runs_of(document))
    process.send_signal(stop)
    output, errors = process.communicate(timeout=PATIENCE_S)
    assert process.returncode == 2, output + errors  # pytest's INTERRUPTED
    written = load_results(report / "results.json")
    assert written.variant("baseline") is not None and written.variant("baseline").ok  # type: ignore[union-attr]
    assert written.partial == "interrupted" and "vae_slicing" in written.not_measured
    assert "sdxl: partial results: interrupted before:" in output


def record(variant: str, runs: int = 1) -> VariantRecord:
    made = [
        RunRecord(
            run=number, load_s=1.0, init_gen_s=0.5, gen_s=[0.01] * 3, avg_gen_s=0.01, median_gen_s=0.01, total_s=2
        )
        for number in range(1, runs + 1)
    ]
    return VariantRecord(variant, "exact", runs=made)


WORKLOAD = {"model": "random:tiny", "resolved_dtype": "float32", "steps": 1, "prompts": ["a", "b"], "runs": 1}


@pytest.fixture
def writer_of(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Opens a report writer on tmp_path/report (closed at the test's end)."""
    from pytest_sdxl.results.store import ReportFolder, Writer

    opened: list[ReportFolder] = []

    def open_one(measures: list[str], replace: bool = True, carries: tuple[str, ...] = (), **settings: Any) -> Any:
        writer = Writer(command="test", settings={**WORKLOAD, **settings}, machine={}, measures=tuple(measures))
        folder = ReportFolder(tmp_path / "report", dataclass_replace(writer, carries=carries), replace=replace)
        folder.open()
        opened.append(folder)
        return folder

    yield open_one
    for folder in opened:
        folder.close()


def dataclass_replace(item: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(item, **changes)


def result_set(*variants: VariantRecord, **settings: Any) -> ResultSet:
    return ResultSet(settings={**WORKLOAD, **settings}, variants=list(variants))


def test_two_writers_saving_at_once_keep_both_variants(writer_of: Callable[..., Any], tmp_path: Path) -> None:
    first, second = writer_of(["baseline"]), writer_of(["tiny_vae"])
    both_ready = threading.Barrier(2, timeout=PATIENCE_S)
    errors: list[BaseException] = []

    def save_twice(writer: Any, variant: str) -> None:
        try:
            both_ready.wait()
            for runs in (1, 2):
                writer.save(result_set(record(variant, runs)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=save_twice, args=pair) for pair in ((first, "baseline"), (second, "tiny_vae"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE_S)
    assert not errors
    written = load_results(tmp_path / "report" / "results.json")
    assert {item.variant: len(item.runs) for item in written.variants} == {"baseline": 2, "tiny_vae": 2}
    assert (tmp_path / "report" / "results.json.lock").exists()


def test_a_new_writer_replaces_a_finished_sessions_file_but_not_a_live_writers(
    writer_of: Callable[..., Any], tmp_path: Path
) -> None:
    report = tmp_path / "report"
    save_results(result_set(record("baseline"), record("vae_slicing")), report / "results.json")
    # No writer is live: the file is an earlier session's, which a plain run replaces (as before; --resume keeps it).
    live = writer_of(["tiny_vae"])
    live.save(result_set(record("tiny_vae")))
    assert [item.variant for item in load_results(report / "results.json").variants] == ["tiny_vae"]
    # A writer is live: what it wrote stays.
    late = writer_of(["baseline"])
    late.save(result_set(record("baseline")))
    assert [item.variant for item in load_results(report / "results.json").variants] == ["baseline", "tiny_vae"]


def test_a_killed_writer_blocks_nobody_and_a_resumed_writer_keeps_the_earlier_variants(
    writer_of: Callable[..., Any], tmp_path: Path
) -> None:
    from pytest_sdxl.results.store import WRITERS_FOLDER

    report = tmp_path / "report"
    killed = writer_of(["baseline"])
    killed.save(result_set(record("baseline")))
    # What the system does when a process dies: its lock is released, its announcement stays behind.
    killed.presence.release()
    killed.presence = None
    announcement = report / WRITERS_FOLDER / f"{killed.writer.session}.json"
    assert announcement.is_file()
    resumed = writer_of(["tiny_vae"], replace=False, carries=("baseline",))
    assert not announcement.exists()
    resumed.save(result_set(record("baseline"), record("tiny_vae")))
    assert [item.variant for item in load_results(report / "results.json").variants] == ["baseline", "tiny_vae"]


def test_a_variant_record_without_partial_reads_as_complete(tmp_path: Path) -> None:
    path = save_results(result_set(record("baseline")), tmp_path / "results.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    for variant in document["variants"]:
        variant.pop("partial", None)
    path.write_text(json.dumps(document), encoding="utf-8")
    assert load_results(path).variants[0].partial == ""
