"""The one measurement core: warm-up, the timed loop, runs, alternating rounds, and every caller on it.

Fakes check the arithmetic exactly; the tiny random pipeline on the CPU checks a whole measurement.
"""

from __future__ import annotations

import ast
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sdxl.measure import core as measurement
from pytest_sdxl.measure import overhead, paired, power, protocol
from pytest_sdxl.measure.calls import call_groups, side_by_side_reference, warm_up
from pytest_sdxl.measure.core import (
    MIN_RATIO_SAMPLES,
    MIN_TIMED_CALLS,
    MeasuringOptions,
    TimedLoop,
    measure_pipeline,
    rounds_per_run,
)
from pytest_sdxl.measure.paired import alternating_rounds, ratio_of_minima
from pytest_sdxl.measure.records import split_into_runs, wall_blocks
from pytest_sdxl.pipelines.sources import components_for
from pytest_sdxl.plugin.benchmark import VariantBenchmark
from pytest_sdxl.plugin.state import SessionState, WarmUp
from pytest_sdxl.settings import Settings, resolve
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import compose

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("a red cube", "a blue sphere", "a green cone")
TIMED_PROMPTS, TIMED_SEEDS = list(PROMPTS[1:]), [1, 2]


class FakeClock:
    """A clock the fake pipeline moves forward; every reading is logged beside the pipeline's calls."""

    def __init__(self, events: list[str]) -> None:
        self.seconds = 0.0
        self.events = events

    def now(self) -> float:
        self.events.append("now")
        return self.seconds


@dataclass
class FakeComposition:
    warmup_calls: int
    is_batch: bool = False


class RecordingPipeline:
    """Stands in for a VariantPipeline: each ``generate`` is recorded as (prompts, checked) and takes ``call_s``."""

    device = torch.device("cpu")

    def __init__(self, composition: Any, call_s: float = 0.0) -> None:
        self.composition = composition
        self.call_s = call_s
        self.calls: list[tuple[int, bool]] = []
        self.events: list[str] = []
        self.clock = FakeClock(self.events)
        self.warm_calls: dict[int, int] = {}  # VariantPipeline's record of warm-up calls by shape

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], check: bool = True) -> np.ndarray:
        self.calls.append((len(prompts), check))
        self.events.append("generate")
        self.clock.seconds += self.call_s
        return np.stack([np.full((2, 2, 3), seed / 100) for seed in seeds])


def groups_of(sizes: Sequence[int]) -> list[measurement.Group]:
    """Calls of these many prompts each, seeds numbered through."""
    groups, seed = [], 0
    for size in sizes:
        groups.append(([f"prompt {seed + index}" for index in range(size)], list(range(seed, seed + size))))
        seed += size
    return groups


def test_warm_up_calls_a_batch_shape_as_often_as_the_composition_needs() -> None:
    pipeline = RecordingPipeline(compose(["trace_unet", "batch"]))  # TorchScript optimizes on call 2
    images, made = warm_up(pipeline, groups_of([4]))  # type: ignore[arg-type]
    assert pipeline.calls == [(4, True), (4, False)] and made == 2
    assert images.shape == (4, 2, 2, 3) and list(images[:, 0, 0, 0] * 100) == pytest.approx([0, 1, 2, 3])


@pytest.mark.parametrize(("calls_at_one", "expected"), [(0, [(1, True), (1, False)]), (1, [(1, True)])])
def test_warm_up_counts_the_first_generation_as_a_call_at_one_prompt(
    calls_at_one: int, expected: list[tuple[int, bool]]
) -> None:
    pipeline = RecordingPipeline(compose(["trace_unet"]))
    _, made = warm_up(pipeline, groups_of([1]), calls_at_one)  # type: ignore[arg-type]
    assert pipeline.calls == expected and made == len(expected)


