"""The command line end to end on random:tiny: run, report, compare, overhead and bad input."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.cli.main import build_parser, main
from pytest_sdxl.options import OPTIONS
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One `run` over three variants (one of them skipped on a CPU); its report folder and output."""
    folder = tmp_path_factory.mktemp("cli")
    prompt_file = folder / "prompts.txt"
    prompt_file.write_text("a red cube\na blue sphere\n")
    report = folder / "report"
    arguments = ["run", "--runs", "2", "--prompts", str(prompt_file), "--report", str(report), "--quiet"]
    arguments += ["--trace", str(folder / "traces")]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main([*arguments, "--variants", "baseline,tiny_vae+batch,cpu_offload"])
    assert status == 0
    return report, output.getvalue()


@pytest.mark.slow
def test_run_prints_the_tables_and_writes_the_files(measured: tuple[Path, str]) -> None:
    report, output = measured
    assert sorted(path.name for path in report.iterdir()) == [
        "results.json",
        "results.json.lock",
        "results.md",
        "results.png",
    ]
    assert re.search(r"^\| Metric +\| Run 1 +\| Run 2 +\|$", output, re.MULTILINE), output
    assert "| Avg Gen Time  |" in output
    assert "skipped: cpu_offload needs a CUDA GPU" in output
    result = load_results(report / "results.json")
    assert [record.variant for record in result.variants] == ["baseline", "tiny_vae+batch", "cpu_offload"]
    assert [len(record.runs) for record in result.variants] == [2, 2, 0]
    assert result.settings["prompts"] == ["a red cube", "a blue sphere"]


@pytest.mark.slow
def test_run_keeps_a_chrome_trace_of_one_generation_per_variant(measured: tuple[Path, str]) -> None:
    report, _ = measured
    traces = report.parent / "traces"
    assert sorted(path.name for path in traces.iterdir()) == ["baseline.json", "tiny_vae+batch.json"]
    events = json.loads((traces / "tiny_vae+batch.json").read_text())["traceEvents"]
    names = {event.get("name") for event in events if event.get("cat") == "user_annotation"}
    assert {"sdxl:call#0", "sdxl:unet", "sdxl:vae_decode"} <= names and "sdxl:call#1" not in names


@pytest.mark.slow
def test_report_writes_markdown_and_chart_again(measured: tuple[Path, str], tmp_path: Path) -> None:
    report, _ = measured
    assert main(["report", str(report / "results.json"), "--output", str(tmp_path / "again")]) == 0
    assert sorted(path.name for path in (tmp_path / "again").iterdir()) == ["results.md", "results.png"]
    assert (tmp_path / "again" / "results.md").read_text() == (report / "results.md").read_text()


@pytest.mark.slow
def test_report_beside_its_json_leaves_the_json_alone(measured: tuple[Path, str]) -> None:
    report, _ = measured
    before = (report / "results.json").stat().st_mtime_ns
    assert main(["report", str(report / "results.json")]) == 0
    assert (report / "results.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_an_environment_variable_sets_an_option(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTEST_SDXL_RUNS", "1")
    monkeypatch.setenv("PYTEST_SDXL_VARIANTS", "vae_slicing")
    assert main(["run", "--prompts", str(prompts), "--report", str(tmp_path), "--quiet"]) == 0
    result = load_results(tmp_path / "results.json")
    assert [(record.variant, len(record.runs)) for record in result.variants] == [("vae_slicing", 1)]


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--runs", "0"], {}, "command line --runs: 0 must be at least 1"),
        (["--variants", "tiny_vae+upcast_vae"], {}, "impossible combination: tiny_vae and upcast_vae"),
        (["--variants", "tiny_vea"], {}, "Did you mean 'tiny_vae'?"),
        ([], {"PYTEST_SDXL_SIZE": "100"}, "environment variable PYTEST_SDXL_SIZE: 100 must be a multiple of 8"),
        (["--prompts", "/no/such/file"], {}, "prompt file '/no/such/file' does not exist"),
        (["--variants", ""], {}, "command line --variants: empty list of variants; accepted: auto, all, or a comma"),
        ([], {"PYTEST_SDXL_VARIANTS": ""}, "environment variable PYTEST_SDXL_VARIANTS: empty list of variants"),
    ],
)
def test_bad_options_are_usage_errors_that_say_what_is_accepted(
    arguments: list[str],
    environment: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--quiet", *arguments]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the variants would run")


