"""The asv suite itself: its shape as asv sees it, its settings, the paired ratio, and each class run once.

The suite lives in the package (``pytest_sdxl.suite.asv``); this repository's ``benchmarks/`` re-exports
it. The end-to-end proof (two commits, ``asv continuous``, the published page) is in
``test_asv_continuous.py``, the suite from an installed wheel in ``test_wheel_install.py``; these
are the fast checks under them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.options import PROFILE_RUNS
from pytest_sdxl.suite.asv import bench_generation, bench_protocol, bench_ratios, common
from pytest_sdxl.variants import registry as variants
from pytest_sdxl.variants.registry import REGISTRY, parse

ROOT = Path(__file__).resolve().parents[1]
SUITE_PACKAGE = "pytest_sdxl.suite.asv"

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SUITE_MODULES = (bench_generation, bench_protocol, bench_ratios)
BENCHMARK_PREFIXES = ("time_", "track_", "mem_", "peakmem_")


def suite_classes() -> list[type]:
    return [
        member
        for module in SUITE_MODULES
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__ and benchmark_methods(member)
    ]


def benchmark_methods(cls: type) -> list[str]:
    return [name for name in vars(cls) if name.startswith(BENCHMARK_PREFIXES)]


def asv_environment(home: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_SDXL_")}
    environment["HOME"] = str(home)
    return environment


@pytest.fixture
def suite_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set PYTEST_SDXL_* variables for the suite and forget its cached settings before and after."""

    def apply(**variables: str) -> None:
        for key in [key for key in os.environ if key.startswith("PYTEST_SDXL_")]:
            monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        common.settings.cache_clear()

    yield apply
    common.settings.cache_clear()


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """The suite pins torch to one thread on a CPU; give the rest of the session its threads back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_importing_the_suite_imports_no_torch() -> None:
    code = (
        "import sys; sys.path.insert(0, '.'); "
        "import benchmarks.bench_generation, benchmarks.bench_protocol, benchmarks.bench_ratios; "
        "import pytest_sdxl.suite.asv.all_benchmarks; "
        "print(sorted(name for name in ('torch', 'diffusers', 'transformers') if name in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_this_repositorys_benchmarks_re_export_every_class_of_the_suite() -> None:
    """asv names a benchmark by the module it finds the class in: each thin module keeps its history's names."""
    from pytest_sdxl.suite.asv import all_benchmarks

    code = (
        "import importlib, inspect, sys; sys.path.insert(0, '.'); "
        "names = ('bench_generation', 'bench_protocol', 'bench_ratios'); "
        "print([(name, found.__name__, found.__module__) for name in names "
        "for found in vars(importlib.import_module('benchmarks.' + name)).values() if inspect.isclass(found)])"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    exported = ast.literal_eval(completed.stdout)
    assert sorted(cls for _, cls, _ in exported) == sorted(all_benchmarks.__all__)
    assert all(module == f"{SUITE_PACKAGE}.{name}" for name, _, module in exported), exported


PLUGIN_MODULE = """
from pytest_sdxl.variants import Variant


def pytest_sdxl_variants():
    return [Variant("asv_plugin_variant", "exact", "a plugin's variant the asv suite must see")]
"""


def test_a_plugins_variant_joins_the_suite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The suite loads the pytest_sdxl_variants hook as the command line does (here: a PYTEST_PLUGINS module)."""
    (tmp_path / "sdxl_asv_plugin.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(tmp_path)
    before = dict(REGISTRY)
    try:
        default = suite_under(monkeypatch, PYTEST_SDXL_DEVICE="cpu", PYTEST_PLUGINS="sdxl_asv_plugin")
        assert default.common.suite_variants() == [*common.CPU_VARIANTS, "asv_plugin_variant"]
        ratio = next(cls for cls in default.classes if cls.__name__ == "VariantOverBaseline")
        assert "asv_plugin_variant" in vars(ratio)["params"][0]
        named = suite_under(
            monkeypatch,
            PYTEST_SDXL_DEVICE="cpu",
            PYTEST_PLUGINS="sdxl_asv_plugin",
            PYTEST_SDXL_VARIANTS="baseline,asv_plugin_variant",
        )
        assert named.common.suite_variants() == ["baseline", "asv_plugin_variant"]
    finally:
        variants.unregister([name for name in REGISTRY if name not in before])


@pytest.mark.parametrize("cls", suite_classes(), ids=lambda cls: cls.__name__)
def test_each_class_is_in_numpys_asv_style(cls: type) -> None:
    params = vars(cls)["params"]
    param_names = vars(cls)["param_names"]
    assert len(params) == len(param_names) and all(params), "one non-empty list of values per parameter name"
    assert isinstance(vars(cls)["timeout"], (int, float)), "an explicit timeout"
    uses_cache = "setup_cache" in vars(cls)
    expected = ["self", *(["summaries"] if uses_cache else []), *param_names]
    for name in ["setup", *benchmark_methods(cls)]:
        assert list(inspect.signature(getattr(cls, name)).parameters) == expected, name
    for name in benchmark_methods(cls):
        if name.startswith("track_"):
            assert getattr(cls, name).unit, f"{name} needs a unit"


def test_the_suite_tracks_every_metric_of_the_reference_protocol() -> None:
    tracks = set(benchmark_methods(bench_protocol.ProtocolMetrics))
    for metric in (
        "load_s",
        "init_gen_s",
        "avg_gen_s",
        "text_encode_ms",
        "unet_ms",
        "vae_decode_ms",
        "peak_gpu_mem_gb",
    ):
        assert f"track_{metric}" in tracks


def test_asv_check_passes(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "asv", "check", "-E", "existing:same"],
        cwd=ROOT,
        env=asv_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "No problems found" in completed.stdout


def test_default_variants_are_every_variant_and_the_combinations(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_DEVICE="cuda")
    variants = common.suite_variants()
    assert set(REGISTRY) <= set(variants)
    assert {"tiny_vae+batch", "tiny_vae+cached_embeds"} <= set(variants)
    assert common.batch_bases() == ["baseline", "tiny_vae"]


def test_on_a_cpu_all_is_every_variant_that_can_run_there(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_DEVICE="cpu", PYTEST_SDXL_VARIANTS="all")
    variants = common.suite_variants()
    assert {"baseline", "compile_unet", "tiny_vae+batch", "tiny_vae+cached_embeds"} <= set(variants)
    assert not {name for name, variant in REGISTRY.items() if variant.needs_cuda} & set(variants)
    assert len(variants) < len(REGISTRY)


def test_on_a_cpu_the_default_is_a_small_set_that_compiles_nothing(suite_environment: Callable[..., None]) -> None:
    """What keeps the quick run on the tiny model within minutes on 2 cores: no compiled or traced UNet.

    A compiled or traced variant (``warmup_calls`` above one) compiles again in every benchmark
    process and every protocol run; the default set still walks every path the ratios watch.
    """
    suite_environment(PYTEST_SDXL_DEVICE="cpu")
    variants = common.suite_variants()
    assert variants == list(common.CPU_VARIANTS)
    assert all(parse(variant).warmup_calls == 1 for variant in variants)
    assert not {variant for variant in variants if parse(variant).unmet_requirements("cpu", "float32")}
    assert {"baseline", "batch", "tiny_vae", "cached_embeds"} <= set(variants)
    assert common.batch_bases() == ["baseline", "tiny_vae"]


@dataclass
class ImportedSuite:
    """The suite's classes and shared state as asv sees them when it imports the suite."""

    common: Any
    classes: list[type]


def suite_under(monkeypatch: pytest.MonkeyPatch, **variables: str) -> ImportedSuite:
    """A fresh import of the suite under these variables: asv reads ``params`` when it imports a class.

    The modules imported before are put back afterwards, so that the rest of the session keeps them.
    """
    for key in [key for key in os.environ if key.startswith("PYTEST_SDXL_")]:
        monkeypatch.delenv(key)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    package = sys.modules[SUITE_PACKAGE]
    before = {name: module for name, module in sys.modules.items() if name.startswith(f"{SUITE_PACKAGE}.")}
    for name in before:
        # Both: ``from pytest_sdxl.suite.asv import common`` takes the package's attribute when it has one.
        del sys.modules[name]
        delattr(package, name.rsplit(".", 1)[1])
    try:
        modules = [importlib.import_module(f"{SUITE_PACKAGE}.{name}") for name in ("bench_generation", "bench_ratios")]
        classes = [
            member
            for module in modules
            for _, member in inspect.getmembers(module, inspect.isclass)
            if member.__module__ == module.__name__ and benchmark_methods(member)
        ]
        return ImportedSuite(common=sys.modules[f"{SUITE_PACKAGE}.common"], classes=classes)
    finally:
        for name in [name for name in sys.modules if name.startswith(f"{SUITE_PACKAGE}.")]:
            del sys.modules[name]
        sys.modules.update(before)
        for name, module in before.items():
            setattr(package, name.rsplit(".", 1)[1], module)


# Classes whose setup skips on a CPU (no kernel time there) before any pipeline is built.
GPU_ONLY = ("HostNormalizedBatchOverOneByOne",)


def pipeline_processes(suite: ImportedSuite) -> int:
    """Benchmark processes of a quick run that build pipelines: one per parameter combination and method.

    ProtocolMetrics builds its pipelines once, in ``setup_cache``; its ``track_*`` methods only read.
    """
    total = 0
    for cls in suite.classes:
        if cls.__name__ in GPU_ONLY and suite.common.device_type_without_torch() != "cuda":
            continue  # its setup raises NotImplementedError before building anything: asv skips it
        params: list[list[Any]] = vars(cls)["params"]
        total += len(benchmark_methods(cls)) * math.prod(len(values) for values in params)
    return total


def test_a_quick_cpu_run_on_the_tiny_model_builds_few_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = suite_under(monkeypatch, PYTEST_SDXL_DEVICE="cpu")
    # 5 generations, 4 batch calls, 4 batch ratios and 4 variant ratios, and one protocol run a variant
    # in setup_cache; with every variant a CPU can run (PYTEST_SDXL_VARIANTS=all) 43, compiles included.
    assert pipeline_processes(cpu) == 17
    assert len(cpu.common.suite_variants()) * cpu.common.protocol_settings().runs == 5
    everything = suite_under(monkeypatch, PYTEST_SDXL_DEVICE="cpu", PYTEST_SDXL_VARIANTS="all")
    assert pipeline_processes(everything) > 2 * pipeline_processes(cpu)
    gpu = suite_under(monkeypatch, PYTEST_SDXL_DEVICE="cuda")
    assert set(REGISTRY) <= set(gpu.common.suite_variants())


def test_shorter_ratios_and_one_protocol_run_only_for_the_tiny_model_on_a_cpu(
    suite_environment: Callable[..., None],
) -> None:
    suite_environment(PYTEST_SDXL_DEVICE="cpu", PYTEST_SDXL_MODEL="random:tiny")
    assert common.ratio_round_limits() == {"min_rounds": common.TINY_CPU_RATIO_ROUNDS, "min_seconds": 1.0}
    assert common.protocol_settings().runs == common.TINY_CPU_PROTOCOL_RUNS == 1
    suite_environment(PYTEST_SDXL_DEVICE="cpu", PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_RUNS="3")
    assert common.protocol_settings().runs == 3
    # On a GPU, and for a full-size model anywhere, the measurement core's 30 rounds and 5 s stand.
    for device, model in (("cuda", "random:tiny"), ("cuda", "random:sdxl-turbo"), ("cpu", "random:sdxl-turbo")):
        suite_environment(PYTEST_SDXL_DEVICE=device, PYTEST_SDXL_MODEL=model)
        assert common.ratio_round_limits() == {}
        assert common.protocol_settings().runs == PROFILE_RUNS["full"]  # --runs auto under the default profile


def test_variants_and_model_follow_the_environment(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_VARIANTS="batch+tiny_vae,cached_embeds", PYTEST_SDXL_MODEL="random:sdxl-turbo")
    assert common.suite_variants() == ["tiny_vae+batch", "cached_embeds"]
    assert common.batch_variants() == ["tiny_vae+batch"]
    assert common.batch_bases() == ["tiny_vae"]
    assert common.settings().model == "random:sdxl-turbo"


def test_a_bad_variant_in_the_environment_says_what_is_accepted(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_VARIANTS="tiny_vea")
    with pytest.raises(SettingsError, match=r"PYTEST_SDXL_VARIANTS.*tiny_vae"):
        common.suite_variants()


@pytest.fixture
def two_ratio_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two alternating rounds a ratio: these tests check what a ratio is made of, not how many rounds make it."""
    monkeypatch.setattr(common, "ratio_round_limits", lambda: {"min_rounds": 2, "min_seconds": 0.0})


@pytest.mark.usefixtures("torch_threads", "two_ratio_rounds")
def test_ratio_classes_measure_on_a_cpu_and_skip_what_cannot_run(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_DEVICE="cpu")
    batch = bench_ratios.BatchOverOneByOne()
    batch.setup("baseline", 2)
    try:
        value = batch.track_batch_over_one_by_one("baseline", 2)
    finally:
        batch.teardown("baseline", 2)
    assert math.isfinite(value) and value > 0
    assert batch.batched.composition.id == "batch" and batch.one_by_one.composition.id == "baseline"
    with pytest.raises(NotImplementedError, match="CUDA"):
        bench_ratios.VariantOverBaseline().setup("cpu_offload")


def test_the_host_normalized_ratio_is_skipped_on_a_cpu_with_its_reason(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_DEVICE="cpu")
    with pytest.raises(NotImplementedError, match="needs a CUDA GPU's kernel time"):
        bench_ratios.HostNormalizedBatchOverOneByOne().setup("baseline", 2)


@pytest.mark.usefixtures("torch_threads", "two_ratio_rounds")
def test_the_host_normalized_ratio_splits_each_side_by_its_own_kernel_time(
    suite_environment: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sdxl.measure import device_signals
    from pytest_sdxl.results.records import DeviceSignals

    suite_environment(PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_DEVICE="cpu")
    batched, one_by_one = common.pipeline("batch", warm_prompts=2), common.pipeline("baseline")
    prompts, seeds = common.prompts_and_seeds(2)
    try:
        with pytest.raises(NotImplementedError, match="no CUDA kernels"):
            common.paired_host_normalized_ratio(batched, one_by_one, prompts, seeds)
        # A GPU's profiled pass, faked: a kernel time per image for each side, told apart by its pipeline.
        profiled: list[str] = []

        def fake_signals(pipe: object, calls: list[object], device: object) -> DeviceSignals:
            side = "batch" if pipe is batched.pipe else "baseline"
            profiled.append(side)
            return DeviceSignals(kernel_ms=[1e-6] * 3)  # a nanosecond: the GPU never holds the host up

        monkeypatch.setattr(device_signals, "kernel_signals", fake_signals)
        value = common.paired_host_normalized_ratio(batched, one_by_one, prompts, seeds)
    finally:
        common.close(batched, one_by_one)
    assert profiled == ["batch", "baseline"]
    # With kernel times near zero, all of each side is waiting: the value is the wall ratio restated
    # at a host speed where the reference takes twice its (tiny) kernel time, around 1/2 times the plain ratio.
    assert math.isfinite(value) and 0 < value < 5


@pytest.mark.usefixtures("torch_threads")
def test_generation_classes_generate_what_they_time(suite_environment: Callable[..., None]) -> None:
    suite_environment(PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_DEVICE="cpu")
    batch = bench_generation.BatchGeneration()
    batch.setup("batch", 2)
    assert batch.pipeline.composition.is_batch and len(batch.prompts) == 2
    batch.time_generate_batch("batch", 2)
    batch.teardown("batch", 2)
    with pytest.raises(NotImplementedError, match="CUDA"):
        bench_generation.Generation().setup("cuda_graph")


@pytest.mark.usefixtures("torch_threads")
def test_protocol_metrics_read_one_protocol_run_per_variant(suite_environment: Callable[..., None]) -> None:
    from asv_runner.benchmarks.mark import SkipNotImplemented

    suite_environment(PYTEST_SDXL_MODEL="random:tiny", PYTEST_SDXL_DEVICE="cpu", PYTEST_SDXL_RUNS="1")
    summaries = common.protocol_summaries(["baseline", "cpu_offload"])
    metrics = bench_protocol.ProtocolMetrics()
    metrics.setup(summaries, "baseline")
    gpu_only = {"track_peak_gpu_mem_gb", "track_kernel_ms", "track_kernel_launches", "track_gpu_busy_fraction"}
    gpu_only.add("track_achieved_tflops")
    for name in benchmark_methods(bench_protocol.ProtocolMetrics):
        if name in gpu_only:  # on a CPU these say why they do not apply instead of reporting zeros
            with pytest.raises(SkipNotImplemented, match=r"cpu|GPU"):
                getattr(metrics, name)(summaries, "baseline")
            continue
        value = getattr(metrics, name)(summaries, "baseline")
        assert math.isfinite(value) and value > 0, name
    assert summaries["cpu_offload"]["status"] == "skipped"
    with pytest.raises(NotImplementedError, match="CUDA"):
        metrics.setup(summaries, "cpu_offload")
    with pytest.raises(RuntimeError, match="out of memory"):
        metrics.setup({"tome": {"status": "failed", "reason": "run 1: out of memory"}}, "tome")
    with pytest.raises(NotImplementedError, match="not measured"):
        metrics.setup(summaries, "tiny_vae")