@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    wanted=st.integers(1, 4),
    calls_at_one=st.integers(0, 3),
)
def test_warm_up_calls_every_shape_at_least_warmup_calls_times(
    sizes: list[int], wanted: int, calls_at_one: int
) -> None:
    pipeline = RecordingPipeline(FakeComposition(wanted))
    images, made = warm_up(pipeline, groups_of(sizes), calls_at_one)  # type: ignore[arg-type]
    assert made == len(pipeline.calls) and len(images) == sum(sizes)
    # One checked pass over the round first, in order; only unchecked calls after it.
    assert pipeline.calls[: len(sizes)] == [(size, True) for size in sizes]
    assert all(not checked for _, checked in pipeline.calls[len(sizes) :])
    for shape in set(sizes):
        before = calls_at_one if shape == 1 else 0
        made_here = sum(1 for size, _ in pipeline.calls if size == shape)
        assert made_here == max(sizes.count(shape), wanted - before)


@pytest.mark.parametrize(("sizes", "expected"), [([4], [0.05]), ([1, 1, 1], [0.2, 0.2, 0.2]), ([2, 1], [0.1, 0.2])])
def test_a_timed_round_gives_one_sample_per_call_in_seconds_per_image(sizes: list[int], expected: list[float]) -> None:
    pipeline = RecordingPipeline(FakeComposition(1), call_s=0.2)
    loop = TimedLoop(pipeline, groups_of(sizes))  # type: ignore[arg-type]
    loop.clock = pipeline.clock  # type: ignore[assignment]
    assert loop.round() == pytest.approx(expected) and loop.round() == pytest.approx(expected)
    assert loop.rounds == [pytest.approx(expected)] * 2
    # Each call alone between two clock readings, unchecked: nothing else is timed.
    assert pipeline.events == ["now", "generate", "now"] * len(sizes) * 2
    assert all(not checked for _, checked in pipeline.calls)


@given(calls=st.integers(1, 25), images_per_call=st.integers(1, 4))
def test_a_run_has_at_least_ten_timed_calls_and_no_round_more_than_needed(calls: int, images_per_call: int) -> None:
    rounds = rounds_per_run(groups_of([images_per_call] * calls))
    assert rounds * calls >= MIN_TIMED_CALLS
    assert rounds == 1 or (rounds - 1) * calls < MIN_TIMED_CALLS


def test_a_batch_run_is_ten_rounds_of_one_call() -> None:
    assert rounds_per_run(call_groups(compose(["batch"]), ["a", "b", "c", "d"], [0, 1, 2, 3])) == MIN_TIMED_CALLS
    assert rounds_per_run(call_groups(compose([]), ["a", "b", "c", "d"], [0, 1, 2, 3])) == 3


@given(calls=st.integers(1, 8), reference_calls=st.integers(1, 8))
def test_beside_a_reference_each_side_has_enough_samples_for_its_minimum(calls: int, reference_calls: int) -> None:
    rounds = rounds_per_run(groups_of([1] * calls), groups_of([1] * reference_calls))
    assert rounds * min(calls, reference_calls) >= MIN_RATIO_SAMPLES and rounds * calls >= MIN_TIMED_CALLS
    needed = max(MIN_TIMED_CALLS / calls, MIN_RATIO_SAMPLES / min(calls, reference_calls))
    assert rounds - 1 < needed  # no round more than needed


def test_a_batch_run_beside_its_one_by_one_reference_is_four_wall_blocks() -> None:
    prompts, seeds = ["a", "b", "c", "d"], [0, 1, 2, 3]
    batch = call_groups(compose(["batch"]), prompts, seeds)
    assert rounds_per_run(batch, call_groups(compose([]), prompts, seeds)) == MIN_RATIO_SAMPLES == 48
    four_calls = call_groups(compose([]), prompts, seeds)
    assert rounds_per_run(four_calls, four_calls) == 12  # 48 calls a side


@pytest.mark.parametrize(
    ("calls_a_round", "rounds", "expected_blocks"),
    [(1, 48, [12, 12, 12, 12]), (1, 30, [12, 18]), (1, 5, [5]), (4, 12, [3, 3, 3, 3]), (4, 7, [3, 4]), (1, 0, [])],
)
def test_wall_blocks_cut_a_run_into_twelve_calls_of_the_variant_a_short_rest_joining_the_last(
    calls_a_round: int, rounds: int, expected_blocks: list[int]
) -> None:
    # Round r takes r + 1 ms a call, its reference 10 * (r + 1): each block's minima are its first round's.
    own = [[0.001 * (index + 1)] * calls_a_round for index in range(rounds)]
    reference = [[0.01 * (index + 1)] * 4 for index in range(rounds)]
    blocks = wall_blocks(own, reference)
    starts = [sum(expected_blocks[:index]) for index in range(len(expected_blocks))]
    assert blocks == [[pytest.approx(0.001 * (start + 1)), pytest.approx(0.01 * (start + 1))] for start in starts]


