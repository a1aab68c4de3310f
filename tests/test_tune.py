"""The tune search: its rules on a fake measuring function, its parsers, and the command end to end on random:tiny."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.analysis.quality import QualityBudget, parse_limit
from pytest_sdxl.cli.main import main
from pytest_sdxl.errors import SettingsError, VariantSpecError
from pytest_sdxl.tune.candidates import (
    FAILED,
    OK,
    RANDOM_WEIGHTS_NOTE,
    REJECTED,
    SKIPPED,
    THROUGHPUT,
    Candidate,
    Measurement,
    TuneResult,
)
from pytest_sdxl.tune.options import (
    TuneOptions,
    parse_batch_sizes,
    parse_budget,
    parse_candidates,
)
from pytest_sdxl.tune.report import choices, ranked_table, tune_markdown
from pytest_sdxl.tune.search import search
from pytest_sdxl.variants.registry import REGISTRY, Composition, parse

BASELINE_MS = 100.0
# ms per image of a composition: the baseline's times each part's factor (fake, deterministic).
FACTORS = {
    "cached_embeds": 0.8,
    "tiny_vae": 0.7,
    "fp16_vae": 0.9,
    "upcast_vae": 1.1,
    "bf16": 0.85,
    "channels_last": 0.99,
    "vae_slicing": 1.05,
    "batch": 1.0,
}


class FakeMeasure:
    """Measures by formula and logs every (composition, batch size) it was asked for."""

    def __init__(self, psnr: dict[str, float] | None = None, failing: tuple[str, ...] = ()) -> None:
        self.log: list[tuple[str, int]] = []
        self.psnr = psnr or {}
        self.failing = failing

    def expected_ms(self, composition: Composition, batch_size: int = 1) -> float:
        ms = BASELINE_MS * math.prod(FACTORS[name] for name in composition.names)
        # A bigger batch amortizes the per-call overhead.
        return ms * (0.5 + 0.5 / batch_size) if composition.is_batch else ms

    def __call__(self, composition: Composition, batch_size: int) -> Measurement:
        self.log.append((composition.id, batch_size))
        if composition.id in self.failing:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        ms = self.expected_ms(composition, batch_size)
        psnr = self.psnr.get(composition.id, math.inf if composition.kind == "exact" else 25.0)
        return Measurement((ms * 1.02, ms, ms * 1.05), kernel_ms=ms / 2, psnr_db=psnr)


def options(**changes: object) -> TuneOptions:
    chosen: dict[str, object] = {"budget_s": 3600.0, "batch_sizes": (1, 2, 4), "random_weights": True}
    chosen.update(changes)
    return TuneOptions(**chosen)  # type: ignore[arg-type]


def conflicting(names: list[str]) -> list[tuple[str, str]]:
    return [
        (first, second)
        for first, second in itertools.combinations(names, 2)
        if second in REGISTRY[first].conflicts or first in REGISTRY[second].conflicts
    ]


def test_the_search_never_measures_a_conflicting_pair() -> None:
    measure = FakeMeasure()
    names = ["tiny_vae", "fp16_vae", "upcast_vae", "bf16", "cached_embeds"]
    result = search(names, measure, options(beam=4))
    measured = [composition.split("+") for composition, _ in measure.log]
    assert all(not conflicting(parts) for parts in measured), measured
    # The search did reach conflicting pairs, and left them unbuilt.
    assert "fp16_vae+tiny_vae" in result.conflicts_avoided
    assert len(measure.log) == len(set(measure.log)), "a composition was measured twice"


def test_a_zero_budget_stops_after_the_baseline_and_says_cut_short() -> None:
    measure = FakeMeasure()
    result = search(["cached_embeds", "tiny_vae", "batch"], measure, options(budget_s=0.0))
    assert measure.log == [("baseline", 1)]
    assert result.cut_short
    assert "75% of the 0 s budget (the rest is the throughput step's) ran out with 2 planned" in result.stop_reason
    assert "search CUT SHORT" in tune_markdown(result)
    assert result.fastest() is not None and result.fastest().composition == "baseline"  # type: ignore[union-attr]


def test_the_budget_is_checked_before_each_measurement() -> None:
    ticks = itertools.count(step=10.0)
    measure = FakeMeasure()
    result = search(
        ["cached_embeds", "tiny_vae", "fp16_vae"], measure, options(budget_s=25.0), clock=lambda: next(ticks)
    )
    # Clock readings 0 (start), 10, 20 allow two candidates after the baseline; 30 is past the budget.
    assert [composition for composition, _ in measure.log] == ["baseline", "cached_embeds", "tiny_vae"]
    assert result.cut_short


def test_a_short_budget_leaves_the_throughput_step_its_share() -> None:
    ticks = itertools.chain([0.0, 10.0, 20.0, 30.0, 40.0, 41.0], itertools.count(50.0, 10.0))
    measure = FakeMeasure()
    names = ["cached_embeds", "tiny_vae", "fp16_vae", "batch"]
    result = search(names, measure, options(budget_s=45.0), clock=lambda: next(ticks))
    # The batch-1 search stops at 75 % of 45 s (33.75 s): readings 10, 20, 30 let step 1's three
    # candidates in and 40 stops step 2; the throughput step measures at 41 and stops at 50.
    at_one = [composition for composition, size in measure.log if size == 1]
    assert at_one == ["baseline", "cached_embeds", "tiny_vae", "fp16_vae"]
    assert [size for _, size in measure.log if size > 1] == [2]
    assert "75% of the 45 s budget" in result.stop_reason
    assert "the 45 s budget ran out with" in result.throughput_note
    throughput = result.best_throughput()
    assert result.cut_short and throughput is not None and throughput.phase == THROUGHPUT


def test_without_batch_the_search_has_the_whole_budget() -> None:
    ticks = itertools.count(step=10.0)
    measure = FakeMeasure()
    names = ["cached_embeds", "tiny_vae", "fp16_vae", "upcast_vae"]
    search(names, measure, options(budget_s=35.0), clock=lambda: next(ticks))
    assert len(measure.log) == 4  # readings 10, 20, 30 are inside 35 s: no share is held back


def throughput_candidate(composition: str, batch_size: int, ms_per_image: float) -> Candidate:
    measurement = Measurement((ms_per_image,) * 3)
    return Candidate(composition, "lossy", batch_size, THROUGHPUT, measurement=measurement)


def test_a_throughput_lead_inside_the_margin_goes_to_the_simpler_then_the_smaller_batch() -> None:
    result = TuneResult(options())
    result.candidates = [
        throughput_candidate("tiny_vae+cuda_graph+compile_regions+cached_embeds+batch", 16, 7.43),  # 134.6 images/s
        throughput_candidate("tiny_vae+graph_pipeline+batch", 16, 7.60),  # 131.6: 2.3 % behind, a tie
        throughput_candidate("tiny_vae+graph_pipeline+batch", 8, 7.62),  # 131.2: a tie too, at half the batch
        throughput_candidate("tiny_vae+batch", 16, 7.90),  # 126.6: 6 % behind, outside the margin
    ]
    most, chosen = result.measured_best_throughput(), result.best_throughput()
    assert most is not None and most.batch_size == 16 and most.composition.startswith("tiny_vae+cuda_graph")
    assert chosen is not None and (chosen.composition, chosen.batch_size) == ("tiny_vae+graph_pipeline+batch", 8)
    said = choices(result)
    assert "highest throughput: tiny_vae+graph_pipeline+batch at batch size 8" in said
    assert "at batch size 16 measured 134.6 images/s, within the 3% noise margin" in said
    assert result.as_dict()["measured_best_throughput"]["batch_size"] == 16


def test_the_chosen_compositions_are_the_measured_fastest() -> None:
    measure = FakeMeasure()
    names = ["cached_embeds", "tiny_vae", "fp16_vae", "channels_last", "batch", "vae_slicing"]
    result = search(names, measure, options())
    at_one = {composition: measure.expected_ms(parse(composition)) for composition, size in measure.log if size == 1}
    best = result.measured_fastest()
    assert best is not None
    assert best.composition == min(at_one, key=at_one.__getitem__)
    # Step 1 keeps tiny_vae (70) and cached_embeds (80); step 2 finds both together (56); step 3 measures
    # channels_last on top (55.4): the fastest measured, though within the margin, so the search stops there.
    assert best.composition == "tiny_vae+channels_last+cached_embeds"
    # A lead inside the margin is noise: the simpler composition that ties is the one chosen, and said so.
    chosen = result.fastest()
    assert chosen is not None and chosen.composition == "tiny_vae+cached_embeds"
    assert "within the 3% noise margin: the simpler composition is chosen" in choices(result)
    assert "step 3: no composition beat its parent" in result.stop_reason
    throughput = result.best_throughput()
    assert throughput is not None and throughput.phase == THROUGHPUT and throughput.batch_size == 4
    # The most images/s, or a simpler composition within the margin of it.
    most = max(item.images_per_s for item in result.candidates if item.ok)
    assert throughput.images_per_s * (1 + result.options.margin) >= most
    # batch and vae_slicing change nothing at batch 1: only the throughput step measures them.
    assert all(size > 1 for composition, size in measure.log if "batch" in composition.split("+"))
    assert not any("vae_slicing" in composition and size == 1 for composition, size in measure.log)


def test_the_ranked_table_is_sorted_fastest_first() -> None:
    measure = FakeMeasure(psnr={"cached_embeds": 10.0}, failing=("fp16_vae",))
    result = search(
        ["channels_last", "cached_embeds", "tiny_vae", "fp16_vae", "cpu_offload"],
        measure,
        options(),
        unmet=lambda composition: ["needs a GPU"] if composition.has("cpu_offload") else [],
    )
    statuses = [item.status for item in result.ranked()]
    assert statuses == sorted(statuses, key=[OK, REJECTED, FAILED, SKIPPED].index)
    measured = [item.ms_per_image for item in result.ranked() if item.status == OK]
    assert measured == sorted(measured) and len(measured) >= 3
    rows = [line.split("|") for line in ranked_table(result).splitlines()[2:]]
    ranked_ms = [float(row[4]) for row in rows if row[1].strip() != "-"]
    assert ranked_ms == sorted(ranked_ms) and len(ranked_ms) == len(measured)


def test_a_failed_candidate_is_reported_and_the_search_goes_on() -> None:
    measure = FakeMeasure(failing=("fp16_vae",))
    result = search(["fp16_vae", "tiny_vae"], measure, options())
    failed = [item for item in result.candidates if item.status == FAILED]
    assert [item.composition for item in failed] == ["fp16_vae"]
    assert failed[0].reason.startswith("RuntimeError: CUDA error")
    assert result.fastest() is not None and result.fastest().composition == "tiny_vae"  # type: ignore[union-attr]


def test_a_variant_that_cannot_run_here_is_skipped_with_its_reason_and_never_measured() -> None:
    measure = FakeMeasure()
    result = search(
        ["cpu_offload", "tiny_vae"],
        measure,
        options(),
        unmet=lambda composition: ["cpu_offload needs a CUDA GPU"] if composition.has("cpu_offload") else [],
    )
    assert not any("cpu_offload" in composition for composition, _ in measure.log)
    skipped = [item for item in result.candidates if item.status == SKIPPED]
    assert [(item.composition, item.reason) for item in skipped] == [("cpu_offload", "cpu_offload needs a CUDA GPU")]


def test_the_psnr_floor_rejects_an_exact_candidate_with_a_bad_psnr() -> None:
    measure = FakeMeasure(psnr={"cached_embeds": 12.0})
    result = search(["cached_embeds", "channels_last"], measure, options(quality=QualityBudget(min_psnr=30.0)))
    cached = next(item for item in result.candidates if item.composition == "cached_embeds")
    assert cached.status == REJECTED
    assert (
        cached.reason == "exact, but against the baseline's images: PSNR 12.0 dB is below the 30 dB floor (--min-psnr)"
    )
    # The fastest measured, but rejected: neither chosen nor built upon.
    assert result.fastest() is not None and result.fastest().composition != "cached_embeds"  # type: ignore[union-attr]
    assert ("cached_embeds+channels_last", 1) not in measure.log and (
        "channels_last+cached_embeds",
        1,
    ) not in measure.log


@pytest.mark.parametrize(("random_weights", "status"), [(True, OK), (False, REJECTED)])
def test_a_lossy_candidate_is_held_to_the_floor_only_on_real_weights(random_weights: bool, status: str) -> None:
    measure = FakeMeasure(psnr={"tiny_vae": 15.0})
    result = search(["tiny_vae"], measure, options(random_weights=random_weights))
    tiny = next(item for item in result.candidates if item.composition == "tiny_vae")
    assert tiny.status == status
    if random_weights:
        assert tiny.quality == RANDOM_WEIGHTS_NOTE
        assert RANDOM_WEIGHTS_NOTE in ranked_table(result)
    else:
        assert "below the 30 dB floor" in tiny.reason


def test_the_search_stops_when_nothing_beats_its_parent_by_the_margin() -> None:
    measure = FakeMeasure()
    result = search(["channels_last", "batch"], measure, options(margin=0.03, batch_sizes=(1,)))
    # channels_last is 1 % faster: within the 3 % margin, so no second step and no cut.
    assert [composition for composition, _ in measure.log] == ["baseline", "channels_last"]
    assert "no composition beat its parent by more than the 3% margin" in result.stop_reason
    assert not result.cut_short
    assert result.throughput_note == "only batch size 1 was asked for"


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (parse_budget, "90", 90.0),
        (parse_budget, "45s", 45.0),
        (parse_budget, "10m", 600.0),
        (parse_budget, "1.5h", 5400.0),
        (parse_batch_sizes, "8,1,2,2", (1, 2, 8)),
        (lambda text: parse_limit("--min-psnr", text), "28.5", 28.5),
    ],
)
def test_the_parsers_accept(parse: Callable[[str], object], text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_budget, "soon", "give seconds (90 or 90s), minutes (10m) or hours (1h)"),
        (parse_budget, "10 days", "budget '10 days' is not accepted"),
        (parse_batch_sizes, "0,2", "give whole numbers of at least 1, comma-separated"),
        (parse_batch_sizes, "", "batch sizes '' are not accepted"),
        (lambda text: parse_limit("--min-psnr", text), "high", "--min-psnr 'high' is not accepted; give decibels"),
    ],
)
def test_the_parsers_refuse_saying_what_is_accepted(parse: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_candidates_are_single_registered_variants() -> None:
    assert parse_candidates("Tiny-VAE, batch,baseline") == ("tiny_vae", "batch")
    assert "baseline" not in parse_candidates("all") and "tiny_vae" in parse_candidates("all")
    with pytest.raises(VariantSpecError, match="Did you mean 'tiny_vae'"):
        parse_candidates("tiny_vea")
    with pytest.raises(VariantSpecError, match="give single variants, the search composes them"):
        parse_candidates("tiny_vae+batch")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--budget", "soon"], "argument --budget: budget 'soon' is not accepted"),
        (["--batch-sizes", "1,x"], "argument --batch-sizes: batch sizes '1,x' are not accepted"),
        (["--min-psnr", "high"], "argument --min-psnr: --min-psnr 'high' is not accepted; give decibels"),
        (["--min-ssim", "2"], "argument --min-ssim: --min-ssim '2' is not accepted; give a similarity up to 1"),
        (["--max-lpips", "-1"], "argument --max-lpips: --max-lpips '-1' is not accepted; give a distance from 0"),
    ],
)
def test_bad_tune_options_are_usage_errors(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_candidate_is_a_usage_error_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--variants", "cached_embeds,tiny_vea"]) == 2
    error = capsys.readouterr().err
    assert "unknown variant 'tiny_vea'. Did you mean 'tiny_vae'? Valid variants: baseline," in error


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_tune_end_to_end_on_random_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n")
    out = tmp_path / "tune"
    arguments = ["tune", "--model", "random:tiny", "--budget", "60s", "--prompts", str(prompts), "--device", "cpu"]
    arguments += ["--variants", "cached_embeds,batch,tiny_vae,cpu_offload", "--runs", "2", "--rounds", "1"]
    arguments += ["--batch-sizes", "1,2", "--out", str(out)]
    assert main(arguments) == 0
    captured = capsys.readouterr()
    assert "fastest at batch 1: " in captured.out and "highest throughput: " in captured.out
    assert "what holds it back: n/a: no GPU kernel time (no CUDA kernels here)" in captured.out
    assert "tune: baseline at batch 1: " in captured.err
    document = json.loads((out / "tune.json").read_text())
    rows = {(row["composition"], row["batch_size"]): row for row in document["candidates"]}
    assert rows[("cpu_offload", 1)]["status"] == "skipped"
    assert "needs a CUDA GPU" in rows[("cpu_offload", 1)]["reason"]
    # Exact on a CPU in float32: cached embeddings give the baseline's images.
    assert rows[("cached_embeds", 1)]["psnr_db"] == "inf"
    assert rows[("tiny_vae", 1)]["quality"] == RANDOM_WEIGHTS_NOTE
    measured = [row for row in document["candidates"] if row["status"] == "ok" and row["phase"] == "search"]
    best = min(measured, key=lambda row: row["ms_per_image"])
    assert document["measured_fastest"]["composition"] == best["composition"]
    # The chosen one ties with it within the margin and has no more variants.
    chosen = document["fastest"]
    assert chosen["ms_per_image"] <= best["ms_per_image"] * 1.03
    assert len(chosen["composition"].split("+")) <= len(best["composition"].split("+"))
    assert all(len(row["run_minima_ms"]) == 2 for row in measured)
    assert document["conditions"]["runs"] == 2 and document["machine"]["resolved_device"] == "cpu"

    # A second call resumes from the first's tune.json. Only the baseline at batch 1 is measured again, and which
    # candidates the search then reaches depends on it (on a CPU the baseline and cached embeddings tie within the
    # noise), so what is asserted is what resume promises: every candidate it reaches that the first call measured
    # comes from the file with the first call's figure, and the fastest is chosen afresh among them.
    again = tmp_path / "again"
    resumed = [*arguments[:-2], "--out", str(again), "--resume", str(out / "tune.json")]
    assert main(resumed) == 0
    progress = capsys.readouterr().err
    assert "tune: baseline at batch 1: " in progress
    reused = set(re.findall(r"tune: (\S+) at batch (\d+): [^\n]*\(from --resume\)", progress))
    again_document = json.loads((again / "tune.json").read_text())
    again_rows = {(row["composition"], row["batch_size"]): row for row in again_document["candidates"]}
    assert not again_rows[("baseline", 1)]["resumed"]
    revisited = [
        key
        for key in again_rows
        if key != ("baseline", 1) and key in rows and rows[key]["status"] in ("ok", "rejected")
    ]
    assert revisited and reused == {(composition, str(size)) for composition, size in revisited}
    for key in revisited:
        assert again_rows[key]["resumed"] and again_rows[key]["ms_per_image"] == rows[key]["ms_per_image"], key
    again_measured = [row for row in again_document["candidates"] if row["status"] == "ok" and row["phase"] == "search"]
    again_best = min(again_measured, key=lambda row: row["ms_per_image"])
    assert again_document["measured_fastest"]["composition"] == again_best["composition"]
    # Other conditions (three runs a measurement instead of two): refused, saying why.
    refused = [*resumed[: resumed.index("--runs")], "--runs", "3", *resumed[resumed.index("--runs") + 2 :]]
    assert main(refused) == 2
    assert "runs: 2 there, 3 here" in capsys.readouterr().err
    if not document["cut_short"]:
        assert any(row["phase"] == "throughput" and row["batch_size"] == 2 for row in document["candidates"])
    assert (out / "tune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Batch 1, ranked" in (out / "tune.md").read_text()


def test_each_candidate_gets_one_profiled_pass_however_many_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Profiled passes cost seconds each on a GPU; kernel time ranks candidates from one.
    from pytest_sdxl.measure.core import MeasuringOptions
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.tune import measurement as tune_measurement
    from pytest_sdxl.variants.registry import compose

    asked: list[MeasuringOptions] = []

    def refuse(pipeline: object, groups: object, options: MeasuringOptions, **keywords: object) -> None:
        asked.append(options)
        raise RuntimeError("not measured in this test")

    monkeypatch.setattr(tune_measurement, "measure_pipeline", refuse)
    settings = Settings(model="random:tiny", device="cpu", prompts=("a", "b"))
    measurer = tune_measurement.CoreMeasurer(settings, runs=5, rounds=None, report=None)
    with pytest.raises(RuntimeError, match="not measured"):
        measurer(compose(["cached_embeds"]), 1)
    assert asked[0].runs == 5 and asked[0].profiled_runs == tune_measurement.TUNE_PROFILED_RUNS == 1


def test_a_resumed_search_reuses_what_was_measured_and_spends_its_budget_on_the_rest() -> None:
    names = ["cached_embeds", "tiny_vae", "fp16_vae", "batch"]
    first = search(names, FakeMeasure(), options(budget_s=0.0))  # cut short after the baseline
    full = search(names, FakeMeasure(), options())
    # What a stopped call wrote: every candidate of step 1, the baseline aside (measured again for PSNR).
    known = {
        (item.composition, item.batch_size): item.measurement
        for item in full.candidates
        if item.step == 1 and item.measurement is not None
    }
    measure = FakeMeasure()
    resumed = search(names, measure, options(budget_s=0.0), known=known)
    assert first.cut_short and measure.log == [("baseline", 1)]  # nothing of step 1 measured again
    reused = [item for item in resumed.candidates if item.resumed]
    assert {(item.composition, item.batch_size) for item in reused} == set(known)
    # Step 1 came free; step 2 needs new measurements and the zero budget stops it.
    assert resumed.cut_short and "ran out with 2 planned" in resumed.stop_reason
    assert all(item.as_dict()["resumed"] for item in reused)
    complete = search(names, FakeMeasure(), options(), known=known)
    assert complete.fastest().composition == full.fastest().composition  # type: ignore[union-attr]


def tune_document(candidates: list[dict[str, object]], **changes: object) -> dict[str, object]:
    from pytest_sdxl.tune.resume import conditions

    settings = {"model": "random:tiny", "dtype": "auto", "size": None, "steps": 1, "prompts": ["a", "b"], "seed": 0}
    settings |= {"tiny_vae": "random", "fp16_vae": "random"}
    document: dict[str, object] = {
        "schema": "pytest-sdxl-tune",
        "conditions": conditions(settings, 3, None),
        "machine": {"gpu": None, "resolved_device": "cpu", "torch": "2.13.0", "diffusers": "0.37.0"},
        "candidates": candidates,
    }
    document.update(changes)
    return document


def test_resume_reads_measured_rows_and_leaves_out_the_baseline_and_failures(tmp_path: Path) -> None:
    from pytest_sdxl.tune.resume import read_known

    def row(composition: str, status: str = "ok", batch_size: int = 1) -> dict[str, object]:
        minima = [] if status == "failed" else [10.0, 9.0, 11.0]
        return {"composition": composition, "batch_size": batch_size, "status": status, "run_minima_ms": minima}

    rows = [row("baseline"), row("tiny_vae"), row("bf16", "rejected"), row("fp16_vae", "failed"), row("batch", "ok", 4)]
    rows[1] |= {"kernel_ms_per_image": 4.5, "psnr_db": "inf", "peak_gpu_mem_gb": 7.1}
    document = tune_document(rows)
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(document))
    known = read_known(path, document["conditions"], document["machine"])  # type: ignore[arg-type]
    assert set(known) == {("tiny_vae", 1), ("bf16", 1), ("batch", 4)}
    assert known[("tiny_vae", 1)].ms_per_image == 10.0 and known[("tiny_vae", 1)].psnr_db == math.inf
    # The --out folder names its tune.json; a folder without one is said to be that.
    assert read_known(tmp_path, document["conditions"], document["machine"]) == known  # type: ignore[arg-type]
    (tmp_path / "other").mkdir()
    with pytest.raises(SettingsError, match=r"a folder without a tune\.json"):
        read_known(tmp_path / "other", {}, {})


def test_resume_refuses_measurements_made_under_other_conditions_naming_each_difference(tmp_path: Path) -> None:
    from pytest_sdxl.errors import SettingsError
    from pytest_sdxl.tune.resume import read_known

    document = tune_document([])
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(document))
    now_conditions = dict(document["conditions"], runs=5)  # type: ignore[arg-type]
    now_machine = dict(document["machine"], gpu="NVIDIA H100 80GB HBM3")  # type: ignore[arg-type]
    with pytest.raises(SettingsError) as refused:
        read_known(path, now_conditions, now_machine)
    message = str(refused.value)
    assert "runs: 3 there, 5 here" in message and "gpu: None there, 'NVIDIA H100 80GB HBM3' here" in message
    with pytest.raises(SettingsError, match=r"no such file; give the tune\.json an earlier `tune --out` wrote"):
        read_known(tmp_path / "missing.json", now_conditions, now_machine)
    (tmp_path / "other.json").write_text(json.dumps({"schema": "pytest-sdxl-results"}))
    with pytest.raises(SettingsError, match=r"not a tune\.json"):
        read_known(tmp_path / "other.json", now_conditions, now_machine)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_stopped_tune_leaves_a_tune_json_to_resume_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sdxl.tune import measurement as tune_measurement

    measure_for_real = tune_measurement.CoreMeasurer.__call__
    asked: list[str] = []

    def stopped_on_the_third(self: Any, composition: Composition, batch_size: int) -> Measurement:
        asked.append(composition.id)
        if len(asked) == 3:
            raise KeyboardInterrupt  # the job's time limit, say
        return measure_for_real(self, composition, batch_size)

    monkeypatch.setattr(tune_measurement.CoreMeasurer, "__call__", stopped_on_the_third)
    out = tmp_path / "tune"
    arguments = ["tune", "--model", "random:tiny", "--device", "cpu", "--variants", "cached_embeds,tiny_vae,bf16"]
    assert main([*arguments, "--runs", "2", "--rounds", "1", "--batch-sizes", "1", "--out", str(out), "--quiet"]) == 130
    document = json.loads((out / "tune.json").read_text())
    assert [row["composition"] for row in document["candidates"]] == asked[:2]
    assert document["stop_reason"] == "in progress (or stopped midway)" and document["conditions"]["runs"] == 2


def test_the_choices_say_what_holds_each_winner_back() -> None:
    result = search(["cached_embeds", "tiny_vae", "batch"], FakeMeasure(), options())
    text = choices(result)
    # The fake's kernel time is half its fastest call, and its estimate the median run's 1.02 times that.
    lines = text.splitlines()
    fastest_index = next(index for index, line in enumerate(lines) if line.startswith("fastest at batch 1:"))
    assert lines[fastest_index + 1].startswith("  what holds it back: launch-bound: GPU busy 49.0%")
    throughput_index = next(index for index, line in enumerate(lines) if line.startswith("highest throughput:"))
    assert lines[throughput_index + 1].startswith("  what holds it back: ")


class SsimMeasure(FakeMeasure):
    """FakeMeasure whose lossy candidates keep a fair PSNR but a poor SSIM."""

    def __call__(self, composition: Composition, batch_size: int) -> Measurement:
        measured = super().__call__(composition, batch_size)
        ssim, lpips = (1.0, 0.0) if composition.kind == "exact" else (0.8, 0.2)
        return Measurement(measured.run_minima_ms, measured.kernel_ms, measured.psnr_db, ssim=ssim, lpips=lpips)


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        (QualityBudget(min_ssim=0.9), "SSIM 0.8000 is below the 0.9 floor (--min-ssim)"),
        (QualityBudget(max_lpips=0.1), "LPIPS 0.200 is above the 0.1 ceiling (--max-lpips)"),
    ],
)
def test_a_candidate_under_the_quality_budget_is_rejected_on_real_weights_only(
    budget: QualityBudget, reason: str
) -> None:
    real = search(["tiny_vae", "channels_last"], SsimMeasure(), options(quality=budget, random_weights=False))
    tiny = next(item for item in real.candidates if item.composition == "tiny_vae")
    assert tiny.status == REJECTED and tiny.reason == f"lossy, but against the baseline's images: {reason}"
    # Faster than everything else, yet neither chosen nor built upon.
    assert real.fastest() is not None and "tiny_vae" not in real.fastest().composition  # type: ignore[union-attr]
    assert not any("tiny_vae+" in item.composition for item in real.candidates)
    channels = next(item for item in real.candidates if item.composition == "channels_last")
    assert channels.status == OK and channels.quality == "exact (identical, SSIM 1.0000, LPIPS 0.000)"
    randomly = search(["tiny_vae"], SsimMeasure(), options(quality=budget, random_weights=True))
    tiny = next(item for item in randomly.candidates if item.composition == "tiny_vae")
    assert tiny.status == OK and tiny.quality == RANDOM_WEIGHTS_NOTE
