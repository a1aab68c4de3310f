"""What the ``sdxl_benchmark`` fixture hands out: a warmed variant timed through the measurement core.

pytest-benchmark drives the core's timed loop (its pedantic mode runs the core's rounds, one round
one benchmark sample), so a variant's pytest-benchmark figures, the session's tables and
``--sdxl-report`` come from the same calls the protocol times. The rounds are split into
``--sdxl-runs`` runs of at least ten timed calls each, the unit a run-aware comparison treats as
independent. ``extra_info`` gets the reference protocol's figures, the stage split and the device signals.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from pytest_sdxl.measure.core import PipelineMeasurement
    from pytest_sdxl.plugin.state import SessionState, WarmUp
    from pytest_sdxl.variants.assembly import VariantPipeline


class VariantBenchmark:
    """Times a warmed variant pipeline with pytest-benchmark and records the reference protocol's figures."""

    def __init__(
        self,
        benchmark: Any,
        pipeline: VariantPipeline,
        state: SessionState,
        test_name: str,
        disabled_by_user: bool = True,
    ) -> None:
        self.benchmark = benchmark
        self.pipeline = pipeline
        self.state = state
        self.test_name = test_name
        # --benchmark-disable (one round); pytest-benchmark also disables itself under xdist, where we still time.
        self.disabled_by_user = disabled_by_user

    def __call__(self, runs: int | None = None) -> np.ndarray:
        from pytest_sdxl.plugin.outcomes import fail_variant

        try:
            return self.measure(runs or self.state.settings.runs)
        except BaseException as error:
            fail_variant(error, self.pipeline.id, "being timed", self.pipeline.device)

    def measure(self, runs: int) -> np.ndarray:
        from pytest_sdxl.measure.calls import images_in, seeds_for, side_by_side_reference, timed_groups
        from pytest_sdxl.measure.core import measure_pipeline
        from pytest_sdxl.measure.profiles import measuring_options, timed_budget_s
        from pytest_sdxl.measure.sequential import StopSampling
        from pytest_sdxl.variants.assembly import VariantPipeline

        pipeline = self.pipeline
        # Under a session budget, this variant's share of what is left (``SessionState.measuring_settings``).
        settings = self.state.measuring_settings(pipeline.id, pipeline.device.type)
        groups = timed_groups(pipeline.composition, settings.prompts, seeds_for(settings))
        images_per_round = images_in(groups)
        if self.benchmark.group is None:  # a group set with @pytest.mark.benchmark(group=...) stays
            noun = "image" if images_per_round == 1 else "images"
            self.benchmark.group = (
                f"{self.test_name}: {settings.model} {pipeline.size}px, {images_per_round} {noun}/round"
            )

        def drive(one_round: Any, count: int, before: Any) -> None:
            if self.benchmark.disabled and self.disabled_by_user:  # one round, as pytest-benchmark would run it
                before()
                one_round()
                return
            if self.benchmark.disabled:  # pytest-benchmark switches itself off under xdist; our timings stay on
                for _ in range(count):
                    before()
                    one_round()
                return

            def setup() -> None:  # pytest-benchmark would read a value returned here as the round's arguments
                before()

            # pytest-benchmark times the round only; its setup runs the side-by-side reference's round, and under
            # sequential sampling raises StopSampling before a round the rule does not need. pytest-benchmark keeps
            # the rounds timed so far and marks the benchmark as failed (left out of its JSON): it did not fail.
            try:
                self.benchmark.pedantic(one_round, setup=setup, rounds=count, warmup_rounds=0, iterations=1)
            except StopSampling:
                self.benchmark.has_error = False
                raise

        started = time.perf_counter()
        beside = side_by_side_reference(pipeline.composition)
        reference = (
            None if beside is None else VariantPipeline(pipeline.components, beside, pipeline.size, pipeline.steps)
        )
        try:
            trace_path = None if settings.trace is None else settings.trace / f"{pipeline.id}.json"
            options = measuring_options(settings, runs, pipeline.device.type)
            measured = measure_pipeline(
                pipeline,
                groups,
                dataclasses.replace(options, driver=drive, trace_path=trace_path),
                side_by_side=reference,
                reference_images=self.reference_images() if options.quality else None,
            )
        finally:
            if reference is not None:
                reference.close()
        self.fill_in_warm_up(measured)
        if pipeline.id == "baseline":
            self.state.reference_images = measured.images
            from pytest_sdxl.measure.records import own_reference

            for run in measured.runs:
                own_reference(run)
        # The variant's share of the session's wall clock: its build, first generation and every run. The shared
        # components' load is the session's, once per model, so it is left out (the protocol's load time has it).
        measure_s = self.warm_up.build_s + self.warm_up.init_gen_s + time.perf_counter() - started
        budget_s = timed_budget_s(settings, pipeline.device.type)
        self.state.record_runs(
            pipeline.id, pipeline.composition.kind, measured.runs, measured.note, measure_s, budget_s
        )
        self.benchmark.extra_info.update(self.extra_info(measured, images_per_round))
        # The seconds of timed rounds this variant was given (its share, under a session budget); None: fixed rounds.
        self.benchmark.extra_info["budget_s"] = budget_s
        return measured.images

    @property
    def warm_up(self) -> WarmUp:
        return self.state.warm_ups[self.pipeline.id]

    def fill_in_warm_up(self, measured: PipelineMeasurement) -> None:
        """Load, first generation and so Total exist for the first run only: later runs reuse the pipeline."""
        first = measured.runs[0]
        first.load_s, first.init_gen_s = self.warm_up.load_s, self.warm_up.init_gen_s
        first.total_s = first.load_s + first.init_gen_s + measured.warmup_s + measured.timed_s_per_run[0]

    def reference_images(self) -> np.ndarray | None:
        """The baseline's images of the timed prompts, for PSNR; built aside once when the baseline ran not first."""
        from pytest_sdxl.measure.calls import seeds_for
        from pytest_sdxl.variants.assembly import VariantPipeline
        from pytest_sdxl.variants.registry import compose

        known: np.ndarray | None = self.state.reference_images
        if self.pipeline.id == "baseline" or known is not None:
            return known
        settings = self.state.settings
        baseline = None
        try:
            baseline = VariantPipeline(self.pipeline.components, compose([]), self.pipeline.size, self.pipeline.steps)
            images = baseline.generate(settings.prompts[1:], seeds_for(settings)[1:])
        except Exception:  # without a reference the variant is still timed; its PSNR stays empty
            return None
        finally:
            if baseline is not None:
                baseline.close()
        self.state.reference_images = images
        return images

    def extra_info(self, measured: PipelineMeasurement, images_per_round: int) -> dict[str, Any]:
        from pytest_sdxl.analysis.serving import serving_summary
        from pytest_sdxl.reports.device_signals import device_summary
        from pytest_sdxl.results.records import VariantRecord
        from pytest_sdxl.results.schema import encode_float, settings_as_dict

        settings, pipeline, warm_up = self.state.settings, self.pipeline, self.warm_up
        runs = measured.runs
        samples = [sample for run in runs for sample in run.gen_s]
        return {
            "variant": pipeline.id,
            "kind": pipeline.composition.kind,
            "note": measured.note,
            "model": settings.model,
            "device": str(pipeline.device),
            "dtype": str(pipeline.components.dtype).removeprefix("torch."),
            "image_size": pipeline.size,
            "steps": pipeline.steps,
            "images_per_round": images_per_round,
            "batch": pipeline.composition.is_batch,
            "runs": len(runs),
            "timed_calls_per_run": len(runs[0].gen_s),
            "profile": settings.profile,
            # How many rounds were timed and why they stopped (sequential sampling) or that they were fixed.
            "sampling": measured.sampling,
            "warmup_calls": runs[0].warmup_calls,
            "load_s": warm_up.load_s,
            "components_load_s": warm_up.components_load_s,
            "build_s": warm_up.build_s,
            "init_gen_s": warm_up.init_gen_s,
            "avg_gen_s": statistics.fmean(samples),
            "median_gen_s": statistics.median(samples),
            "min_gen_s": min(samples),
            "reference": runs[0].reference,
            "wall_ratio_per_run": [run.wall_ratio for run in runs if run.reference_gen_s],
            "stages_ms_per_image": runs[0].stages,
            "device_signals": device_summary(runs).as_dict(),
            # Latency percentiles, images/s, J/image and the roofline per stage; None where n/a, with the reason.
            "serving": encode_float(serving_summary(VariantRecord(pipeline.id, pipeline.composition.kind, runs=runs))),
            "peak_gpu_mem_gb": runs[0].peak_gpu_mem_gb,
            # Strict JSON for pytest-benchmark: an infinite PSNR (identical images) goes as the string "inf".
            "psnr_db": encode_float(runs[0].psnr_db),
            "settings": {key: value for key, value in settings_as_dict(settings).items() if key != "prompts"},
            "prompts": len(settings.prompts),
        }
