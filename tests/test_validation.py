"""Every input checked before the first pipeline is built: one line naming the option, where its value
came from and what is accepted; exit status 2 for the command line, 4 (a usage error) for pytest.

Classes: bounds (steps, size, runs, seed, tune's budget and runs), prompts files, device names
(well-formed, no duplicates, present), output paths (one check for every folder and file written).
The command line runs in-process through ``cli.main.main`` (a subprocess where the old behaviour hung),
the plugin through pytester; no test loads a model unless the check it shows would let one load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sdxl.cli.main import main
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.machine.folders import writable_file, writable_folder
from pytest_sdxl.options import RUNS_RANGE, SEED_RANGE, SIZE_RANGE, STEPS_RANGE
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, save_results
from pytest_sdxl.settings import resolve
from pytest_sdxl.tune.options import BUDGET_RANGE_S, parse_budget

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
PLAIN_TEST = "def test_plain():\n    pass\n"
ROOT = Path(__file__).resolve().parents[1]
FOLDER_ACCEPTED = "accepted: a folder that exists or can be created, and can be written to"
# A folder nobody can write to, root included: procfs takes no new files.
UNWRITABLE = Path("/proc/self/sdxl-report")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-folder"
    path.write_text("")
    return path


def cli_error(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The command's one stderr line, after asserting exit status 2 (a usage error)."""
    status = main(arguments)
    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 2, errors
    assert len(errors) == 1, errors
    return errors[0]


def plugin_error(result: pytest.RunResult) -> str:
    """The session's one usage-error line, after asserting pytest's usage-error status (4)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def range_text(low: int, high: int) -> str:
    return f"accepted: a whole number from {low} to {high}"


# Bounds ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bounds"), [("steps", STEPS_RANGE), ("runs", RUNS_RANGE), ("seed", SEED_RANGE)], ids=str
)
@given(data=st.data())
def test_a_whole_number_outside_its_range_is_refused_with_the_range(
    name: str, bounds: tuple[int, int], data: st.DataObject
) -> None:
    low, high = bounds
    number = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    with pytest.raises(SettingsError) as raised:
        resolve({name: str(number)}, {}, {})
    message = str(raised.value)
    assert message.startswith(f"command line --sdxl-{name}: {number} must be at ")
    assert message.endswith(f"; {range_text(low, high)}")


@pytest.mark.parametrize(
    ("name", "bounds"), [("steps", STEPS_RANGE), ("runs", RUNS_RANGE), ("seed", SEED_RANGE)], ids=str
)
@given(data=st.data())
def test_a_whole_number_inside_its_range_is_accepted(name: str, bounds: tuple[int, int], data: st.DataObject) -> None:
    number = data.draw(st.integers(*bounds))
    assert getattr(resolve({name: str(number)}, {}, {}), name) == number


@given(size=st.integers())
def test_a_size_is_accepted_exactly_when_a_multiple_of_8_in_range(size: int) -> None:
    low, high = SIZE_RANGE
    if low <= size <= high and size % 8 == 0:
        assert resolve({"size": str(size)}, {}, {}).size == size
        return
    with pytest.raises(SettingsError, match=rf"^command line --sdxl-size: {size} must be .*; accepted: a multiple "):
        resolve({"size": str(size)}, {}, {})


def test_steps_past_the_schedulers_timesteps_are_refused_before_loading(prompts: Path) -> None:
    """The old behaviour: accepted, then the first generation never ended."""
    arguments = ["run", "--steps", "100000", "--variants", "baseline", "--runs", "1", "--prompts", str(prompts)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest_sdxl", *arguments, "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "pytest-sdxl: error: command line --steps: 100000 must be at most 1000 (the scheduler has 1,000 training "
        "timesteps); accepted: a whole number from 1 to 1000"
    ]


@pytest.mark.parametrize(
    ("arguments", "environment", "ini", "line"),
    [
        (["--sdxl-size=8192"], {}, "", "command line --sdxl-size: 8192 must be at most 4096"),
        ([], {"PYTEST_SDXL_RUNS": "1000"}, "", "environment variable PYTEST_SDXL_RUNS: 1000 must be at most 100"),
        ([], {}, "[pytest]\nsdxl_steps = 5000\n", "tox.ini key sdxl_steps: 5000 must be at most 1000"),
    ],
    ids=["command-line", "environment", "ini"],
)
def test_a_plugin_bound_is_a_usage_error_saying_where_and_the_range(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    environment: dict[str, str],
    ini: str,
    line: str,
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    if ini:
        pytester.makeini(ini)
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest(*SMALL, *arguments))
    assert error.startswith(f"ERROR: pytest-sdxl: {line} (")
    assert "; accepted: a " in error


@given(seconds=st.decimals(min_value=0, max_value=10**6, places=3), unit=st.sampled_from(["", "s", "m", "h"]))
def test_a_budget_is_accepted_exactly_when_in_range(seconds: Decimal, unit: str) -> None:
    low, high = BUDGET_RANGE_S
    value = float(seconds) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]
    if low < value <= high:
        assert parse_budget(f"{seconds}{unit}") == pytest.approx(value)
        return
    with pytest.raises(ValueError, match=r"; accepted: more than 0 seconds and at most 24 hours"):
        parse_budget(f"{seconds}{unit}")


@pytest.mark.parametrize("budget", ["0s", "0", "0m", "25h", "100000"])
def test_tune_refuses_a_budget_out_of_range_before_measuring(
    budget: str, prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old behaviour for 0s: the baseline measured, exit status 0."""
    arguments = ["tune", "--budget", budget, "--variants", "tiny_vae", "--runs", "1", "--rounds", "1"]
    with pytest.raises(SystemExit) as exited:
        main([*arguments, "--prompts", str(prompts), "--quiet"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        f"pytest-sdxl tune: error: argument --budget: budget {budget!r} is not accepted; accepted: more than 0 "
        "seconds and at most 24 hours; give seconds (90 or 90s), minutes (10m) or hours (1h)"
    )


def test_tune_runs_have_the_same_bound_as_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tune", "--runs", "101"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "pytest-sdxl tune: error: argument --runs: '101' is not accepted; accepted: a whole number from 1 to 100"
    )


