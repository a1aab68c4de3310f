"""What pytest-benchmark learns from pytest-sdxl: the GPU and library versions, and each variant's figures.

``machine_details`` names the GPU, driver, CUDA, torch and diffusers without importing torch:
pytest-benchmark asks for machine info while configuring (to compare with a saved run), long
before any test imports torch, and the answer must be the same then and at the end of the
session. ``VariantBenchmark`` is what the ``sdxl_benchmark`` fixture hands out: it times rounds
over the timed prompts on a warmed pipeline and fills ``extra_info`` and the session's records.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.machine import gpu_summary, gpus_from_driver, gpus_from_nvidia_smi, package_version

if TYPE_CHECKING:
    import numpy as np

    from pytest_sdxl.assembly import VariantPipeline
    from pytest_sdxl.plugin_state import SessionState, WarmUp
    from pytest_sdxl.results import RunRecord


def torch_cuda_version() -> str | None:
    """The CUDA version torch was built for, read from torch/version.py unless torch is already imported."""
    import ast
    import importlib.util

    torch = sys.modules.get("torch")
    if torch is not None:
        return getattr(torch.version, "cuda", None)
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^cuda(?:\s*:[^=]*)?=\s*(.+)$", text, flags=re.MULTILINE)
    if not found:
        return None
    try:
        value = ast.literal_eval(found.group(1).strip())
    except (ValueError, SyntaxError):
        return None
    return str(value) if value else None


def machine_details(use_nvidia_smi: bool = True) -> dict[str, Any]:
    """GPU, driver, CUDA and library versions for pytest-benchmark's machine_info; never imports torch."""
    found = gpus_from_driver()
    if found is None and use_nvidia_smi:
        found = gpus_from_nvidia_smi()
    names, driver = found if found is not None else ([], None)
    return {
        "gpu": gpu_summary(names),
        "gpu_count": len(names),
        "gpu_driver": driver,
        "cuda": torch_cuda_version(),
        "torch": package_version("torch"),
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "pytest_sdxl": package_version("pytest-sdxl"),
    }


# Keys whose difference makes two benchmark runs incomparable: another card, driver or software stack.
COMPARED_KEYS = ("gpu", "gpu_driver", "cuda", "torch", "diffusers")