@given(rounds=st.lists(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=3), max_size=40), runs=st.integers(1, 8))
def test_splitting_into_runs_keeps_every_round_once_in_order(rounds: list[list[float]], runs: int) -> None:
    blocks = split_into_runs(rounds, runs)
    assert [one_round for block in blocks for one_round in block] == rounds
    assert all(blocks) and len(blocks) <= runs
    if rounds and len(rounds) % runs == 0:
        assert [len(block) for block in blocks] == [len(rounds) // runs] * runs


class PreparedSides:
    """Two sides of an alternating measurement handing out prepared seconds per image, logging their order."""

    def __init__(self, firsts: list[float], seconds: list[float]) -> None:
        self.queues = {"first": list(firsts), "second": list(seconds)}
        self.order: list[str] = []

    def side(self, name: str) -> Callable[[], float]:
        def one_round() -> float:
            self.order.append(name)
            return self.queues[name].pop(0)

        return one_round


durations = st.floats(min_value=1e-4, max_value=10.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    firsts=st.lists(durations, min_size=61, max_size=61),
    seconds=st.lists(durations, min_size=61, max_size=61),
    min_rounds=st.integers(1, 61),
    min_seconds=st.floats(0.0, 50.0),
)
def test_alternating_rounds_alternate_and_stop_at_the_first_round_that_has_enough(
    firsts: list[float], seconds: list[float], min_rounds: int, min_seconds: float
) -> None:
    sides = PreparedSides(firsts, seconds)
    got_firsts, got_seconds = alternating_rounds(
        sides.side("first"), sides.side("second"), min_rounds, min_seconds, max_rounds=61
    )
    expected_rounds, measured = 61, 0.0
    for number in range(1, 62):
        measured += firsts[number - 1] + seconds[number - 1]
        if number >= min_rounds and measured >= min_seconds:
            expected_rounds = number
            break
    assert (got_firsts, got_seconds) == (firsts[:expected_rounds], seconds[:expected_rounds])
    in_turn = [("first", "second") if index % 2 == 0 else ("second", "first") for index in range(expected_rounds)]
    assert sides.order == [name for pair in in_turn for name in pair]


@settings(max_examples=60, deadline=None)
@given(ratio=st.floats(min_value=0.05, max_value=20.0), drift=st.lists(durations, min_size=61, max_size=61))
def test_a_ratio_of_minima_is_blind_to_drift_that_hits_both_sides(ratio: float, drift: list[float]) -> None:
    sides = PreparedSides([ratio * slowdown for slowdown in drift], drift)
    firsts, seconds = alternating_rounds(sides.side("first"), sides.side("second"))
    assert math.isclose(ratio_of_minima(firsts, seconds), ratio, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("variant", "reference"),
    [("batch", "baseline"), ("tiny_vae+batch", "tiny_vae"), ("tiny_vae", "baseline"), ("cached_embeds", "baseline")],
)
def test_the_side_by_side_reference_is_the_one_by_one_path_for_batch_else_the_baseline(
    variant: str, reference: str
) -> None:
    beside = side_by_side_reference(compose(variant.split("+")))
    assert beside is not None and beside.id == reference


def test_the_baseline_has_no_side_by_side_reference() -> None:
    assert side_by_side_reference(compose([])) is None


@pytest.fixture(scope="module")
def pipelines(one_torch_thread: None) -> Iterator[dict[str, VariantPipeline]]:
    """The tiny random baseline and batch pipelines at 32 px, warmed, sharing their components."""
    components = components_for(resolve({}, {}, {}))
    built = {
        name: VariantPipeline(components, compose(parts), 32)
        for name, parts in (("baseline", []), ("batch", ["batch"]))
    }
    for pipeline in built.values():
        pipeline.generate(TIMED_PROMPTS, TIMED_SEEDS)
    yield built
    for pipeline in built.values():
        pipeline.close()


@pytest.mark.slow
def test_measure_pipeline_gives_one_full_record_per_run(pipelines: dict[str, VariantPipeline]) -> None:
    batch, baseline = pipelines["batch"], pipelines["baseline"]
    reference_images = baseline.generate(TIMED_PROMPTS, TIMED_SEEDS)
    groups = call_groups(batch.composition, TIMED_PROMPTS, TIMED_SEEDS)
    measured = measure_pipeline(
        batch, groups, MeasuringOptions(runs=2), side_by_side=baseline, reference_images=reference_images
    )
    assert [record.run for record in measured.runs] == [1, 2] and len(measured.timed_s_per_run) == 2
    assert measured.flops is not None and measured.flops > 0
    for record in measured.runs:
        assert len(record.gen_s) >= MIN_TIMED_CALLS and min(record.gen_s) > 0
        # The reference ran its own round before each of the variant's: two one-prompt calls a round.
        assert record.reference == "baseline" and len(record.reference_gen_s) == 2 * len(record.gen_s)
        assert math.isfinite(record.wall_ratio) and record.wall_ratio > 0
        # Four blocks of twelve batch calls, the reference's minimum beside each; the run's minima among them.
        assert len(record.wall_blocks) == MIN_RATIO_SAMPLES // 12 == 4
        assert min(own for own, _ in record.wall_blocks) == min(record.gen_s)
        assert min(reference for _, reference in record.wall_blocks) == min(record.reference_gen_s)
        assert record.warmup_calls >= 1
        assert record.device is not None and "cpu" in record.device.not_applicable
        assert (record.device.kernel_ms, record.device.kernels, record.device.kernel_table) == ([], [], {})
        assert record.device.flops is not None and record.device.flops > 0
        assert {"text_encode_ms", "unet_ms", "vae_decode_ms", "other_ms", "total_ms"} <= set(record.stages)
        assert record.psnr_db is not None and record.psnr_db > 20  # same prompts and seeds as the reference
        assert math.isnan(record.load_s) and math.isnan(record.init_gen_s)  # the caller's to fill in


def test_only_the_first_runs_are_profiled_so_many_short_runs_stay_affordable(
    pipelines: dict[str, VariantPipeline],
) -> None:
    baseline = pipelines["baseline"]
    groups = call_groups(baseline.composition, TIMED_PROMPTS[:1], TIMED_SEEDS[:1])
    runs = measurement.MAX_PROFILED_RUNS + 2
    options = MeasuringOptions(runs=runs, rounds=1, split_stages=False, count_flops=False)
    measured = measure_pipeline(baseline, groups, options)
    assert [record.run for record in measured.runs] == list(range(1, runs + 1))
    assert all(record.device is not None for record in measured.runs[: measurement.MAX_PROFILED_RUNS])
    assert all(record.device is None for record in measured.runs[measurement.MAX_PROFILED_RUNS :])
    assert all(len(record.gen_s) == 1 for record in measured.runs)  # every run still timed


@pytest.fixture
def timed_rounds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The id of the pipeline of every ``TimedLoop.round`` from now on, in order."""
    counted: list[str] = []
    original = TimedLoop.round

    def counting(self: TimedLoop) -> list[float]:
        counted.append(self.pipeline.id)
        return original(self)

    monkeypatch.setattr(TimedLoop, "round", counting)
    return counted


@pytest.fixture
def one_run() -> Settings:
    """Settings of one run over three prompts: a first generation and two timed ones."""
    return resolve({"runs": "1"}, {}, {}, flag_style="cli").with_changes(prompts=PROMPTS, seed=1)


def test_the_protocol_times_through_the_core(timed_rounds: list[str], one_run: Settings) -> None:
    fixed = one_run.with_changes(prompts=PROMPTS[:2], profile="reference")  # the fixed rounds
    record, _, _ = protocol.measure_run(fixed, compose([]), 1, None)
    assert timed_rounds == ["baseline"] * MIN_TIMED_CALLS and len(record.gen_s) == MIN_TIMED_CALLS


@dataclass
class FakeBenchmark:
    """What VariantBenchmark uses of pytest-benchmark's fixture: pedantic mode runs each round after its setup."""

    group: str | None = None
    disabled: bool = False
    extra_info: dict[str, Any] = field(default_factory=dict)
    pedantic_calls: list[dict[str, int]] = field(default_factory=list)

    def pedantic(
        self,
        target: Callable[[], object],
        setup: Callable[[], object],
        rounds: int,
        warmup_rounds: int,
        iterations: int,
    ) -> None:
        self.pedantic_calls.append({"rounds": rounds, "warmup_rounds": warmup_rounds, "iterations": iterations})
        for _ in range(rounds):
            setup()
            target()


@pytest.mark.slow
def test_the_plugin_times_through_the_core(
    timed_rounds: list[str], one_run: Settings, pipelines: dict[str, VariantPipeline]
) -> None:
    state = SessionState(settings=one_run.with_changes(profile="reference"))  # the fixed rounds
    state.warm_ups["batch"] = WarmUp("batch", components_load_s=0.5, build_s=0.1, init_gen_s=0.2)
    benchmark = FakeBenchmark()
    VariantBenchmark(benchmark, pipelines["batch"], state, "test_generation").measure(1)
    # Beside its one-by-one reference, a batch run needs MIN_RATIO_SAMPLES rounds, not only MIN_TIMED_CALLS.
    assert benchmark.pedantic_calls == [{"rounds": MIN_RATIO_SAMPLES, "warmup_rounds": 0, "iterations": 1}]
    # pytest-benchmark's setup runs the one-by-one reference's round right before each batch round.
    assert timed_rounds == ["baseline", "batch"] * MIN_RATIO_SAMPLES
    assert benchmark.extra_info["timed_calls_per_run"] == MIN_RATIO_SAMPLES
    assert state.records["batch"].runs[0].reference == "baseline"


def test_the_overhead_command_times_through_the_core(timed_rounds: list[str], one_run: Settings) -> None:
    result = overhead.measure_overhead(one_run, compose([]), rounds=2, warmup=1)
    assert timed_rounds == ["baseline"] * 2 and len(result.samples_ms["core"]) == 2


def asv_common() -> Any:
    """The asv suite's shared module, as asv imports it from the package."""
    return importlib.import_module("pytest_sdxl.suite.asv.common")


def test_asvs_ratios_time_through_the_core(
    timed_rounds: list[str], pipelines: dict[str, VariantPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    def two_rounds(
        first: Callable[[], float], second: Callable[[], float], **limits: float
    ) -> tuple[list[float], list[float]]:
        # asv passes its round limits (fewer on the tiny CPU model); two rounds are enough to see the order.
        assert set(limits) <= {"min_rounds", "min_seconds", "max_rounds"}
        return alternating_rounds(first, second, min_rounds=2, min_seconds=0.0, max_rounds=2)

    monkeypatch.setattr(paired, "alternating_rounds", two_rounds)
    ratio = asv_common().paired_ratio(pipelines["batch"], pipelines["baseline"], TIMED_PROMPTS, TIMED_SEEDS)
    assert timed_rounds == ["batch", "baseline", "baseline", "batch"] and ratio > 0


@pytest.mark.slow
def test_the_power_command_times_through_the_core(
    timed_rounds: list[str], pipelines: dict[str, VariantPipeline]
) -> None:
    batch = pipelines["batch"]
    groups = call_groups(batch.composition, TIMED_PROMPTS, TIMED_SEEDS)
    record = power.measured_record(batch, pipelines["baseline"], groups, runs=1, slowdown=None)
    assert timed_rounds == ["baseline", "batch"] * MIN_RATIO_SAMPLES and record.runs[0].reference == "baseline"


CLOCK_READINGS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns"}
PIPELINE_CALLS = {"generate", "call", "pipe"}


def called_name(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def clocked_pipeline_calls(path: Path) -> list[str]:
    """Functions of a source file that read a clock themselves and call a pipeline (``generate(``, ``call(``)."""
    found = []
    for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {called_name(node) for node in ast.walk(function) if isinstance(node, ast.Call)}
            if names & CLOCK_READINGS and names & PIPELINE_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{function.name}")
    return found


def test_no_module_but_the_core_times_a_pipeline_call_with_its_own_clock() -> None:
    sources = sorted([*(ROOT / "pytest_sdxl").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")])
    found = [hit for path in sources for hit in clocked_pipeline_calls(path)]
    # The scan sees the one bare loop there is: the overhead command's raw reference, inside the core.
    assert found == ["pytest_sdxl/measure/core.py:raw_round"]
