"""The GPU state and image quality in the measurement, the results, the report, ``compare`` and ``tune``.

On the CPU the GPU state is n/a with the reason; a fake reader stands in for NVML to show per-run
summaries and a throttled run; quality budgets gate ``compare`` on real weights only.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
from pathlib import Path

import pytest

from pytest_sdxl.cli.main import main
from pytest_sdxl.machine import gpu_state
from pytest_sdxl.machine.gpu_state import NO_CUDA_DEVICE, GpuStateSample, summarize
from pytest_sdxl.reports.layout import WIDTH
from pytest_sdxl.reports.tables import markdown_report, summary_table
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

STEADY = GpuStateSample(1980.0, 2619.0, 58.0, 420.0, 700.0)
POWER_CAPPED = GpuStateSample(1605.0, 2619.0, 74.0, 699.0, 700.0, ("power cap",))


def run_command(arguments: list[str]) -> tuple[int, str]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main(arguments)
    return status, output.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_cpu_run_records_the_gpu_state_as_na_and_ssim_psnr_per_lossy_variant(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    report = tmp_path / "report"
    arguments = ["run", "--runs", "1", "--prompts", str(prompts), "--report", str(report), "--quiet"]
    status, _ = run_command([*arguments, "--variants", "baseline,tiny_vae", "--compile-cache", "off"])
    assert status == 0
    document = json.loads((report / "results.json").read_text())
    baseline_run, tiny_run = (item["runs"][0] for item in document["variants"])
    assert tiny_run["gpu_state"]["readings"] == 0 and tiny_run["gpu_state"]["not_applicable"] == NO_CUDA_DEVICE
    assert tiny_run["gpu_state"]["throttled"] is False and tiny_run["gpu_state"]["sm_clock_mhz"] is None
    assert (baseline_run["psnr_db"], baseline_run["ssim"]) == ("inf", 1.0)  # the reference itself
    # torchmetrics' figures, stored; random weights: noise against noise, so SSIM may fall below zero.
    assert 0 < tiny_run["psnr_db"] < 100 and -1 <= tiny_run["ssim"] < 1
    assert tiny_run["lpips"] is None and tiny_run["lpips_not_applicable"].startswith("not measured:")
    result = load_results(report / "results.json")
    tiny = result.variants[1].runs[0]
    assert tiny.gpu_state is not None and tiny.gpu_state.describe() == f"n/a: {NO_CUDA_DEVICE}"
    assert tiny.ssim == tiny_run["ssim"] and tiny.lpips is None
    # The host state of every timed round, and each call's own wait beside its time where the kernel keeps one.
    assert tiny.host_state is not None and tiny.host_state.rounds > 0 and tiny.host_state.wall_s > 0
    if tiny.host_state.waited_s is not None:
        assert len(tiny.gen_waited_s) == len(tiny.gen_s) and len(tiny.reference_waited_s) == len(tiny.reference_gen_s)
        assert all(0 <= wait <= time for wait, time in zip(tiny.gen_waited_s, tiny.gen_s, strict=True))
    markdown = (report / "results.md").read_text()
    assert f"- GPU state n/a: {NO_CUDA_DEVICE}" in markdown and "## GPU state" not in markdown
    assert "| SSIM " in markdown and "LPIPS (no LPIPS weights given" in markdown
    assert "PSNR, SSIM and LPIPS of tiny_vae: lossy on random weights" in markdown


class FakeReader:
    """Stands in for NVML: hands out the given readings, one per call."""

    def __init__(self, readings: list[GpuStateSample]) -> None:
        self.readings = list(readings)
        self.not_applicable = ""

    def sample(self) -> GpuStateSample | None:
        return self.readings.pop(0)


class CountingPipeline:
    """What the timed loop calls on the CPU: each call only counts itself."""

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.calls = 0
        self.id = "baseline"

    def generate(self, prompts: list[str], seeds: list[int], check: bool = True) -> None:
        self.calls += 1


def test_a_reading_after_every_round_gives_each_run_its_summary_and_the_report_marks_the_throttled_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_sdxl.measure.core import MeasuringOptions, timed_rounds
    from pytest_sdxl.measure.records import SharedFigures, run_records

    reader = FakeReader([STEADY, STEADY, POWER_CAPPED, POWER_CAPPED])
    monkeypatch.setattr(gpu_state, "open_gpu_state", lambda device: reader)
    pipeline = CountingPipeline()
    groups = [(["a"], [1]), (["b"], [2])]
    timed, _ = timed_rounds(pipeline, groups, None, [], 4, MeasuringOptions(runs=2))  # type: ignore[arg-type]
    assert pipeline.calls == 8 and not reader.readings  # one reading after each of the four rounds
    runs = run_records(timed, 2, [1, 1], [], SharedFigures({}, None, None, 0))
    first, second = (run.gpu_state for run in runs)
    assert first is not None and second is not None
    assert (first.readings, first.throttled, first.sm_clock_mhz.mean) == (2, False, 1980.0)  # type: ignore[union-attr]
    assert (second.throttled_readings, second.throttle_reasons) == (2, ("power cap",))
    result = ResultSet(
        settings={"model": "stabilityai/sdxl-turbo", "resolved_device": "cuda:0", "prompts": ["a"] * 3},
        variants=[VariantRecord("baseline", "exact", runs=runs)],
    )
    notes = summary_table(result)
    assert "- THROTTLED (GPU state below): baseline run 2 (power cap)" in notes
    report = markdown_report(result)
    section = report.split("## GPU state", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| baseline")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2"]
    assert rows[0].rstrip(" |").endswith("no") and "| 1980 " in rows[0] and "| 420 (700) " in rows[0]
    assert "THROTTLED: power cap (2/2)" in rows[1] and "| 1605 " in rows[1] and "| 74 " in rows[1]
    assert max(len(line) for line in report.splitlines() if line.startswith("|")) <= WIDTH


def side(path: Path, model: str, slowdown: float, state: GpuStateSample, psnr: float, ssim: float, seed: int) -> Path:
    """A results file: baseline and tiny_vae (lossy), three runs each, every run read at ``state``."""
    generator = random.Random(seed)

    def run(number: int, own_images: bool) -> RunRecord:
        gen = [0.1 * slowdown * (1 + generator.gauss(0, 0.01)) for _ in range(12)]
        record = RunRecord(number, 4.0, 0.3, gen, sum(gen) / 12, sorted(gen)[6], 4.3 + sum(gen))
        record.psnr_db, record.ssim = (math.inf, 1.0) if own_images else (psnr, ssim)
        record.lpips_not_applicable = "not measured: no weights"
        record.gpu_state = summarize([state] * 4)
        return record

    variants = [
        VariantRecord("baseline", "exact", runs=[run(number, True) for number in (1, 2, 3)]),
        VariantRecord("tiny_vae", "lossy", runs=[run(number, False) for number in (1, 2, 3)]),
    ]
    return save_results(ResultSet(settings={"model": model, "size": 512}, variants=variants), path)


def test_compare_says_the_clocks_and_the_throttling_before_its_verdict(tmp_path: Path) -> None:
    base = side(tmp_path / "base.json", "random:sdxl-turbo", 1.0, STEADY, 20.0, 0.5, 1)
    head = side(tmp_path / "head.json", "random:sdxl-turbo", 1.0, POWER_CAPPED, 20.0, 0.5, 2)
    status, output = run_command(["compare", str(base), str(head)])
    assert status == 0  # the same speed: the state qualifies a verdict, it is no verdict of its own
    lines = output.splitlines()
    verdict = next(index for index, line in enumerate(lines) if line.startswith(("no regression", "regressed")))
    clocks = next(index for index, line in enumerate(lines) if line.startswith("The SM clock differs"))
    throttled = next(index for index, line in enumerate(lines) if line.startswith("The head was throttled"))
    assert clocks < verdict and throttled < verdict
    assert "base ran at 1980 MHz on average, the head at 1605 MHz, 18.9% lower" in lines[clocks]
    assert "GPU state of the head: SM 1605 MHz, memory 2619 MHz, up to 74 °C" in output
    # Quality of the lossy variant, said on random weights without judging it.
    assert "- tiny_vae (lossy): PSNR 20.0 dB, SSIM 0.5000, LPIPS n/a (base: PSNR 20.0 dB" in output
    assert "noise against noise, so their quality is not meaningful" in output


def test_compare_writes_the_markdown_summary_with_the_table_and_the_gpu_state(tmp_path: Path) -> None:
    base = side(tmp_path / "base.json", "random:sdxl-turbo", 1.0, STEADY, 20.0, 0.5, 1)
    head = side(tmp_path / "head.json", "random:sdxl-turbo", 1.0, POWER_CAPPED, 20.0, 0.5, 2)
    summary = tmp_path / "summary" / "comparison.md"
    status, output = run_command(["compare", str(base), str(head), "--format", "markdown", "--summary", str(summary)])
    written = summary.read_text()
    assert status == 0 and output == written  # stdout holds the markdown alone
    assert written.startswith("### Performance comparison\n\n**No regression.**")
    assert "**GPU state**" in written and "- head: SM 1605 MHz" in written and "throttled" in written
    assert "| variant | signal | base | head | ratio head/base (95% CI) | verdict |" in written
    assert "**Image quality**" in written and "`tiny_vae`" not in written.split("**Image quality**")[0].split("|")[0]
    assert len(written.encode()) < 30_000
    # --output writes what is printed, the markdown under --format markdown (it wrote nothing before).
    output_file = tmp_path / "compare.md"
    arguments = ["compare", str(base), str(head), "--format", "markdown", "--output", str(output_file)]
    assert run_command(arguments)[0] == 0 and output_file.read_text() == written


@pytest.mark.parametrize(
    ("model", "status", "said"),
    [
        ("random:sdxl-turbo", 0, "lossy on random weights: its images are noise against noise"),
        (
            "stabilityai/sdxl-turbo",
            1,
            "over the quality budget: tiny_vae (PSNR 27.0 dB is below the 30 dB floor (--min-psnr); "
            "SSIM 0.9000 is below the 0.95 floor (--min-ssim))",
        ),
    ],
)
def test_a_quality_budget_fails_compare_on_real_weights_only(
    tmp_path: Path, model: str, status: int, said: str
) -> None:
    base = side(tmp_path / "base.json", model, 1.0, STEADY, 28.0, 0.92, 1)
    head = side(tmp_path / "head.json", model, 1.0, STEADY, 27.0, 0.9, 2)
    budget = ["--min-psnr", "30", "--min-ssim", "0.95"]
    got, output = run_command(["compare", str(base), str(head), *budget])
    assert got == status and said in output
    assert "regressed (" not in output  # the speed is the same: only the quality decides
    summary = tmp_path / "summary.md"
    got, _ = run_command(["compare", str(base), str(head), *budget, "--format", "markdown", "--summary", str(summary)])
    assert got == status
    first = summary.read_text().split("\n\n")[1]
    assert first == ("**Over the quality budget:** `tiny_vae`." if status else "**No regression.**")


def test_a_bad_budget_is_a_usage_error_saying_what_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "a.json", "b.json", "--min-ssim", "1.5"])
    assert exit_info.value.code == 2
    assert "--min-ssim '1.5' is not accepted; give a similarity up to 1" in capsys.readouterr().err
