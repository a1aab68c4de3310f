"""The reference protocol on random:tiny: records, fresh loads, PSNR, skips and failure isolation."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_sdxl.errors import ImageCheckError, SettingsError
from pytest_sdxl.machine import devices
from pytest_sdxl.measure.core import MIN_RATIO_SAMPLES, MIN_TIMED_CALLS
from pytest_sdxl.measure.protocol import ProgressEvent, measure_run, run_protocol, run_variant
from pytest_sdxl.pipelines import sources
from pytest_sdxl.settings import Settings, resolve
from pytest_sdxl.variants import assembly
from pytest_sdxl.variants.registry import parse, parse_list

pytestmark = pytest.mark.usefixtures("one_torch_thread")


PROMPTS = ["a red cube", "a blue sphere", "a green cone"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("\n".join(PROMPTS) + "\n")
    return resolve({"runs": "2", "prompts": str(prompt_file), "seed": "5"}, {}, {}, flag_style="cli")


def test_a_run_record_holds_the_notes_metrics(settings: Settings) -> None:
    record = run_variant(settings, parse("baseline"))
    assert (record.variant, record.kind, record.status, record.reason) == ("baseline", "exact", "ok", "")
    assert [run.run for run in record.runs] == [1, 2]
    for run in record.runs:
        # The timed prompts (all but the first) in rounds, at least MIN_TIMED_CALLS calls a run.
        assert len(run.gen_s) % (len(PROMPTS) - 1) == 0 and len(run.gen_s) >= MIN_TIMED_CALLS
        assert run.avg_gen_s == pytest.approx(statistics.fmean(run.gen_s))
        assert run.median_gen_s == pytest.approx(statistics.median(run.gen_s))
        assert run.total_s >= run.load_s + run.init_gen_s + sum(run.gen_s)
        assert run.warmup_calls >= len(PROMPTS) - 1  # one checked pass over the timed prompts
        assert run.device is not None and "cpu" in run.device.not_applicable and not run.device.kernel_ms
        assert min(run.load_s, run.init_gen_s, *run.gen_s) > 0
        assert run.peak_gpu_mem_gb is None  # on a CPU
        assert run.psnr_db == math.inf  # the baseline against itself: deterministic


def test_stages_split_the_timed_generations_per_image(settings: Settings) -> None:
    stages = run_variant(settings.with_changes(runs=1), parse("baseline")).runs[0].stages
    parts = stages["text_encode_ms"] + stages["unet_ms"] + stages["vae_decode_ms"] + stages["other_ms"]
    assert parts == pytest.approx(stages["total_ms"])
    assert min(stages["text_encode_ms"], stages["unet_ms"], stages["vae_decode_ms"]) > 0
    assert stages["unet_calls_per_image"] == 1.0  # one step per image


def test_batch_mode_times_enough_calls_for_its_minimum_reported_per_image(settings: Settings) -> None:
    # The reference profile's fixed rounds (gate and full stop them by the sequential rule: test_sequential.py).
    run = run_variant(settings.with_changes(runs=1, profile="reference"), parse("batch")).runs[0]
    # One call a round for all the timed prompts; beside its reference, enough rounds for a minimum.
    assert len(run.gen_s) == MIN_RATIO_SAMPLES >= MIN_TIMED_CALLS
    # Stages per image, not per call: one UNet call for the call's four images. (Not checked against the timed
    # median: the stage pass is one untimed call, 2.2 times the median once on a busy 2-core CI host.)
    assert run.stages["unet_calls_per_image"] == pytest.approx(1 / (len(PROMPTS) - 1))
    assert min(run.stages["text_encode_ms"], run.stages["unet_ms"], run.stages["vae_decode_ms"]) > 0  # each hooked
    # Its one-by-one reference ran beside it, round by round, over the same prompts.
    assert run.reference == "baseline" and len(run.reference_gen_s) == MIN_RATIO_SAMPLES * (len(PROMPTS) - 1)
    assert math.isfinite(run.wall_ratio) and run.wall_ratio > 0


def test_every_run_loads_afresh(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    original = sources.load_components

    def counting(*arguments: Any, **keywords: Any) -> Any:
        loads.append(arguments[0])
        return original(*arguments, **keywords)

    monkeypatch.setattr(sources, "load_components", counting)
    # Two runs show it: the second loads again instead of reusing the first's components.
    run_variant(settings.with_changes(runs=2), parse("tiny_vae"))
    assert loads == ["random:tiny"] * 2


def test_prompt_i_uses_seed_plus_i(settings: Settings) -> None:
    _, images, size = measure_run(settings, parse("baseline"), 1, None)
    components = sources.load_components("random:tiny", torch.device("cpu"), torch.float32)
    # The run's images are the timed prompts' (the first prompt is the first generation).
    expected = assembly.VariantPipeline(components, parse("baseline"), size).generate(PROMPTS[1:], [6, 7])
    assert np.array_equal(images, expected)


def test_protocol_runs_the_baseline_first_and_keeps_the_order(settings: Settings) -> None:
    seen: list[str] = []
    result = run_protocol(settings.with_changes(runs=1), parse_list("tiny_vae,vae_slicing,baseline"), seen_by(seen))
    assert seen[0] == "baseline"
    assert [record.variant for record in result.variants] == ["tiny_vae", "vae_slicing", "baseline"]
    psnr = {record.variant: record.runs[0].psnr_db for record in result.variants}
    assert psnr["baseline"] == math.inf and psnr["vae_slicing"] == math.inf  # exact variants
    assert psnr["tiny_vae"] is not None and 0 < psnr["tiny_vae"] < 100  # lossy: the picture changes
    assert result.settings["image_size"] == 32 and result.settings["resolved_device"] == "cpu"
    assert result.machine["torch"] == torch.__version__


def test_without_the_baseline_its_images_are_still_the_reference(settings: Settings) -> None:
    two_prompts = settings.with_changes(runs=1, prompts=tuple(PROMPTS[:2]))
    result = run_protocol(two_prompts, parse_list("vae_slicing"))
    assert result.variants[0].runs[0].psnr_db == math.inf


def seen_by(seen: list[str]) -> Any:
    def progress(event: ProgressEvent) -> None:
        if event.variant not in seen:
            seen.append(event.variant)

    return progress


def test_a_variant_that_cannot_run_here_is_skipped_with_the_reason(settings: Settings) -> None:
    record = run_variant(settings, parse("cpu_offload"))
    assert record.status == "skipped" and "needs a CUDA GPU" in record.reason and not record.runs


@pytest.fixture
def failing_tiny_vae(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """tiny_vae's generations raise ``state["error"]``; closes and memory frees are counted."""
    state: dict[str, Any] = {"error": None, "closed": [], "frees": 0}
    original_generate, original_close = assembly.VariantPipeline.generate, assembly.VariantPipeline.close
    original_free = devices.free_memory

    def generate(self: assembly.VariantPipeline, *arguments: Any, **keywords: Any) -> Any:
        if self.id == "tiny_vae":
            raise state["error"]
        return original_generate(self, *arguments, **keywords)

    def close(self: assembly.VariantPipeline) -> None:
        state["closed"].append(self.id)
        original_close(self)

    def free_memory(device: Any = None) -> None:
        state["frees"] += 1
        original_free(device)

    monkeypatch.setattr(assembly.VariantPipeline, "generate", generate)
    monkeypatch.setattr(assembly.VariantPipeline, "close", close)
    monkeypatch.setattr(devices, "free_memory", free_memory)
    return state