# Prompts files --------------------------------------------------------------------------------------------------


def latin1_prompts(folder: Path) -> Path:
    path = folder / "prompts-latin1.txt"
    path.write_bytes("a caf\u00e9 at night\n".encode("latin-1"))
    return path


PROMPTS_ACCEPTED = "accepted: a UTF-8 text file of at least 2 prompts, one a line, or default"


def test_a_prompts_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The old behaviour: a UnicodeDecodeError traceback."""
    path = latin1_prompts(tmp_path)
    assert cli_error(["run", "--prompts", str(path), "--quiet"], capsys) == (
        f"pytest-sdxl: error: command line --prompts: prompt file {str(path)!r} is not UTF-8 text "
        f"(byte 0xe9 at offset 5); {PROMPTS_ACCEPTED}"
    )


def test_the_plugin_refuses_a_prompts_file_that_is_not_utf8(pytester: pytest.Pytester) -> None:
    """The old behaviour: INTERNALERROR (exit status 3)."""
    path = latin1_prompts(pytester.path)
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest(*SMALL, f"--sdxl-prompts={path}"))
    assert error == (
        f"ERROR: pytest-sdxl: command line --sdxl-prompts: prompt file {str(path)!r} is not UTF-8 text "
        f"(byte 0xe9 at offset 5); {PROMPTS_ACCEPTED}"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "is a folder"),
        (b"a prompt\x00\n", "holds a NUL byte: it is not text"),
        (b"\n \n", "holds no prompt"),
        (b"only one prompt\n\n", "holds 1 prompt: the first generation takes it and none is left to time"),
    ],
    ids=["folder", "binary", "empty", "one prompt"],
)
def test_a_prompts_file_must_be_text_holding_prompts(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "prompts"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(SettingsError) as raised:
        resolve({}, {"PYTEST_SDXL_PROMPTS": str(path)}, {})
    assert str(raised.value) == (
        f"environment variable PYTEST_SDXL_PROMPTS: prompt file {str(path)!r} {problem}; {PROMPTS_ACCEPTED}"
    )


# Devices --------------------------------------------------------------------------------------------------------

DEVICES_ACCEPTED = "accepted: auto, cpu, cuda, cuda:N, or a list such as cuda:0,cuda:1 for pytest-xdist workers"


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees two CUDA devices (nothing is run on them: the checks refuse before any pipeline is built)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("device", ["cuda:x", "gpu", "cuda:-1", "cuda:0,", "CPU"])
def test_a_malformed_device_is_refused_by_the_plugin_before_any_test(pytester: pytest.Pytester, device: str) -> None:
    """The old behaviour for cuda:x: accepted, then "ERROR at setup" in every sdxl test."""
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest(*SMALL, f"--sdxl-device={device}"))
    assert error == f"ERROR: pytest-sdxl: command line --sdxl-device: {device!r} is not a device; {DEVICES_ACCEPTED}"


def test_a_malformed_device_is_refused_by_the_command_line_saying_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTEST_SDXL_DEVICE", "cuda:x")
    assert cli_error(["run", "--quiet"], capsys) == (
        f"pytest-sdxl: error: environment variable PYTEST_SDXL_DEVICE: 'cuda:x' is not a device; {DEVICES_ACCEPTED}"
    )


def test_a_device_twice_in_the_list_is_refused_before_the_workers_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old behaviour: two xdist workers pinned to one GPU, timing each other's kernels."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(PLAIN_TEST)
    result = pytester.runpytest_subprocess(*SMALL, "-p", "xdist", "-n", "2", "--sdxl-device=cuda:0,cuda:0")
    assert plugin_error(result) == (
        "ERROR: pytest-sdxl: command line --sdxl-device: 'cuda:0,cuda:0' names cuda:0 twice: two pytest-xdist "
        "workers on one GPU would time each other's kernels; accepted: a list of different devices such as "
        "cuda:0,cuda:1"
    )


@given(indices=st.lists(st.integers(0, 63), min_size=2, max_size=8))
def test_a_device_list_is_accepted_exactly_when_its_devices_differ(indices: list[int]) -> None:
    torch = pytest.importorskip("torch")
    value = ",".join(f"cuda:{index}" for index in indices)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "device_count", lambda: 64)
        if len(set(indices)) == len(indices):
            assert resolve({"device": value}, {}, {}).device == value
            return
        with pytest.raises(SettingsError, match=r"names cuda:\d+ twice: two pytest-xdist workers on one GPU"):
            resolve({"device": value}, {}, {})


MISSING = (
    "names {missing} but this machine has 2 CUDA devices (cuda:0 to cuda:1); accepted: auto, cpu, cuda, "
    "cuda:0 to cuda:1, or a list of them for pytest-xdist workers"
)


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(("device", "missing"), [("cuda:2", "cuda:2"), ("cuda:0,cuda:1,cuda:5", "cuda:5")])
def test_a_gpu_this_machine_lacks_is_a_plugin_usage_error(pytester: pytest.Pytester, device: str, missing: str) -> None:
    """The old behaviour: accepted; each variant then skipped, the session ending "nothing measured"."""
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest(*SMALL, f"--sdxl-device={device}"))
    assert error == f"ERROR: pytest-sdxl: command line --sdxl-device: {device!r} " + MISSING.format(missing=missing)


@pytest.mark.usefixtures("two_gpus")
def test_a_gpu_this_machine_lacks_is_a_command_line_usage_error(
    prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old behaviour: exit status 3, every variant skipped after the run had started."""
    arguments = ["run", "--device", "cuda:2", "--variants", "baseline", "--runs", "1", "--prompts", str(prompts)]
    assert cli_error([*arguments, "--quiet"], capsys) == (
        "pytest-sdxl: error: command line --device: 'cuda:2' " + MISSING.format(missing="cuda:2")
    )


