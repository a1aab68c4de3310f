"""Output paths users give: links, streams, folders and read-only places, for write_atomically and the commands.

A link's file is written and the link kept; a stream (/dev/stdout, a pipe, a FIFO) is written in place; a
folder or an unwritable place is a one-line error before the work (compare, ab, report, asv init), and an
output that fails after the work is said after the verdict without losing what was measured.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_ab import FakeRunner
from test_cli import synthetic_results

from pytest_sdxl.cli.main import main
from pytest_sdxl.cli.options import checked_output_file
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.measure import interleave
from pytest_sdxl.results import schema
from pytest_sdxl.results.schema import write_atomically

linux_descriptors = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc/self/fd")


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], Path]]:
    """Makes a folder unwritable, even to root (``chattr +i``, as the fault battery ran); undone after the test."""
    made: list[Path] = []

    def read_only(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            if shutil.which("chattr") is None:
                pytest.skip("root ignores permission bits, and chattr is not installed")
            if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
                pytest.skip("this file system has no immutable attribute")
        else:
            folder.chmod(0o555)
        made.append(folder)
        return folder

    yield read_only
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def command(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(arguments))
    return status, out.getvalue(), err.getvalue()


def failing_for(monkeypatch: pytest.MonkeyPatch, name: str, error: int = errno.ENOSPC) -> None:
    """write_atomically raises ``error`` for a path whose name is ``name``, as a disk that filled would."""
    real = schema.write_atomically

    def write(path: str | os.PathLike[str], text: str | bytes) -> Path:
        if Path(path).name == name:
            raise OSError(error, os.strerror(error), str(path))
        return real(path, text)

    monkeypatch.setattr(schema, "write_atomically", write)


# write_atomically


def test_a_link_keeps_being_a_link_and_its_file_is_written(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "summary.md").write_text("old\n")
    link = tmp_path / "summary.md"
    link.symlink_to(Path("real", "summary.md"))  # relative, as `ln -s` makes them
    assert write_atomically(link, "new\n") == link
    assert link.is_symlink() and (tmp_path / "real" / "summary.md").read_text() == "new\n"
    # A link that leads nowhere yet: its file is made, the link kept.
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "real" / "later.md")
    write_atomically(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.md").read_text() == "made\n"
    assert sorted(path.name for path in (tmp_path / "real").iterdir()) == ["later.md", "summary.md"]


def test_a_regular_file_is_still_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_text("old\n")
    before = path.stat().st_ino
    # A reader holding the old file sees it whole: the new text is a new file put in its place.
    with path.open() as reader:
        write_atomically(path, "new\n")
        assert reader.read() == "old\n"
    assert path.read_text() == "new\n" and path.stat().st_ino != before
    assert [item.name for item in tmp_path.iterdir()] == ["results.md"]  # no temporary file left
    write_atomically(tmp_path / "made" / "here.md", "x")
    assert (tmp_path / "made" / "here.md").read_text() == "x"


@linux_descriptors
def test_a_pipe_behind_proc_self_fd_is_written_in_place_and_a_closed_one_is_an_oserror() -> None:
    read_end, write_end = os.pipe()
    try:
        write_atomically(f"/proc/self/fd/{write_end}", "to the pipe\n")
        os.close(write_end)
        assert os.read(read_end, 100) == b"to the pipe\n"
    finally:
        os.close(read_end)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with pytest.raises(BrokenPipeError):  # its reader is gone: the write fails, nothing is replaced
            write_atomically(f"/dev/fd/{write_end}", "nobody reads this\n")
    finally:
        os.close(write_end)


@linux_descriptors
def test_a_file_stdout_was_sent_to_is_written_at_its_offset_not_replaced(tmp_path: Path) -> None:
    """``compare --summary /dev/stdout >> $GITHUB_STEP_SUMMARY``: what earlier steps and the command wrote stays."""
    summary = tmp_path / "step-summary.md"
    summary.write_text("an earlier step\n")
    script = (
        "import sys\nfrom pytest_sdxl.results.schema import write_atomically\n"
        "print('printed first')\nwrite_atomically('/dev/stdout', 'the summary\\n')\nprint('printed after')\n"
    )
    with summary.open("a") as appended:
        subprocess.run([sys.executable, "-c", script], stdout=appended, check=True)
    assert summary.read_text() == "an earlier step\nprinted first\nthe summary\nprinted after\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    # A reader opened first, so that the writer's open does not wait for one.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomically(fifo, "streamed\n")
        assert os.read(reader, 100) == b"streamed\n"
    finally:
        os.close(reader)
    assert fifo.is_fifo()


def test_a_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "summary.md").mkdir()
    (tmp_path / "to-folder").symlink_to(tmp_path / "summary.md")
    for path in (tmp_path / "summary.md", tmp_path / "to-folder"):
        with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
            write_atomically(path, "x")
    assert (tmp_path / "summary.md").is_dir() and list((tmp_path / "summary.md").iterdir()) == []


# The check before the work


def test_an_output_file_is_checked_as_it_will_be_written(
    tmp_path: Path, make_read_only: Callable[[Path], Path]
) -> None:
    assert checked_output_file(None, "--summary") is None
    assert checked_output_file(str(tmp_path / "new" / "summary.md"), "--summary") == tmp_path / "new" / "summary.md"
    with pytest.raises(SettingsError, match=r"--summary: '.*' is a folder; accepted: a file path .* /dev/stdout"):
        checked_output_file(str(tmp_path), "--summary")
    locked = make_read_only(tmp_path / "locked")
    with pytest.raises(SettingsError, match="cannot be written to"):
        checked_output_file(str(locked / "summary.md"), "--summary")
    # A link in a writable folder whose file is in a read-only one is refused: the file is what is written.
    (tmp_path / "link.md").symlink_to(locked / "summary.md")
    with pytest.raises(SettingsError, match=r"locked.* cannot be written to"):
        checked_output_file(str(tmp_path / "link.md"), "--summary")
    if Path("/proc/self/fd").is_dir():
        read_end, write_end = os.pipe()
        try:
            checked_output_file(f"/proc/self/fd/{write_end}", "--summary")  # a stream: written in place
        finally:
            os.close(read_end)
            os.close(write_end)


# compare


def test_compare_refuses_a_summary_it_cannot_write_before_reading_the_results(
    tmp_path: Path, make_read_only: Callable[[Path], Path]
) -> None:
    missing = str(tmp_path / "missing.json")  # never read: the summary is refused first
    locked = make_read_only(tmp_path / "locked")
    for summary, said in ((locked / "sum.md", "cannot be written to"), (tmp_path, "is a folder")):
        status, out, err = command("compare", "--summary", str(summary), missing, missing)
        assert status == 2 and out == ""
        assert err.startswith("pytest-sdxl: error: command line --summary: ") and said in err, err
        assert len(err.splitlines()) == 1


def test_compare_writes_the_summary_through_a_link_and_to_a_pipe(tmp_path: Path) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    (tmp_path / "kept").mkdir()
    link = tmp_path / "sum.md"
    link.symlink_to(tmp_path / "kept" / "sum.md")
    status, _, err = command("compare", "--summary", str(link), str(base), str(base))
    assert status == 0, err
    assert link.is_symlink() and "Performance comparison" in (tmp_path / "kept" / "sum.md").read_text()
    if not Path("/proc/self/fd").is_dir():
        return
    read_end, write_end = os.pipe()
    try:
        status, _, err = command("compare", "--summary", f"/proc/self/fd/{write_end}", str(base), str(base))
        os.close(write_end)
        assert status == 0, err
        with os.fdopen(read_end, "rb") as piped:
            assert b"Performance comparison" in piped.read()
    finally:
        with contextlib.suppress(OSError):
            os.close(write_end)


def test_compare_says_a_summary_it_could_not_write_after_its_verdict_and_keeps_a_regression_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    slower = synthetic_results(tmp_path / "slower.json", 1.2, seed=2)
    failing_for(monkeypatch, "sum.md")
    summary = str(tmp_path / "sum.md")
    status, out, err = command("compare", "--summary", summary, str(base), str(base))
    # Nothing regressed: not 1, which says a regression, and not 0, which would pass without the summary.
    assert status == 2 and "no regression" in out
    assert err == f"pytest-sdxl: error: --summary {summary!r} was not written: No space left on device\n"
    status, out, err = command("compare", "--summary", summary, "--format", "markdown", str(base), str(slower))
    assert status == 1 and "was not written: No space left on device" in err and "Traceback" not in err


# ab


@pytest.fixture
def fake_processes(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner = FakeRunner()
    monkeypatch.setattr(interleave, "run_process", runner)
    return runner


def ab(*arguments: str) -> tuple[int, str, str]:
    python = ["--base-python", sys.executable, "--head-python", sys.executable, "--cpus", "off"]
    return command("ab", *python, "--model", "random:tiny", *arguments)


def test_ab_refuses_a_summary_it_cannot_write_before_measuring(
    tmp_path: Path, fake_processes: FakeRunner, make_read_only: Callable[[Path], Path]
) -> None:
    locked = make_read_only(tmp_path / "locked")
    for summary in (locked / "sum.md", tmp_path):
        status, _, err = ab("--report", str(tmp_path / "report"), "--summary", str(summary))
        assert status == 2 and "pytest-sdxl: error: command line --summary: " in err, err
    assert fake_processes.requests == []


def test_ab_keeps_the_measurement_when_the_summary_cannot_be_written(
    tmp_path: Path, fake_processes: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_for(monkeypatch, "sum.md")
    report = tmp_path / "report"
    status, out, err = ab("--report", str(report), "--summary", str(tmp_path / "sum.md"))
    assert status == 2 and "no regression" in out and "Traceback" not in err
    kept = [report / "base" / "results.json", report / "head" / "results.json", report / "comparison.md"]
    assert all(path.is_file() for path in kept)
    last = err.splitlines()[-1]
    assert last.startswith(f"pytest-sdxl: error: --summary {str(tmp_path / 'sum.md')!r} was not written: No space")
    assert last.endswith(f"; the measurement is kept: {', '.join(str(path) for path in kept)}")


# report


def test_report_beside_a_read_only_results_file_names_the_folder_and_suggests_output(
    tmp_path: Path, make_read_only: Callable[[Path], Path]
) -> None:
    synthetic_results(tmp_path / "locked" / "results.json", 1.0, seed=1)
    locked = make_read_only(tmp_path / "locked")
    status, out, err = command("report", str(locked))
    assert status == 2 and out == ""  # refused before the tables, not after them
    assert err.startswith(f"pytest-sdxl: error: report: the results file's folder {str(locked)!r} cannot be written")
    assert "give --output DIR" in err and len(err.splitlines()) == 1
    status, _, err = command("report", str(locked), "--output", str(tmp_path / "elsewhere"))
    assert status == 0, err
    assert (tmp_path / "elsewhere" / "results.md").is_file()


# asv init


def test_asv_init_refuses_a_benchmarks_file_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").write_text("mine\n")
    for force in ((), ("--force",)):
        status, _, err = command("asv", "init", *force)
        assert status == 2 and f"asv init: {str(tmp_path / 'benchmarks')!r} is a file" in err, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["benchmarks"]
    assert (tmp_path / "benchmarks").read_text() == "mine\n"
    (tmp_path / "benchmarks").unlink()
    (tmp_path / "asv.conf.json").mkdir()
    status, _, err = command("asv", "init", "--force")
    assert status == 2 and "asv init writes a file at asv.conf.json" in err and "folder is in the way" in err
    assert not (tmp_path / "benchmarks").exists()


def test_asv_init_in_a_read_only_folder_or_benchmarks_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_read_only: Callable[[Path], Path]
) -> None:
    locked = make_read_only(tmp_path / "locked")
    monkeypatch.chdir(locked)
    status, _, err = command("asv", "init")
    assert status == 2 and f"asv init: {str(locked)!r} cannot be written to" in err and "Traceback" not in err
    monkeypatch.chdir(tmp_path)
    make_read_only(tmp_path / "benchmarks")
    status, _, err = command("asv", "init")
    assert status == 2 and f"asv init: {str(tmp_path / 'benchmarks')!r} cannot be written to" in err
    assert not (tmp_path / "asv.conf.json").exists()  # no half-done init


def test_asv_init_says_a_write_that_failed_and_what_was_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    failing_for(monkeypatch, "__init__.py")
    status, _, err = command("asv", "init")
    assert status == 2
    assert err == (
        f"pytest-sdxl: error: asv init cannot write {tmp_path / 'benchmarks' / '__init__.py'}: No space left on "
        "device; written before it: benchmarks/bench_sdxl.py\n"
    )
    # The configuration comes last: no asv.conf.json names a suite that is not there.
    assert not (tmp_path / "asv.conf.json").exists()