def test_a_failing_variant_fails_alone_and_frees_its_memory(
    settings: Settings, failing_tiny_vae: dict[str, Any]
) -> None:
    failing_tiny_vae["error"] = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    two_prompts = settings.with_changes(runs=1, prompts=tuple(PROMPTS[:2]))
    result = run_protocol(two_prompts, parse_list("baseline,tiny_vae,vae_slicing"))
    statuses = {record.variant: (record.status, record.reason) for record in result.variants}
    assert statuses == {
        "baseline": ("ok", ""),
        "tiny_vae": ("failed", "run 1: out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"),
        "vae_slicing": ("ok", ""),
    }
    assert failing_tiny_vae["closed"].count("tiny_vae") == 1 and failing_tiny_vae["frees"] > 0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ImageCheckError("tiny_vae: 1 of 1 images hold NaN"), "run 1: bad images: tiny_vae: 1 of 1 images hold NaN"),
        (KeyError("unet"), "run 1: KeyError: 'unet'"),
    ],
)
def test_a_failure_reason_says_what_went_wrong(
    settings: Settings, failing_tiny_vae: dict[str, Any], error: Exception, reason: str
) -> None:
    failing_tiny_vae["error"] = error
    record = run_variant(settings, parse("tiny_vae"))
    assert (record.status, record.reason, record.runs) == ("failed", reason, [])


def test_the_protocol_needs_two_prompts(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="at least 2 prompts"):
        run_variant(settings.with_changes(prompts=("only one",)), parse("baseline"))