def test_the_next_gpu_index_is_refused_on_this_machine(pytester: pytest.Pytester) -> None:
    """No mock: on a GPU machine, cuda:<device count> is a usage error."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: test_a_gpu_this_machine_lacks_is_a_plugin_usage_error stands in")
    count = torch.cuda.device_count()
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest_subprocess(*SMALL, f"--sdxl-device=cuda:{count}"))
    assert f"'cuda:{count}' names cuda:{count} but this machine has {count} CUDA device" in error


def test_a_gpu_named_on_a_machine_without_one_is_left_to_the_skip(pytester: pytest.Pytester) -> None:
    """Without any CUDA device a GPU setting is not a usage error: a suite whose ini names cuda still collects
    on a CPU machine; each sdxl test is skipped with the reason and the session ends "nothing measured"
    (tests/test_plugin_nothing_measured.py, tests/test_cli.py)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    pytester.makeini("[pytest]\nsdxl_device = cuda:1\n")
    pytester.makepyfile(PLAIN_TEST)
    result = pytester.runpytest(*SMALL)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()


# Model sources --------------------------------------------------------------------------------------------------

MODEL_ACCEPTED = "accepted: random:tiny, random:sdxl-turbo, a hub id (name or owner/name) or a folder"
VAE_ACCEPTED = "accepted: random (random weights at the model's architecture), a hub id or a folder"
# A hub name as the hub spells one: letters, digits, "_", "-", "."; never starting or ending with "-" or ".".
HUB_NAMES = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,20}[A-Za-z0-9_])?", fullmatch=True).filter(
    lambda name: ".." not in name and "--" not in name
)


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("/no/such/model", "no folder '/no/such/model' exists here, and it cannot be a hub id"),
        ("./missing-model", "no folder './missing-model' exists here, and it cannot be a hub id"),
        ("models/sdxl/turbo", "no folder 'models/sdxl/turbo' exists here, and it cannot be a hub id"),
        ("random:huge", "'random:huge' is not a random architecture"),
        ("  ", "empty model"),
    ],
    ids=["absolute-path", "relative-path", "three-parts", "unknown-random", "blank"],
)
def test_a_model_that_cannot_be_found_is_one_usage_error_before_any_load(
    model: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old behaviour: accepted, then the same failed load in every variant, exit status 1."""
    assert cli_error(["run", "--quiet", "--model", model], capsys) == (
        f"pytest-sdxl: error: command line --model: {problem}; {MODEL_ACCEPTED}"
    )


def test_a_file_given_as_the_model_is_refused_naming_what_is_wanted(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_error(["run", "--quiet", "--model", str(a_file)], capsys) == (
        f"pytest-sdxl: error: command line --model: {str(a_file)!r} is a file, not the folder save_pretrained "
        f"writes; {MODEL_ACCEPTED}"
    )


def test_the_plugin_refuses_an_unknown_random_model_before_any_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsdxl_model = random:sdxl\n")
    pytester.makepyfile(PLAIN_TEST)
    assert plugin_error(pytester.runpytest(*SMALL)) == (
        f"ERROR: pytest-sdxl: tox.ini key sdxl_model: 'random:sdxl' is not a random architecture; {MODEL_ACCEPTED}"
    )


@given(owner=st.none() | HUB_NAMES, name=HUB_NAMES)
def test_a_hub_id_is_left_to_the_load(owner: str | None, name: str) -> None:
    """Whether a hub id's weights can be had is known only when they load (a cache, a network)."""
    hub_id = name if owner is None else f"{owner}/{name}"
    if Path(hub_id).exists():
        return  # a file or folder of that name in the working folder: a path, not this property's case
    assert resolve({"model": hub_id, "tiny_vae": hub_id, "fp16_vae": hub_id}, {}, {}).model == hub_id


def test_a_folder_is_accepted_as_the_model_and_the_vaes(tmp_path: Path) -> None:
    settings = resolve({"model": str(tmp_path), "tiny_vae": str(tmp_path), "fp16_vae": "random"}, {}, {})
    assert (settings.model, settings.tiny_vae, settings.fp16_vae) == (str(tmp_path), str(tmp_path), "random")


@pytest.mark.parametrize("source", ["random:tiny", "/no/such/vae", ""])
def test_a_replacement_vae_takes_random_a_hub_id_or_a_folder(source: str) -> None:
    """random:<architecture> names a whole pipeline; a replacement VAE's random weights are plain ``random``."""
    expected = rf"^environment variable PYTEST_SDXL_TINY_VAE: .*; {re.escape(VAE_ACCEPTED)}$"
    with pytest.raises(SettingsError, match=expected):
        resolve({}, {"PYTEST_SDXL_TINY_VAE": source}, {})


# Output paths ---------------------------------------------------------------------------------------------------


def results_file(path: Path, variant: str) -> Path:
    run = RunRecord(1, 1.0, 0.3, [0.1, 0.1], 0.1, 0.1, 1.5)
    record = VariantRecord(variant, "exact", "ok", "", [run])
    return save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record]), path)


