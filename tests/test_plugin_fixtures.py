"""End-to-end tests of the plugin's fixtures on random:tiny: one build per variant, skips, failures alone.

Child sessions run in-process (pytester) and share the components this process loaded once;
the modules they use are imported here first, since pytester forgets modules a child imports.
"""

from __future__ import annotations

import json

import pytest

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")


pytestmark = pytest.mark.usefixtures("model_code_imported")


def three_prompts(pytester: pytest.Pytester) -> tuple[str, str]:
    """A prompt file with 1 + 2 prompts: shorter child sessions."""
    path = pytester.path / "prompts.txt"
    path.write_text("a red cube\na blue sphere\na green cone\n")
    return "--sdxl-prompts", str(path)


# A child conftest that counts pipeline builds and the pipelines' closing, whatever the plugin does.
COUNTING_CONFTEST = """
import collections, json
from pathlib import Path

import pytest
from pytest_sdxl.variants import assembly

BUILDS = collections.Counter()
SEEN = []
OPEN_AT_BUILD = []


@pytest.fixture(scope="session", autouse=True)
def count_builds():
    original = assembly.build_pipeline

    def counting(components, composition, size, *rest):
        BUILDS[composition.id] += 1
        OPEN_AT_BUILD.append(sum(pipeline.pipe is not None for pipeline in SEEN))
        return original(components, composition, size, *rest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assembly, "build_pipeline", counting)
        yield
    closed = [pipeline.pipe is None for pipeline in SEEN]
    Path("counts.json").write_text(json.dumps({"builds": BUILDS, "closed": closed, "open_at_build": OPEN_AT_BUILD}))


@pytest.fixture
def seen():
    return SEEN
"""

USING_MODULE = """
def test_generate(sdxl_pipeline, sdxl_generate, sdxl_components, seen):
    seen.append(sdxl_pipeline)
    assert sdxl_pipeline.components is sdxl_components
    images = sdxl_generate()
    assert images.shape == (2, 32, 32, 3)


def test_again(sdxl_pipeline, seen):
    assert sdxl_pipeline in seen
"""


def test_a_pipeline_is_built_once_per_variant_per_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makepyfile(test_first=USING_MODULE, test_second=USING_MODULE)
    result = pytester.runpytest(*SMALL, *three_prompts(pytester), "--sdxl-variants", "tiny_vae,baseline,vae_slicing")
    result.assert_outcomes(passed=12)
    counts = json.loads((pytester.path / "counts.json").read_text())
    assert counts["builds"] == {"baseline": 1, "tiny_vae": 1, "vae_slicing": 1}
    # Two modules, two tests each, per variant: the same pipeline object, closed at its end,
    # and closed before the next variant's pipeline is built (one pipeline in memory at a time).
    assert len(counts["closed"]) == 6 and all(counts["closed"])
    assert counts["open_at_build"] == [0, 0, 0]


def test_generation_is_batch_aware(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_calls(sdxl_pipeline, sdxl_generate, sdxl_prompts):
            calls = []
            original = sdxl_pipeline.call
            sdxl_pipeline.call = lambda prompts, generators: calls.append(len(prompts)) or original(prompts, generators)
            try:
                images = sdxl_generate()
            finally:
                del sdxl_pipeline.call
            assert images.shape[0] == len(sdxl_prompts) - 1
            expected = [len(sdxl_prompts) - 1] if sdxl_pipeline.composition.is_batch else [1] * (len(sdxl_prompts) - 1)
            assert calls == expected
        """
    )
    result = pytester.runpytest(*SMALL, *three_prompts(pytester), "--sdxl-variants", "baseline,tiny_vae+batch")
    result.assert_outcomes(passed=2)


def test_an_unavailable_variant_is_skipped_with_its_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_generate(sdxl_generate):\n    sdxl_generate()\n")
    result = pytester.runpytest(
        *SMALL, "-rs", "--sdxl-variants", "upcast_vae,cuda_graph,baseline", "--sdxl-device", "cpu"
    )
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED*upcast_vae only changes a half-precision pipeline; in float32*",
            "SKIPPED*cuda_graph needs a CUDA GPU (device here: cpu)*",
        ]
    )


# Out of memory while building tiny_vae, and on vae_slicing's second generation (after its warm-up).
FAILING_CONFTEST = """
import json
from pathlib import Path

import pytest
import torch
import dataclasses

from pytest_sdxl.variants import assembly

from pytest_sdxl.machine import devices

from pytest_sdxl.variants import registry as variants

FREED = []


@pytest.fixture(scope="session", autouse=True)
def failing_variants():
    def out_of_memory(pipe, context):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    original_call = assembly.VariantPipeline.call
    calls = []

    def second_call_fails(self, prompts, generators):
        if self.id == "vae_slicing":
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("CUDA error: out of memory")
        return original_call(self, prompts, generators)

    original_free = devices.free_memory
    with pytest.MonkeyPatch.context() as patch:
        failing = dataclasses.replace(variants.REGISTRY["tiny_vae"], apply=out_of_memory)
        patch.setitem(variants.REGISTRY, "tiny_vae", failing)
        patch.setattr(assembly.VariantPipeline, "call", second_call_fails)
        patch.setattr(devices, "free_memory", lambda device=None: FREED.append(str(device)) or original_free(device))
        yield
    Path("freed.json").write_text(json.dumps(FREED))
"""


def test_a_variant_out_of_memory_fails_alone_and_the_next_passes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAILING_CONFTEST)
    pytester.makepyfile(test_out_of_memory_isolation="def test_generate(sdxl_generate):\n    sdxl_generate()\n")
    result = pytester.runpytest(
        *SMALL, *three_prompts(pytester), "-v", "--sdxl-variants", "tiny_vae,baseline,vae_slicing,batch"
    )
    result.stdout.fnmatch_lines_random(
        [
            "*test_generate[[]baseline[]] PASSED*",
            "*test_generate[[]tiny_vae[]] ERROR*",
            "*test_generate[[]vae_slicing[]] FAILED*",
            "*test_generate[[]batch[]] PASSED*",
            "*tiny_vae failed building and warming its pipeline: out of memory: CUDA out of memory. Tried to allocate*",
            "*vae_slicing failed generating: out of memory: CUDA error: out of memory*",
        ]
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    # Each failure freed its memory before the next variant was built.
    freed = json.loads((pytester.path / "freed.json").read_text())
    assert len(freed) >= 2
