"""The fixtures pytest-sdxl hands to tests: settings, components, variants, warmed pipelines, generation.

Registered by the plugin in ``pytest_configure``. Nothing heavy is imported here: torch and
diffusers come in when a fixture that needs them is first set up.

Scopes: one set of components per session (shared by every variant); one pipeline per variant,
built and warmed once and torn down, with its GPU memory freed, before the next variant's is
built (pytest groups tests by session-scoped parameters, so each variant is built once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sdxl.plugin.session import state_of

if TYPE_CHECKING:
    import numpy as np

    from pytest_sdxl.pipelines.sources import Components
    from pytest_sdxl.plugin.state import SessionState
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.assembly import VariantPipeline
    from pytest_sdxl.variants.registry import Composition


@pytest.fixture(scope="session")
def sdxl_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's effective pytest-sdxl settings (command line > environment > ini > default)."""
    return state_of(pytestconfig).settings


@pytest.fixture(scope="session")
def sdxl_components(sdxl_settings: Settings) -> Components:
    """The model's components, loaded once per (source, device, dtype) and shared by every variant."""
    from pytest_sdxl.errors import SettingsError, VariantUnavailable
    from pytest_sdxl.machine.compile_cache import activate
    from pytest_sdxl.pipelines.sources import components_for

    try:
        # Before any variant is built, so that every compile of the session reads and fills the folder.
        activate(sdxl_settings.compile_cache)
    except SettingsError as error:
        raise pytest.UsageError(f"pytest-sdxl: {error}") from None
    try:
        return components_for(sdxl_settings)
    except VariantUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def sdxl_variant(request: pytest.FixtureRequest) -> Composition:
    """The variant of this test: parametrized over ``--sdxl-variants`` or the test's ``sdxl_variants`` marker."""
    composition: Composition = request.param
    return composition


@pytest.fixture(scope="session")
def sdxl_prompts(sdxl_settings: Settings) -> tuple[str, ...]:
    """The prompts: the first warms the pipeline up, the others are timed."""
    return sdxl_settings.prompts


@pytest.fixture(scope="session")
def sdxl_pipeline(
    pytestconfig: pytest.Config, sdxl_components: Components, sdxl_variant: Composition
) -> Iterator[VariantPipeline]:
    """The warmed pipeline of this test's variant, built once per session and closed after its last test."""
    state = state_of(pytestconfig)
    pipeline = warm_pipeline(state, sdxl_components, sdxl_variant)
    try:
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture
def sdxl_generate(pytestconfig: pytest.Config, sdxl_pipeline: VariantPipeline) -> Generation:
    """Call it for one GPU-synchronized generation of the timed prompts (one call in batch mode); returns images."""
    return Generation(sdxl_pipeline, state_of(pytestconfig).settings)


@pytest.fixture
def sdxl_benchmark(
    request: pytest.FixtureRequest, benchmark: Any, sdxl_pipeline: VariantPipeline
) -> Callable[..., np.ndarray]:
    """Call it to time this variant with pytest-benchmark (``--sdxl-runs`` rounds over the timed prompts)."""
    from pytest_sdxl.plugin.benchmark import VariantBenchmark

    name = getattr(request.node, "originalname", request.node.name)
    config = request.config
    disabled = bool(config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))
    return VariantBenchmark(benchmark, sdxl_pipeline, state_of(config), name, disabled_by_user=disabled)


def warm_pipeline(state: SessionState, components: Components, composition: Composition) -> VariantPipeline:
    """Build a variant's pipeline and generate the first prompt once (the protocol's load and first generation).

    A variant that cannot run here is skipped with its reason; one that fails (out of memory, a
    bad image) fails with a one-line reason after its memory is freed.
    """
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.machine.compile_cache import CacheProbe
    from pytest_sdxl.measure.calls import seeds_for
    from pytest_sdxl.measure.timing import SyncClock
    from pytest_sdxl.pipelines.sources import image_size_for
    from pytest_sdxl.plugin.outcomes import fail_variant, skip_variant
    from pytest_sdxl.plugin.state import WarmUp
    from pytest_sdxl.variants.assembly import VariantPipeline

    settings = state.settings
    device = components.device
    unmet = composition.unmet_requirements(device.type, str(components.dtype).removeprefix("torch."))
    if unmet:
        skip_variant(state, composition, "; ".join(unmet))
    size = image_size_for(settings, components)
    state.image_size = size
    from pytest_sdxl.machine.devices import threads_in_use

    # The components' device was resolved, so the CPU's thread default is in place: the threads are recorded.
    state.resolved = {
        "resolved_device": str(device),
        "resolved_dtype": str(components.dtype).removeprefix("torch."),
        **threads_in_use(),
    }
    clock = SyncClock(device)
    pipeline = None
    probe = CacheProbe()
    try:
        started = clock.now()
        share_s = state.session_share_s(composition.id)
        pipeline = VariantPipeline(components, composition, size, settings.steps, share_s)
        built = clock.now()
        probe.start()
        pipeline.generate(settings.prompts[:1], seeds_for(settings)[:1])
        warmed = clock.now()
    except Exception as error:
        if pipeline is not None:
            pipeline.close()
        pipeline = None
        if isinstance(error, VariantUnavailable):
            skip_variant(state, composition, str(error))
        fail_variant(error, composition.id, "building and warming its pipeline", device)
    state.warm_ups[composition.id] = WarmUp(
        variant=composition.id,
        components_load_s=components.load_seconds,
        build_s=built - started,
        init_gen_s=warmed - built,
        compile_cache=probe.stop().describe(),
    )
    return pipeline


class Generation:
    """One GPU-synchronized generation on a warmed pipeline, batch-aware (see ``VariantPipeline.generate``)."""

    def __init__(self, pipeline: VariantPipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    @property
    def prompts(self) -> tuple[str, ...]:
        """The timed prompts: every prompt after the first, which warmed the pipeline up."""
        return self.settings.prompts[1:]

    def seeds_for(self, prompts: Sequence[str]) -> list[int]:
        """Prompt i of the settings uses seed + i; other prompts use seed + their position in the call."""
        known = {prompt: self.settings.seed + index for index, prompt in enumerate(self.settings.prompts)}
        return [known.get(prompt, self.settings.seed + index) for index, prompt in enumerate(prompts)]

    def __call__(
        self, prompts: Sequence[str] | None = None, seeds: Sequence[int] | None = None, check: bool = True
    ) -> np.ndarray:
        chosen = list(self.prompts if prompts is None else prompts)
        chosen_seeds = list(self.seeds_for(chosen) if seeds is None else seeds)
        try:
            return self.pipeline.generate(chosen, chosen_seeds, check=check)
        except Exception as error:
            from pytest_sdxl.plugin.outcomes import fail_variant

            fail_variant(error, self.pipeline.id, "generating", self.pipeline.device)