@pytest.mark.usefixtures("without_cuda")
@pytest.mark.parametrize(
    ("arguments", "reasons"),
    [
        (["--variants", "cpu_offload"], ["- cpu_offload: cpu_offload needs a CUDA GPU (device here: cpu)"]),
        (
            ["--device", "cuda:7", "--variants", "baseline,tiny_vae"],
            [
                f"- {variant}: device 'cuda:7' was asked for but no CUDA device is available here"
                for variant in ("baseline", "tiny_vae")
            ],
        ),
    ],
    ids=["variant-needs-a-gpu", "no-such-device"],
)
def test_a_run_that_measured_nothing_exits_3_saying_why(
    arguments: list[str], reasons: list[str], prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--quiet", "--runs", "1", "--prompts", str(prompts), *arguments]) == 3
    errors = capsys.readouterr().err.splitlines()
    assert "pytest-sdxl: nothing was measured: every variant was skipped" in errors
    assert errors[-len(reasons) :] == reasons


@pytest.mark.slow
def test_an_interrupted_run_writes_what_it_measured_marked_partial(
    prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C, or `timeout --signal=INT` around a GPU lane, after the first variant: exit 130, nothing lost."""
    from pytest_sdxl.measure import protocol

    measure = protocol.measure_variant
    saved_mid_run: list[dict[str, object]] = []

    def interrupted_at_the_second(settings: Any, composition: Any, *rest: Any) -> Any:
        if composition.id != "baseline":
            saved_mid_run.append(json.loads((tmp_path / "report" / "results.json").read_text()))
            raise KeyboardInterrupt
        return measure(settings, composition, *rest)

    monkeypatch.setattr(protocol, "measure_variant", interrupted_at_the_second)
    arguments = ["run", "--quiet", "--runs", "1", "--prompts", str(prompts), "--report", str(tmp_path / "report")]
    assert main([*arguments, "--variants", "baseline,tiny_vae,cached_embeds", "--compile-cache", "off"]) == 130
    assert saved_mid_run[0]["partial"] == "running"
    assert saved_mid_run[0]["not_measured"] == ["tiny_vae", "cached_embeds"]
    written = load_results(tmp_path / "report" / "results.json")
    assert [record.variant for record in written.variants] == ["baseline"] and written.variants[0].runs
    assert (written.partial, written.not_measured) == ("interrupted", ["tiny_vae", "cached_embeds"])
    assert "interrupted before: tiny_vae, cached_embeds" in (tmp_path / "report" / "results.md").read_text()
    assert "interrupted; not measured: tiny_vae, cached_embeds" in capsys.readouterr().err


def test_run_options_are_the_plugins_without_the_prefix() -> None:
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    for option in OPTIONS:
        assert option.flag in run_help and option.environment_variable in run_help
    assert "--sdxl-" not in run_help


def synthetic_results(path: Path, slowdown: float, seed: int) -> Path:
    generator = random.Random(seed)

    def run(number: int) -> RunRecord:
        gen = [0.1 * slowdown * (1 + generator.gauss(0, 0.02)) for _ in range(4)]
        load = 4.0 * (1 + generator.gauss(0, 0.01))
        record = RunRecord(number, load, 0.3, gen, sum(gen) / 4, sorted(gen)[2], load + 0.3 + sum(gen))
        # The one-by-one reference beside the batch, untouched by the slowdown.
        record.reference = "baseline"
        record.reference_gen_s = [0.2 * (1 + generator.gauss(0, 0.02)) for _ in range(16)]
        return record

    record = VariantRecord("batch", "exact", "ok", "", [run(number) for number in (1, 2, 3)])
    return save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record]), path)


def test_compare_exits_one_on_a_twenty_percent_slowdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    slower = synthetic_results(tmp_path / "new.json", 1.2, seed=2)
    assert main(["compare", str(base), str(slower), "--threshold", "5%", "--output", str(tmp_path / "c.md")]) == 1
    output = capsys.readouterr().out
    assert "REGRESSED" in output and "regressed (gate wall_ratio," in output and "batch wall_ratio" in output
    assert "| batch   | wall_ratio" in (tmp_path / "c.md").read_text()
    # The wall ratio's verdict notes its statistic: the host-adjusted fit over the runs (no blocks in these files).
    wall_row = next(line for line in output.splitlines() if "| wall_ratio" in line)
    # (a star too: both files are one process a side, which the comparison says it cannot judge)
    note = re.search(r"REGRESSED \*? ?\[(\d+)\]", wall_row)
    assert note is not None, wall_row
    explained = next(line for line in output.splitlines() if line.startswith(f"[{note.group(1)}] "))
    assert "host-adjusted: log variant min on log reference min" in explained and "3 vs 3 blocks" in explained


def test_compare_passes_an_identical_rerun_through_the_console_entry(tmp_path: Path) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_sdxl", "compare", str(base), str(base)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "no regression (gate wall_ratio,kernel_ms,kernels,peak_gpu_mem_gb: wall 5%" in done.stdout
    assert "1.000" in done.stdout


def test_compare_refuses_a_bad_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(base), str(base), "--threshold", "lots"])
    assert exit_info.value.code == 2
    assert "percentage like 5%" in capsys.readouterr().err


def test_report_of_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "does not exist; give a results.json written by run, or the --report folder holding one" in (
        capsys.readouterr().err
    )
    assert main(["report", str(tmp_path)]) == 2
    assert f"{str(tmp_path)!r} is a folder without a results.json" in capsys.readouterr().err


def test_compare_and_report_take_the_report_folders_run_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--report DIR`` writes DIR/results.json: the folder names it as well as the file does."""
    base = synthetic_results(tmp_path / "base" / "results.json", 1.0, seed=1)
    new = synthetic_results(tmp_path / "new" / "results.json", 1.3, seed=2)
    assert main(["compare", str(base), str(new)]) == 1
    by_file = capsys.readouterr().out
    assert main(["compare", str(base.parent), str(new.parent)]) == 1
    assert capsys.readouterr().out == by_file
    assert main(["report", str(new.parent)]) == 0
    assert (new.parent / "results.md").is_file()


def test_overhead_prints_the_ratios(prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "overhead.json"
    assert main(["overhead", "--rounds", "2", "--prompts", str(prompts), "--json", str(out)]) == 0
    assert "core/raw:" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert set(data["ratios"]) == {"core_over_raw"}
    assert all(len(samples) == 2 for samples in data["samples_ms"].values())


def test_compare_gates_only_on_the_chosen_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = synthetic_results(tmp_path / "base.json", 1.0, seed=1)
    slower = synthetic_results(tmp_path / "new.json", 1.2, seed=2)  # slower generations, same load time
    assert main(["compare", str(base), str(slower), "--metrics", "load_s"]) == 0
    output = capsys.readouterr().out
    assert "load_s" in output and "avg_gen_s" not in output


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(found.choices)


def test_each_command_lives_in_a_module_of_its_name() -> None:
    commands = subcommands(build_parser())
    assert set(commands) == {"variants", "run", "report", "merge", "compare", "power", "overhead", "tune", "asv", "ab"}
    commands["asv"] = subcommands(commands["asv"])["init"]
    for name, parser in commands.items():
        assert parser.get_default("handler").__module__ == f"pytest_sdxl.cli.{name}", name


def test_variants_verbose_lists_needs_and_conflicts(capsys: pytest.CaptureFixture[str]) -> None:
    """The plain listing points at ``--verbose``; that option exists and adds each variant's needs and conflicts."""
    assert main(["variants"]) == 0
    plain = capsys.readouterr().out
    assert "pytest-sdxl variants --verbose" in plain and "conflicts with" not in plain
    assert main(["variants", "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert "    conflicts with: fp16_vae, upcast_vae" in verbose  # tiny_vae's, declared on the other side
    assert "    needs: float16/bfloat16" in verbose  # upcast_vae's


def test_output_closed_by_its_reader_ends_without_a_traceback() -> None:
    """``pytest-sdxl variants | head -1``: a reader that leaves early ends the command quietly, with 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write meets a closed pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_sdxl", "variants", "--verbose"], stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_version_and_help_need_no_repository() -> None:
    from pytest_sdxl import __version__

    version = subprocess.run([sys.executable, "-m", "pytest_sdxl", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"pytest-sdxl {__version__}"
    helped = subprocess.run([sys.executable, "-m", "pytest_sdxl", "--help"], capture_output=True, text=True)
    assert "the user guide" in helped.stdout and "README" not in helped.stdout


def asv_configuration(folder: Path) -> dict[str, Any]:
    """The asv.conf.json written there, read the way asv reads it (comments allowed)."""
    from asv.config import Config

    loaded: dict[str, Any] = vars(Config.load(str(folder / "asv.conf.json")))
    return loaded


def test_asv_init_writes_a_configuration_and_the_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_sdxl import __version__

    monkeypatch.chdir(tmp_path)
    assert main(["asv", "init"]) == 0
    assert "written: asv.conf.json, benchmarks/__init__.py, benchmarks/bench_sdxl.py" in capsys.readouterr().out
    conf = asv_configuration(tmp_path)
    assert conf["benchmark_dir"] == "benchmarks" and conf["repo"] == "." and conf["project"] == tmp_path.name
    assert (conf["results_dir"], conf["html_dir"], conf["env_dir"]) == (".asv/results", ".asv/html", ".asv/env")
    assert conf["matrix"]["req"] == {"pytest-sdxl": [__version__], "torch": [""]}
    # No pyproject.toml here: nothing of the folder is built, the matrix's packages are timed.
    assert conf["build_command"] == conf["install_command"] == conf["uninstall_command"] == []
    listed = subprocess.run(
        [sys.executable, "-c", "import benchmarks.bench_sdxl as suite; print(sorted(vars(suite)))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("Generation", "BatchGeneration", "ProtocolMetrics", "BatchOverOneByOne", "VariantOverBaseline"):
        assert f"'{name}'" in listed


def test_asv_init_replaces_nothing_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("# mine\n")
    assert main(["asv", "init"]) == 2
    error = capsys.readouterr().err
    assert "asv init would replace benchmarks/__init__.py" in error and "--force" in error
    assert (tmp_path / "benchmarks" / "__init__.py").read_text() == "# mine\n"
    assert not (tmp_path / "asv.conf.json").exists()
    # A Python package is built and installed at each commit once --force writes the files again.
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    assert main(["asv", "init", "--force"]) == 0
    conf = asv_configuration(tmp_path)
    assert conf["build_command"] and conf["install_command"]
    assert "{wheel_file}" in conf["install_command"][0]
