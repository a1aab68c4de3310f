"""A session stopped before every variant ended keeps what it measured: --sdxl-report is written, marked partial;
and a session writing a folder beside another keeps the other's variants, or is refused before its first test.

Child sessions run in-process (pytester) on random:tiny and share the components this process loaded
once. The xdist case, where the controller holds its workers' records, is in test_workers; a real
SIGINT to a pytest process is in test_nothing_lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.plugin.report import report_machine, save_progress
from pytest_sdxl.plugin.state import SessionState
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import load_results
from pytest_sdxl.settings import Settings

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
BENCHMARK_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"
# When tiny_vae's test starts: keep the results.json written so far (what a killed session would
# leave), then stop the session as the test's parameter says.
STOPPING_CONFTEST = """
import shutil
from pathlib import Path

import pytest


def pytest_runtest_setup(item):
    if getattr(item.callspec.params.get("sdxl_variant"), "id", None) != "tiny_vae":
        return
    report = Path(item.config.getoption("sdxl_report"))
    shutil.copy(report / "results.json", report.parent / "results-while-running.json")
    {stop}
"""
VARIANTS = "--sdxl-variants=baseline,tiny_vae,vae_slicing"

pytestmark = pytest.mark.usefixtures("model_code_imported")


def prompt_file(pytester: pytest.Pytester, count: int) -> str:
    path = pytester.path / "prompts.txt"
    path.write_text("".join(f"prompt number {index}\n" for index in range(count)))
    return str(path)


@pytest.mark.parametrize(
    ("stop", "status", "partial", "description"),
    [
        ("raise KeyboardInterrupt", pytest.ExitCode.INTERRUPTED, "interrupted", "interrupted before"),
        ("pytest.exit('stopped by the test')", pytest.ExitCode.INTERRUPTED, "interrupted", "interrupted before"),
        (
            "raise RuntimeError('tiny_vae broke')",
            pytest.ExitCode.TESTS_FAILED,
            "stopped",
            "stopped early (-x or --maxfail) before",
        ),
    ],
    ids=["sigint", "pytest-exit", "exitfirst"],
)
def test_a_stopped_session_reports_what_it_measured_and_names_what_it_never_reached(
    pytester: pytest.Pytester, stop: str, status: pytest.ExitCode, partial: str, description: str
) -> None:
    pytester.makeconftest(STOPPING_CONFTEST.format(stop=stop))
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    report = pytester.path / "report"
    result = pytester.runpytest(
        *SMALL,
        "-x",
        VARIANTS,
        "--sdxl-runs=1",
        f"--sdxl-prompts={prompt_file(pytester, 2)}",
        f"--sdxl-report={report}",
        no_reraise_ctrlc=True,
    )
    assert result.ret == status, result.stdout.str()
    # tiny_vae failed under -x: it ended (its record says why); interrupted, it never started.
    unreached = ["vae_slicing"] if partial == "stopped" else ["tiny_vae", "vae_slicing"]
    measured = json.loads((report / "results.json").read_text(encoding="utf-8"))
    by_name = {variant["variant"]: variant for variant in measured["variants"]}
    assert by_name["baseline"]["runs"] and by_name["baseline"]["status"] == "ok"
    assert sorted(by_name) == sorted({"baseline", "tiny_vae", "vae_slicing"} - set(unreached))
    assert (measured["partial"], measured["not_measured"]) == (partial, unreached)
    result.stdout.fnmatch_lines([f"sdxl: partial results: {description}: {', '.join(unreached)}"])
    markdown = (report / "results.md").read_text(encoding="utf-8")
    assert f"- partial: {description}: {', '.join(unreached)}" in markdown
    running = json.loads((pytester.path / "results-while-running.json").read_text(encoding="utf-8"))
    assert [variant["variant"] for variant in running["variants"]] == ["baseline"]
    assert (running["partial"], running["not_measured"]) == ("running", ["tiny_vae", "vae_slicing"])


def measured(variant: str) -> VariantRecord:
    run = RunRecord(run=1, load_s=1.0, init_gen_s=0.5, gen_s=[0.01] * 3, avg_gen_s=0.01, median_gen_s=0.01, total_s=2)
    return VariantRecord(variant, "exact", runs=[run])


def test_results_json_follows_the_session_and_is_complete_once_every_variant_ended(tmp_path: Path) -> None:
    state = SessionState(settings=Settings(report=tmp_path / "report"), planned=["baseline", "tiny_vae"])
    state.report_machine = {"gpu": None}  # no machine lookup in a unit test
    state.records = {"baseline": measured("baseline")}
    save_progress(state)
    saved = json.loads((tmp_path / "report" / "results.json").read_text(encoding="utf-8"))
    assert (saved["partial"], saved["not_measured"]) == ("running", ["tiny_vae"])
    state.records["tiny_vae"] = VariantRecord("tiny_vae", "lossy", status="skipped", reason="not here")
    save_progress(state)
    saved = json.loads((tmp_path / "report" / "results.json").read_text(encoding="utf-8"))
    assert (saved["partial"], saved["not_measured"]) == ("", [])
    assert [variant["variant"] for variant in saved["variants"]] == ["baseline", "tiny_vae"]


def test_a_failed_save_while_running_does_not_fail_the_test(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = SessionState(settings=Settings(report=blocker / "report"), planned=["baseline"])
    state.report_machine = {}
    state.records = {"baseline": measured("baseline")}
    save_progress(state)  # the session's end tries again and says when it cannot
    assert not (blocker / "report").exists()


def live_session(report: Path, prompts: str, harness: bool) -> Any:
    """Another session writing ``report`` now, with baseline saved: a pytest session's workload, or ``run``'s."""
    from pytest_sdxl.pipelines.architectures import TINY
    from pytest_sdxl.results.store import ReportFolder, Writer

    lines = tuple(Path(prompts).read_text().splitlines())
    other = SessionState(settings=Settings(runs=1, prompts=lines, report=report), planned=["baseline"])
    other.image_size = TINY.default_size  # the size the tiny model's session below generates
    other.resolved = {"resolved_device": "cpu", "resolved_dtype": "float32"}
    theirs = other.result_set(report_machine(other))
    if not harness:
        theirs.settings.pop("harness")
    command = "pytest" if harness else "run"
    folder = ReportFolder(report, Writer(command, theirs.settings, theirs.machine, measures=("baseline",)))
    folder.open()
    theirs.variants = [measured("baseline")]
    folder.save(theirs)
    return folder


@pytest.mark.slow
def test_a_session_writing_beside_a_live_one_keeps_the_others_variants(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    report, prompts = pytester.path / "report", prompt_file(pytester, 2)
    other = live_session(report, prompts, harness=True)
    try:
        result = pytester.runpytest(
            *SMALL, "--sdxl-variants=tiny_vae", "--sdxl-runs=1", f"--sdxl-prompts={prompts}", f"--sdxl-report={report}"
        )
    finally:
        other.close()
    assert result.ret == 0, result.stdout.str()
    written = load_results(report / "results.json")
    assert [record.variant for record in written.variants] == ["baseline", "tiny_vae"]
    assert all(record.ok for record in written.variants)
    assert "| tiny_vae" in (report / "results.md").read_text(encoding="utf-8")


def test_a_session_whose_runs_differ_from_a_live_writers_is_refused_before_its_first_test(
    pytester: pytest.Pytester,
) -> None:
    """A pytest session's runs are blocks of rounds on one warm pipeline, run's a fresh load each: never one file."""
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    report, prompts = pytester.path / "report", prompt_file(pytester, 2)
    other = live_session(report, prompts, harness=False)
    try:
        result = pytester.runpytest(
            *SMALL, "--sdxl-variants=tiny_vae", "--sdxl-runs=1", f"--sdxl-prompts={prompts}", f"--sdxl-report={report}"
        )
    finally:
        other.close()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = result.stderr.str()
    assert f"report folder {report} is being written by another session" in errors and "harness" in errors
    assert "passed" not in result.stdout.str()
    assert [record.variant for record in load_results(report / "results.json").variants] == ["baseline"]