def output_cases(folder: Path, prompts: Path) -> dict[str, tuple[list[str], str, Path]]:
    """(arguments, flag, path given) of every command that writes, each given a path it cannot use."""
    a_file = folder / "a-file"
    a_file.write_text("")
    base, other = results_file(folder / "base.json", "baseline"), results_file(folder / "other.json", "batch")
    settings = ["--variants", "baseline", "--runs", "1", "--prompts", str(prompts), "--quiet"]
    small_tune = ["--variants", "tiny_vae", "--runs", "1", "--rounds", "1", "--prompts", str(prompts), "--quiet"]
    return {
        "run --report file": (["run", *settings, "--report", str(a_file)], "--report", a_file),
        "run --report unwritable": (["run", *settings, "--report", str(UNWRITABLE)], "--report", UNWRITABLE),
        "run --trace file": (["run", *settings, "--trace", str(a_file)], "--trace", a_file),
        "run --compile-cache in a file": (
            ["run", *settings, "--compile-cache", str(a_file / "compile")],
            "--compile-cache",
            a_file / "compile",
        ),
        "tune --out file": (["tune", *small_tune, "--out", str(a_file)], "--out", a_file),
        "merge --output file": (["merge", str(base), str(other), "--output", str(a_file)], "--output", a_file),
        "report --output file": (["report", str(base), "--output", str(a_file)], "--output", a_file),
        "compare --output folder": (["compare", str(base), str(base), "--output", str(folder)], "--output", folder),
        "overhead --json folder": (
            ["overhead", "--rounds", "1", "--prompts", str(prompts), "--json", str(folder)],
            "--json",
            folder,
        ),
    }