def machine_differences(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    return [
        f"{key} {then.get(key)!r} then, {now.get(key)!r} now" for key in COMPARED_KEYS if now.get(key) != then.get(key)
    ]


def json_number(value: float | None) -> float | str | None:
    """Infinite PSNR (identical images) as the string 'inf': pytest-benchmark's JSON must stay strict."""
    if value is not None and not math.isfinite(value):
        return str(value)
    return value


class VariantBenchmark:
    """Times a warmed variant pipeline with pytest-benchmark and records the notes' figures.

    One call: an untimed pass over the timed prompts with the images checked (PSNR, and a last
    warm-up), then ``rounds`` timed rounds, then one warm pass with the stage timer attached for the
    stage split. A round is one pass over the timed prompts (``prompts[1:]``; one pipeline call per
    prompt, or one for all in batch mode).
    A round's time is the benchmark sample, so every variant of a group is timed on the same images;
    ``extra_info["avg_gen_s"]`` is seconds per image. Every call ends with the device synchronized.
    """

    def __init__(self, benchmark: Any, pipeline: VariantPipeline, state: SessionState, test_name: str) -> None:
        self.benchmark = benchmark
        self.pipeline = pipeline
        self.state = state
        self.test_name = test_name

    def __call__(self, rounds: int | None = None) -> np.ndarray:
        from pytest_sdxl.fixtures import fail_variant
        from pytest_sdxl.plugin_state import release_after_failure

        try:
            return self.measure(rounds or self.state.settings.runs)
        except Exception as error:
            fail_variant(error, self.pipeline.id, "being timed", self.pipeline.device)
        except BaseException as error:  # an interrupt: still let the tensors go
            release_after_failure(error, self.pipeline.device)
            raise

    def measure(self, rounds: int) -> np.ndarray:
        import numpy as np

        from pytest_sdxl.protocol import peak_memory_gb, reset_peak_memory, seeds_for, timed_groups
        from pytest_sdxl.timing import StageTimer, SyncClock

        settings, pipeline = self.state.settings, self.pipeline
        groups = timed_groups(pipeline.composition, settings.prompts, seeds_for(settings))
        images_per_round = sum(len(prompts) for prompts, _ in groups)
        clock = SyncClock(pipeline.device)
        if self.benchmark.group is None:  # a group set with @pytest.mark.benchmark(group=...) stays
            noun = "image" if images_per_round == 1 else "images"
            self.benchmark.group = (
                f"{self.test_name}: {settings.model} {pipeline.size}px, {images_per_round} {noun}/round"
            )
        reset_peak_memory(pipeline.device)
        # An untimed, checked pass first: the images (PSNR) and the timed prompts' last warm-up.
        images = np.concatenate([pipeline.generate(prompts, seeds) for prompts, seeds in groups], axis=0)
        if self.benchmark.disabled:
            return images
        rounds_per_image: list[list[float]] = []

        def one_round() -> None:
            samples = []
            for prompts, seeds in groups:
                started = clock.now()
                pipeline.generate(prompts, seeds, check=False)
                samples.append((clock.now() - started) / len(prompts))
            rounds_per_image.append(samples)

        self.benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=0, iterations=1)
        # Stages from a warm pass after the timed rounds: on the first pass, first-call costs
        # (TorchScript's profiling runs, new shapes, prompt encodings to cache) would land in the split.
        with StageTimer(pipeline.pipe, pipeline.device) as timer:
            for prompts, seeds in groups:
                with timer.generation():
                    pipeline.generate(prompts, seeds, check=False)
            stage_times = timer.read()
        runs = self.run_records(rounds_per_image, stage_times, images, peak_memory_gb(pipeline.device))
        self.state.record_runs(pipeline.id, pipeline.composition.kind, runs)
        self.benchmark.extra_info.update(self.extra_info(runs, images_per_round))
        return images

    def run_records(
        self, rounds: list[list[float]], stage_times: Any, images: np.ndarray, peak: float | None
    ) -> list[RunRecord]:
        import statistics

        from pytest_sdxl.protocol import stages_per_image
        from pytest_sdxl.results import RunRecord

        warm_up = self.warm_up
        stages = stages_per_image(stage_times, len(images))
        psnr = self.psnr(images)
        records = []
        for number, samples in enumerate(rounds, start=1):
            # Load, first generation and so Total exist only for the run that loaded: later runs reuse the pipeline.
            first = number == 1
            generations = statistics.fmean(samples) * len(images)  # seconds per image x images = the round
            records.append(
                RunRecord(
                    run=number,
                    load_s=warm_up.load_s if first else math.nan,
                    init_gen_s=warm_up.init_gen_s if first else math.nan,
                    gen_s=list(samples),
                    avg_gen_s=statistics.fmean(samples),
                    median_gen_s=statistics.median(samples),
                    total_s=warm_up.load_s + warm_up.init_gen_s + generations if first else math.nan,
                    stages=dict(stages),
                    peak_gpu_mem_gb=peak,
                    psnr_db=psnr,
                )
            )
        return records

    @property
    def warm_up(self) -> WarmUp:
        return self.state.warm_ups[self.pipeline.id]

    def psnr(self, images: np.ndarray) -> float | None:
        """PSNR against the baseline's images of the same prompts and seeds (the baseline is its own reference)."""
        from pytest_sdxl.images import psnr
        from pytest_sdxl.variants import BASELINE

        if self.pipeline.id == BASELINE:
            self.state.reference_images = images
        reference = self.state.reference_images
        if reference is None:
            reference = self.state.reference_images = self.baseline_images()
        if reference is None or reference.shape != images.shape:
            return None
        return psnr(reference, images)

    def baseline_images(self) -> np.ndarray | None:
        """The baseline's images, built aside once per session when the baseline is not benchmarked first."""
        from pytest_sdxl.assembly import VariantPipeline
        from pytest_sdxl.protocol import seeds_for
        from pytest_sdxl.variants import compose

        settings = self.state.settings
        baseline = None
        try:
            baseline = VariantPipeline(self.pipeline.components, compose([]), self.pipeline.size, self.pipeline.steps)
            return baseline.generate(settings.prompts[1:], seeds_for(settings)[1:])
        except Exception:  # without a reference the variant is still timed; its PSNR stays empty
            return None
        finally:
            if baseline is not None:
                baseline.close()

    def extra_info(self, runs: list[RunRecord], images_per_round: int) -> dict[str, Any]:
        import statistics

        from pytest_sdxl.results import settings_as_dict

        settings, pipeline, warm_up = self.state.settings, self.pipeline, self.warm_up
        samples = [sample for run in runs for sample in run.gen_s]
        return {
            "variant": pipeline.id,
            "kind": pipeline.composition.kind,
            "model": settings.model,
            "device": str(pipeline.device),
            "dtype": str(pipeline.components.dtype).removeprefix("torch."),
            "image_size": pipeline.size,
            "steps": pipeline.steps,
            "images_per_round": images_per_round,
            "batch": pipeline.composition.is_batch,
            "load_s": warm_up.load_s,
            "components_load_s": warm_up.components_load_s,
            "build_s": warm_up.build_s,
            "init_gen_s": warm_up.init_gen_s,
            "avg_gen_s": statistics.fmean(samples),
            "median_gen_s": statistics.median(samples),
            "stages_ms_per_image": runs[0].stages,
            "peak_gpu_mem_gb": runs[0].peak_gpu_mem_gb,
            "psnr_db": json_number(runs[0].psnr_db),
            "settings": {key: value for key, value in settings_as_dict(settings).items() if key != "prompts"},
            "prompts": len(settings.prompts),
        }
