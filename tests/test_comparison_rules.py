"""compare's per-signal rules on hand-built result sets: exact launches, kernel time, the gate, Holm, kernel diffs."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from pytest_sdxl.analysis.comparison import Rules, compare_results, compare_variant
from pytest_sdxl.analysis.stats import holm
from pytest_sdxl.cli.main import main
from pytest_sdxl.reports.comparison import comparison_table
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results, save_results

KERNEL_TABLE = {"gemm": [10.0, 5000.0], "softmax": [5.0, 1000.0]}


def measured_variant(
    seed: int,
    slowdown: float = 1.0,
    reference_slowdown: float = 1.0,
    kernel_slowdown: float = 1.0,
    launches: float = 100.0,
    kernel_table: dict[str, list[float]] | None = None,
    runs: int = 3,
    noise_share: float = 0.02,
) -> VariantRecord:
    """``batch`` measured on a GPU: wall samples beside a one-by-one reference, kernel time, launches."""
    noise = random.Random(seed)

    def run(number: int) -> RunRecord:
        gen_s = [0.1 * slowdown * (1 + noise.gauss(0, noise_share)) for _ in range(10)]
        load_s = 4.0 * (1 + noise.gauss(0, 0.01))
        record = RunRecord(number, load_s, 0.3, gen_s, sum(gen_s) / 10, sorted(gen_s)[5], load_s + 0.3 + sum(gen_s))
        record.reference = "baseline"
        record.reference_gen_s = [0.2 * reference_slowdown * (1 + noise.gauss(0, noise_share)) for _ in range(20)]
        record.device = DeviceSignals(
            kernel_ms=[10.0 * kernel_slowdown * (1 + noise.gauss(0, 0.0005)) for _ in range(3)],
            kernels=[launches] * 3,
            kernel_table={group: list(pair) for group, pair in (kernel_table or KERNEL_TABLE).items()},
        )
        return record

    return VariantRecord("batch", "exact", "ok", "", [run(number) for number in range(1, runs + 1)])


def verdicts(base: VariantRecord, new: VariantRecord, rules: Rules | None = None) -> dict[str, str]:
    comparisons = compare_results(ResultSet(variants=[base]), ResultSet(variants=[new]), rules)
    return {item.metric: item.verdict for item in comparisons}


def saved(path: Path, record: VariantRecord) -> str:
    return str(save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record]), path))


@pytest.mark.parametrize(("launches", "verdict"), [(101.0, "regressed"), (99.0, "changed"), (100.0, "unchanged")])
def test_kernel_launches_are_judged_exactly(launches: float, verdict: str) -> None:
    comparisons = compare_results(
        ResultSet(variants=[measured_variant(1)]), ResultSet(variants=[measured_variant(2, launches=launches)])
    )
    launch_verdict = next(item for item in comparisons if item.metric == "kernels")
    assert launch_verdict.verdict == verdict and math.isnan(launch_verdict.threshold)  # no threshold
    assert launch_verdict.regressed == (verdict == "regressed")  # fewer launches is news, not a failure


@pytest.mark.parametrize(
    ("kernel_slowdown", "verdict"),
    [(1.02, "regressed"), (1.012, "regressed"), (1.008, "unchanged"), (1.0, "unchanged")],
)
def test_kernel_time_is_flagged_past_half_its_own_two_percent_threshold(kernel_slowdown: float, verdict: str) -> None:
    comparisons = compare_results(
        ResultSet(variants=[measured_variant(1)]),
        ResultSet(variants=[measured_variant(2, kernel_slowdown=kernel_slowdown)]),
    )
    kernel_time = next(item for item in comparisons if item.metric == "kernel_ms")
    # The changes are significant on kernel time this steady: the bound (1 %, half the threshold) alone
    # tells them apart, so a slowdown of exactly the threshold is caught, not left to chance.
    if kernel_slowdown > 1:
        assert kernel_time.p_value < 0.05 and kernel_time.ratio == pytest.approx(kernel_slowdown, rel=0.002)
    assert (kernel_time.verdict, kernel_time.threshold) == (verdict, 0.02)


def test_the_wall_ratio_is_gated_and_a_slower_machine_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The variant and its reference 20 % slower together: the machine moved, the ratio did not.
    base = saved(tmp_path / "base.json", measured_variant(1))
    slower_machine = saved(tmp_path / "new.json", measured_variant(2, slowdown=1.2, reference_slowdown=1.2))
    assert main(["compare", base, slower_machine]) == 0
    output = capsys.readouterr().out
    assert "regressed, not gated" in next(line for line in output.splitlines() if "| avg_gen_s" in line)
    assert "unchanged" in next(line for line in output.splitlines() if "| wall_ratio" in line)
    assert main(["compare", base, slower_machine, "--gate", "avg_gen_s"]) == 1
    assert "regressed (gate avg_gen_s" in capsys.readouterr().out


def test_a_slower_variant_beside_an_unchanged_reference_fails_the_gate() -> None:
    comparisons = compare_results(
        ResultSet(variants=[measured_variant(1)]), ResultSet(variants=[measured_variant(2, slowdown=1.2)])
    )
    wall_ratio = next(item for item in comparisons if item.metric == "wall_ratio")
    assert wall_ratio.gated and wall_ratio.regressed and wall_ratio.ratio == pytest.approx(1.2, rel=0.05)


@pytest.mark.parametrize(("slowdown", "verdict"), [(1.05, "regressed"), (1.01, "unchanged")])
def test_a_slowdown_of_the_wall_threshold_is_caught_and_one_well_inside_is_not(slowdown: float, verdict: str) -> None:
    # Per-run ratios of minima steady to under 1 %, as on a quiet GPU (method page, "Minima, not medians").
    comparisons = compare_results(
        ResultSet(variants=[measured_variant(1, noise_share=0.01)]),
        ResultSet(variants=[measured_variant(2, slowdown=slowdown, noise_share=0.01)]),
    )
    wall_ratio = next(item for item in comparisons if item.metric == "wall_ratio")
    assert (wall_ratio.verdict, wall_ratio.threshold) == (verdict, 0.05)


def test_one_run_a_side_is_insufficient_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = measured_variant(1, runs=1), measured_variant(2, slowdown=1.5, kernel_slowdown=1.5, runs=1)
    found = verdicts(base, new)
    for signal in ("wall_ratio", "avg_gen_s", "kernel_ms", "load_s"):
        assert found[signal] == "insufficient data", signal
    assert main(["compare", saved(tmp_path / "base.json", base), saved(tmp_path / "new.json", new)]) == 0
    assert "1 run on the base side and 1 run on the new side" in capsys.readouterr().out


def test_every_p_value_shown_is_holm_adjusted_over_the_whole_report() -> None:
    base, new = measured_variant(1), measured_variant(2, slowdown=1.03, kernel_slowdown=1.004)
    raw = [item for item in compare_variant(base, new, Rules()) if item.verdict == "pending"]
    decided = {item.metric: item for item in compare_results(ResultSet(variants=[base]), ResultSet(variants=[new]))}
    expected = {}
    for gated in (True, False):  # the gate's comparisons are one family, the informing ones another
        family = [item for item in raw if item.gated == gated]
        expected.update(zip((item.metric for item in family), holm([item.p_value for item in family]), strict=True))
    assert len(raw) >= 4 and {item.gated for item in raw} == {True, False}
    for item in raw:
        shown, adjusted = decided[item.metric], expected[item.metric]
        assert shown.p_value == pytest.approx(adjusted) and shown.p_value >= item.p_value
        assert shown.test.endswith("Holm-adjusted")
        assert f" {shown.p_value:.3g} " in comparison_table([shown])
    assert any(decided[item.metric].p_value > item.p_value for item in raw)


def test_compare_shows_the_kernels_behind_a_kernel_time_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slower_gemm = {"gemm": [10.0, 5300.0], "softmax": [5.0, 1000.0]}
    base = saved(tmp_path / "base.json", measured_variant(1))
    new = saved(tmp_path / "new.json", measured_variant(2, kernel_slowdown=1.03, kernel_table=slower_gemm))
    assert main(["compare", base, new]) == 1
    output = capsys.readouterr().out
    diff = output.split("### kernel diff: batch (per image, base -> new)", 1)[1]
    assert "`gemm`" in diff and "5000.0 -> 5300.0" in diff and "`softmax`" not in diff


def test_compare_shows_no_kernel_diff_when_nothing_moved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = saved(tmp_path / "base.json", measured_variant(1))
    assert main(["compare", base, base]) == 0
    assert "kernel diff" not in capsys.readouterr().out


def version_one_document(slowdown: float) -> dict[str, object]:
    """A results file as schema version 1 wrote it: no device signals, no reference, no warm-up count."""
    noise = random.Random(7)
    runs = []
    for number in (1, 2, 3):
        gen_s = [0.1 * slowdown * (1 + noise.gauss(0, 0.02)) for _ in range(4)]
        runs.append(
            {
                "run": number,
                "load_s": 4.0,
                "init_gen_s": 0.3,
                "gen_s": gen_s,
                "avg_gen_s": sum(gen_s) / 4,
                "median_gen_s": sorted(gen_s)[2],
                "total_s": 4.3 + sum(gen_s),
                "stages": {"text_encode_ms": 18.0, "unet_ms": 55.0, "vae_decode_ms": 30.0, "other_ms": 20.0},
                "peak_gpu_mem_gb": 10.4,
                "psnr_db": "inf",
            }
        )
    variant = {"variant": "batch", "kind": "exact", "status": "ok", "reason": "", "runs": runs}
    return {"schema": "pytest-sdxl-results", "schema_version": 1, "settings": {}, "machine": {}, "variants": [variant]}


def test_a_version_one_file_still_loads_and_compares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(version_one_document(1.0)))
    run = load_results(old).variants[0].runs[0]
    assert (run.device, run.reference, run.reference_gen_s, run.warmup_calls) == (None, "", [], 0)
    assert main(["compare", str(old), str(old)]) == 0
    output = capsys.readouterr().out
    assert "| avg_gen_s" in output and "| load_s" in output
    assert "| wall_ratio" not in output and "| kernel_ms" not in output  # nothing on either side to compare
    # Against a version 2 file, the signals version 1 lacks are missing, not regressed.
    assert main(["compare", str(old), saved(tmp_path / "v2.json", measured_variant(2))]) == 0
    output = capsys.readouterr().out
    wall_ratio = next(line for line in output.splitlines() if "| wall_ratio" in line)
    # The verdict's note is numbered in the cell and written once below the table.
    note = re.search(r"missing \[(\d+)\]", wall_ratio)
    assert note and f"[{note.group(1)}] no samples on the base side" in output


def test_the_comparison_table_fits_120_columns_and_writes_each_note_once() -> None:
    from pytest_sdxl.analysis.comparison import MetricComparison
    from pytest_sdxl.reports.layout import WIDTH

    why = "1 run on the base side and 1 run on the new side: at least 2 runs a side are needed to estimate the noise"
    rows = [
        MetricComparison(
            "tiny_vae+cuda_graph+cached_embeds",
            metric,
            "insufficient data",
            ratio=1.0,
            test="host-adjusted: log variant min on log reference min, slope 0.75 fitted, 3 vs 3 blocks",
            note=why,
            threshold=0.05,
        )
        for metric in ("wall_ratio", "avg_gen_s", "load_s")
    ]
    table = comparison_table(rows)
    assert max(len(line) for line in table.splitlines()) <= WIDTH
    assert table.count("insufficient data [1]") == 3
    # The test and the note, written once under the table.
    assert table.count("[1] host-adjusted: log variant min on log reference min, slope 0.75 fitted") == 1
    assert " ".join(line.strip() for line in table.splitlines()).count(why) == 1