CASES = [
    "run --report file",
    "run --report unwritable",
    "run --trace file",
    "run --compile-cache in a file",
    "tune --out file",
    "merge --output file",
    "report --output file",
    "compare --output folder",
    "overhead --json folder",
]


CACHE_ACCEPTED = "accepted: auto, off, or a folder that exists or can be created, and can be written to"
FILE_ACCEPTED = "accepted: a file path (not a folder) in a folder that exists or can be created, and can be written to"


def expected_problem(case: str, path: Path) -> str:
    """The one line's problem and what is accepted, as every output path's check words it."""
    if "compile-cache" in case or "compile_cache" in case:
        return "compile cache " + expected_problem(case.replace("compile", ""), path).replace(
            FOLDER_ACCEPTED, CACHE_ACCEPTED
        )
    if "unwritable" in case:
        return f"{str(path)!r} cannot be written to ('/proc/self': No such file or directory); {FOLDER_ACCEPTED}"
    if "in a file" in case:
        return f"{str(path)!r} cannot be created: {str(path.parent)!r} is a file; {FOLDER_ACCEPTED}"
    if "folder" in case:
        # compare's output files also take a stream (--summary /dev/stdout), and say so.
        stream = ", or a stream such as /dev/stdout" if case.startswith("compare") else ""
        return f"{str(path)!r} is a folder; {FILE_ACCEPTED}{stream}"
    return f"{str(path)!r} is a file; {FOLDER_ACCEPTED}"


