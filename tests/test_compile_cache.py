"""The persistent compile cache: where its folder comes from, that compiling fills it, cold then warm.

Compiling needs a C++ compiler on the CPU; the cold-then-warm tests compile a two-line function in
fresh processes (the cache must outlast a process to count), then compile_regions on random:tiny: the
cache's plumbing is the same for every compiled variant, and compile_regions compiles the smallest
graphs of them (the repeated transformer blocks: about a quarter of compile_unet's time on 2 cores).
tests/test_variant_images.py compiles compile_unet itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.machine import compile_cache
from pytest_sdxl.settings import resolve

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")


def test_the_default_folder_is_under_the_users_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert compile_cache.default_folder({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "pytest-sdxl" / "compile"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compile_cache.default_folder({}) == tmp_path / ".cache" / "pytest-sdxl" / "compile"


@pytest.mark.parametrize(
    ("command_line", "environment", "ini", "expected"),
    [
        ("/from/command", "/from/environment", "/from/ini", "/from/command"),
        (None, "/from/environment", "/from/ini", "/from/environment"),
        (None, None, "/from/ini", "/from/ini"),
        (None, None, None, "/xdg/pytest-sdxl/compile"),
        (None, "off", "/from/ini", None),
        ("auto", "off", None, "/xdg/pytest-sdxl/compile"),
    ],
)
def test_command_line_then_environment_then_ini_then_default(
    monkeypatch: pytest.MonkeyPatch, command_line: str | None, environment: str | None, ini: str | None, expected: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    variables = {} if environment is None else {"PYTEST_SDXL_COMPILE_CACHE": environment}
    settings = resolve({"compile_cache": command_line}, variables, {"compile_cache": ini})
    assert settings.compile_cache == (None if expected is None else Path(expected))


def test_a_file_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    afile = tmp_path / "cache"
    afile.write_text("")
    with pytest.raises(SettingsError, match=r"variable PYTEST_SDXL_COMPILE_CACHE: compile cache .* is a file"):
        resolve({}, {"PYTEST_SDXL_COMPILE_CACHE": str(afile)}, {})


def test_activate_creates_the_folder_and_points_torch_at_it(tmp_path: Path) -> None:
    environment: dict[str, str] = {}
    folder = tmp_path / "deep" / "compile"
    assert compile_cache.activate(folder, environment) == folder
    assert environment == {
        "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor"),
        "TRITON_CACHE_DIR": str(folder / "triton"),
    }
    assert (folder / "inductor").is_dir() and (folder / "triton").is_dir()
    assert compile_cache.activate(None, environment) is None


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match=r"compile cache folder .* cannot be created"):
        compile_cache.activate(blocker / "compile", {})


@pytest.mark.parametrize(
    ("hits", "misses", "state"), [(0, 0, ""), (0, 3, "cold"), (3, 0, "warm"), (1, 2, "partly warm")]
)
def test_cache_use_says_cold_or_warm(hits: int, misses: int, state: str) -> None:
    use = compile_cache.CacheUse(hits, misses)
    assert use.state == state
    assert use.describe().startswith(state)


def test_summary_line_names_the_folder_and_each_compiled_variant(tmp_path: Path) -> None:
    line = compile_cache.summary_line(tmp_path, {"compile_unet": "cold (0 of 2 ...)"})
    assert line == f"sdxl compile cache {tmp_path}: compile_unet cold (0 of 2 ...)"
    assert compile_cache.summary_line(tmp_path, {}) == ""


PROBE_SCRIPT = """
import json, sys
from pathlib import Path
from pytest_sdxl.machine import compile_cache
compile_cache.activate(Path(sys.argv[1]))
import torch
probe = compile_cache.CacheProbe()
probe.start()
compiled = torch.compile(lambda x: torch.sin(x) * 2 + 1)
compiled(torch.ones(8))
use = probe.stop()
print(json.dumps({"state": use.state, "hits": use.hits, "misses": use.misses}))
"""


def probe_in_a_fresh_process(folder: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.slow
def test_a_second_process_finds_the_cache_warm(tmp_path: Path) -> None:
    folder = tmp_path / "compile"
    first = probe_in_a_fresh_process(folder)
    assert first["state"] == "cold", first
    assert compile_cache.entries(folder / "inductor") > 0, "compiling should fill the folder"
    second = probe_in_a_fresh_process(folder)
    assert second["state"] == "warm", second


@pytest.mark.slow
def test_a_compiled_variant_reports_cold_then_warm_in_the_summary_and_results(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makepyfile(test_suite="def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n")
    folder = pytester.path / "compile"
    states = []
    for session in ("first", "second"):
        report = pytester.path / session
        result = pytester.runpytest_subprocess(
            *SMALL,
            "--sdxl-variants=compile_regions,baseline",
            "--sdxl-runs=1",
            f"--sdxl-compile-cache={folder}",
            f"--sdxl-report={report}",
            timeout=900,
        )
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines(
            [f"sdxl compile cache: {folder}", f"sdxl compile cache {folder}: compile_regions *"]
        )
        measured = json.loads((report / "results.json").read_text(encoding="utf-8"))
        by_variant = {variant["variant"]: variant["compile_cache"] for variant in measured["variants"]}
        assert by_variant["baseline"] == "", "the baseline compiles nothing"
        states.append(by_variant["compile_regions"])
    assert states[0].startswith("cold"), states
    assert states[1].startswith("warm"), states
    assert compile_cache.entries(folder) > 0


def test_the_command_line_run_takes_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sdxl.cli.main import main

    for variable in (compile_cache.INDUCTOR_VARIABLE, compile_cache.TRITON_VARIABLE):
        monkeypatch.delenv(variable, raising=False)  # run sets them for its process: undone after the test
    afile = tmp_path / "a-file"
    afile.write_text("")
    assert main(["run", "--quiet", "--compile-cache", str(afile)]) == 2
    assert "command line --compile-cache: compile cache" in capsys.readouterr().err
    folder = tmp_path / "compile"
    assert main(["run", "--quiet", "--runs", "1", "--variants", "baseline", "--compile-cache", str(folder)]) == 0
    assert (folder / "inductor").is_dir()
    assert __import__("os").environ[compile_cache.INDUCTOR_VARIABLE] == str(folder / "inductor")


@pytest.mark.slow
def test_the_protocol_reports_each_runs_cache_state_cold_then_warm(tmp_path: Path) -> None:
    """The protocol compiles afresh in every run: run 1 fills an empty cache, run 2 reads it back."""
    folder, report = tmp_path / "compile", tmp_path / "report"
    arguments = ["--model", "random:tiny", "--variants", "compile_regions,baseline", "--runs", "2", "--quiet"]
    arguments += ["--compile-cache", str(folder), "--report", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest_sdxl", "run", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("sdxl compile cache"))
    assert line.startswith(f"sdxl compile cache {folder}: compile_regions run 1 cold (0 of "), line
    assert "; run 2 warm (" in line and "baseline" not in line  # the baseline compiles nothing
    records = {item["variant"]: item for item in json.loads((report / "results.json").read_text())["variants"]}
    runs = records["compile_regions"]["runs"]
    assert [run["compile_cache"].split(" ")[0] for run in runs] == ["cold", "warm"]
    assert "compile_regions " + records["compile_regions"]["compile_cache"] == line.split(": ", 1)[1]
    assert records["baseline"]["compile_cache"] == ""
    assert all(run["compile_cache"] == "" for run in records["baseline"]["runs"])