@pytest.mark.skipif(not UNWRITABLE.parent.is_dir(), reason="needs Linux's /proc for a folder root cannot write to")
@pytest.mark.parametrize("case", CASES)
def test_every_output_path_is_checked_before_measuring(
    case: str, tmp_path: Path, prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old behaviour: most measured first, then failed writing with a traceback (the measurement lost)."""
    arguments, flag, path = output_cases(tmp_path, prompts)[case]
    error = cli_error(arguments, capsys)
    assert error == f"pytest-sdxl: error: command line {flag}: {expected_problem(case, path)}"


@pytest.mark.parametrize(
    ("name", "origin"),
    [("report", "command line"), ("trace", "environment"), ("compile_cache", "ini"), ("report", "unwritable")],
)
def test_the_plugin_checks_its_folders_at_configure_time(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, a_file: Path, name: str, origin: str
) -> None:
    """The old behaviour: a plain session passed; an sdxl one lost its measurements or errored at setup."""
    option = name.replace("_", "-")
    arguments: list[str] = []
    given: Path = a_file
    if origin == "command line":
        arguments, where = [f"--sdxl-{option}={a_file}"], f"command line --sdxl-{option}"
    elif origin == "environment":
        monkeypatch.setenv(f"PYTEST_SDXL_{name.upper()}", str(a_file))
        where = f"environment variable PYTEST_SDXL_{name.upper()}"
    elif origin == "ini":
        pytester.makeini(f"[pytest]\nsdxl_{name} = {a_file}\n")
        where = f"tox.ini key sdxl_{name}"
    else:
        if not UNWRITABLE.parent.is_dir():
            pytest.skip("needs Linux's /proc for a folder root cannot write to")
        given = UNWRITABLE
        arguments, where = [f"--sdxl-{option}={given}"], f"command line --sdxl-{option}"
    pytester.makepyfile(PLAIN_TEST)
    error = plugin_error(pytester.runpytest(*SMALL, *arguments))
    problem = expected_problem(f"{name} {'unwritable' if given == UNWRITABLE else 'file'}", given)
    assert error == f"ERROR: pytest-sdxl: {where}: {problem}"


def test_a_folder_that_can_be_created_is_accepted_and_not_created(tmp_path: Path) -> None:
    wanted = tmp_path / "deep" / "report"
    assert writable_folder(str(wanted), "command line --report") == wanted
    assert not (tmp_path / "deep").exists()
    assert writable_file(wanted / "c.md", "command line --output") == wanted / "c.md"
    settings = resolve({"report": str(wanted), "trace": str(tmp_path)}, {}, {})
    assert (settings.report, settings.trace) == (wanted, tmp_path)


# The guide ------------------------------------------------------------------------------------------------------


def test_the_guide_states_the_ranges_the_code_enforces() -> None:
    text = (ROOT / "docs" / "results-schema.md").read_text(encoding="utf-8")
    section = text.split("## What is validated", 1)[1].split("\n## ", 1)[0]
    for low, high in (STEPS_RANGE, RUNS_RANGE):
        assert f"{low} to {high}" in section
    assert f"multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}" in section
    assert "more than 0 and at most 24 hours" in section and BUDGET_RANGE_S == (0.0, 24 * 3600.0)
    for option in ("--report", "--trace", "--compile-cache", "tune --out", "merge --output", "compare --output"):
        assert f"`{option}" in section, option
    assert re.search(r"\| 2 \| 4 \|", section)


def test_a_bad_compile_budget_is_a_usage_error_before_anything_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found only by the first compiled variant, it was recorded as a skip (and a resumed run kept the skip)."""
    monkeypatch.setenv("PYTEST_SDXL_COMPILE_BUDGET", "ten minutes")
    expected = "environment variable PYTEST_SDXL_COMPILE_BUDGET: 'ten minutes' is not accepted; accepted: a positive"
    with pytest.raises(SettingsError, match=expected):
        resolve({}, os.environ, {})
    pytester.makepyfile(test_suite="def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-sdxl: {expected}*"])


SUITE_BENCHMARK_ONLY = ("--pyargs", "pytest_sdxl.suite", "--benchmark-only", "-q")


def test_the_reference_suite_refuses_to_pass_without_the_plugin(tmp_path: Path) -> None:
    """With the plugin disabled its fixtures are unknown, and --benchmark-only skipped the suite's test: the
    session passed with nothing measured."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:sdxl", *SUITE_BENCHMARK_ONLY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "the reference suite measures through the pytest-sdxl plugin, which is not loaded" in done.stderr
