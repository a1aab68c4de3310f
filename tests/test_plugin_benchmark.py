"""End-to-end tests of the pytest-benchmark integration on random:tiny: JSON fields, tables, compare-fail.

Child sessions run in-process (pytester) and share the components this process loaded once.
"""

from __future__ import annotations

import json
import math

import pytest

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
BENCHMARK_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"


# Whole plugin sessions that time every round: tens of seconds each on a 2-core CPU.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_code_imported")]


def prompt_file(pytester: pytest.Pytester, count: int) -> str:
    path = pytester.path / "prompts.txt"
    path.write_text("".join(f"prompt number {index}\n" for index in range(count)))
    return str(path)


def test_benchmark_json_holds_the_figures_and_the_machine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST + "\n\ndef test_not_a_benchmark():\n    pass\n")
    result = pytester.runpytest(
        *SMALL,
        "--benchmark-only",
        "--benchmark-json=out.json",
        "--sdxl-variants=tiny_vae,baseline,batch,upcast_vae",
        "--sdxl-runs=2",
        f"--sdxl-prompts={prompt_file(pytester, 3)}",
        "--sdxl-report=report",
    )
    result.assert_outcomes(passed=3, skipped=2)
    document = json.loads((pytester.path / "out.json").read_text())
    machine = document["machine_info"]
    assert {"gpu", "gpu_driver", "cuda", "torch", "diffusers", "transformers"} <= set(machine)
    assert machine["torch"] and machine["diffusers"]
    benchmarks = {bench["param"]: bench for bench in document["benchmarks"]}
    assert set(benchmarks) == {"baseline", "tiny_vae", "batch"}
    groups = {bench["group"] for bench in benchmarks.values()}
    assert groups == {"test_generation: random:tiny 32px, 2 images/round"}
    for variant, bench in benchmarks.items():
        info = bench["extra_info"]
        assert info["variant"] == variant and info["model"] == "random:tiny"
        # --sdxl-runs runs, each of at least ten timed calls: one benchmark round is one pass over the prompts.
        assert info["images_per_round"] == 2 and info["runs"] == 2 and info["timed_calls_per_run"] >= 10
        calls_per_round = 1 if info["batch"] else 2
        # The default profile stops rounds by the interval (measure.sequential): pytest-benchmark's rounds are the
        # rounds the core timed, as many as its sampling line says, and never fewer than a run's ten calls each.
        timed_rounds = int(info["sampling"].split()[0])
        assert bench["stats"]["rounds"] == timed_rounds >= 2 * math.ceil(10 / calls_per_round)
        assert info["timed_calls_per_run"] * 2 >= timed_rounds * calls_per_round
        assert "not_applicable" in info["device_signals"]  # no CUDA kernels on a CPU, and no zeros for them
        for key in ("load_s", "components_load_s", "build_s", "init_gen_s", "avg_gen_s", "median_gen_s"):
            assert info[key] > 0, key
        assert math.isclose(info["load_s"], info["components_load_s"] + info["build_s"])
        assert {"text_encode_ms", "unet_ms", "vae_decode_ms", "other_ms"} <= set(info["stages_ms_per_image"])
        assert "peak_gpu_mem_gb" in info and info["settings"]["runs"] == 2
        serving = info["serving"]  # percentiles from the timed calls; energy n/a with its reason on a CPU
        assert serving["latency"]["p50_s"] > 0 and serving["latency"]["p99_s"] is None
        assert serving["energy_j_per_image"] is None and serving["energy_not_applicable"].startswith("n/a: cpu")
    assert benchmarks["baseline"]["extra_info"]["psnr_db"] == "inf"
    assert benchmarks["batch"]["extra_info"]["psnr_db"] == "inf" or benchmarks["batch"]["extra_info"]["psnr_db"] > 40
    assert isinstance(benchmarks["tiny_vae"]["extra_info"]["psnr_db"], float)
    # The reference protocol's tables in the terminal summary, one column per run, and the skip with its reason.
    result.stdout.fnmatch_lines(
        [
            "*= sdxl: summary and the reference protocol's tables =*",
            "| variant *| kind *| avg gen ms (median) *",
            "- upcast_vae skipped: upcast_vae only changes a half-precision pipeline*",
            "baseline (exact)",
            "| Metric        | Run 1 *| Run 2 *|",
            "|---------------|-*|-*|",
            "| Total Time    | *",
            "| Load Time     | *",
            "| Init Gen Time | *",
            "| Avg Gen Time  | *",
            "sdxl: wrote results.json, results.md, results.png to report",
        ]
    )
    saved = json.loads((pytester.path / "report" / "results.json").read_text())
    assert [variant["variant"] for variant in saved["variants"]] == ["baseline", "tiny_vae", "batch", "upcast_vae"]
    assert [variant["status"] for variant in saved["variants"]] == ["ok", "ok", "ok", "skipped"]


# A variant patched to sleep in every timed generation (the benchmark's rounds generate unchecked).
SLEEPING_CONFTEST = """
import os, time

import pytest
from pytest_sdxl.variants import assembly


@pytest.fixture(scope="session", autouse=True)
def sleeping_tiny_vae():
    seconds = float(os.environ["SLEEP_IN_TINY_VAE"])
    original = assembly.VariantPipeline.generate

    def sleeping(self, prompts, seeds, check=True):
        if self.id == "tiny_vae" and not check:
            time.sleep(seconds)
        return original(self, prompts, seeds, check=check)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assembly.VariantPipeline, "generate", sleeping)
        yield
"""


@pytest.mark.filterwarnings("ignore:Benchmark machine_info is different")
def test_compare_fail_catches_an_injected_slowdown_and_passes_a_rerun(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(SLEEPING_CONFTEST)
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    storage = f"--benchmark-storage=file://{pytester.path / 'storage'}"
    common = (
        *SMALL,
        "--benchmark-only",
        storage,
        "--sdxl-variants=tiny_vae",
        # One run: the sleeping rounds decide compare-fail; how many runs make them is not what is tested.
        "--sdxl-runs=1",
        f"--sdxl-prompts={prompt_file(pytester, 2)}",
    )
    # The sleep sets every round's minimum: a tiny_vae call takes about 40 ms here, so 50 ms of sleep and then
    # 300 ms put the slower session's minimum near four times the reference's, past compare-fail's 100 %, and
    # the rerun fails only if the machine pushes a call's fastest time past 50 ms plus twice the reference's.
    # Each session sleeps in 26 calls: at 0.1 s and 0.6 s the three cost the suite 10 s more, same verdicts.
    monkeypatch.setenv("SLEEP_IN_TINY_VAE", "0.05")
    saved = pytester.runpytest(*common, "--benchmark-save=reference")
    saved.assert_outcomes(passed=1)
    compare = ("--benchmark-compare=0001", "--benchmark-compare-fail=min:100%")

    monkeypatch.setenv("SLEEP_IN_TINY_VAE", "0.3")
    slower = pytester.runpytest(*common, *compare)
    assert slower.ret != 0
    # pytest-benchmark writes its verdict to stderr.
    slower.stderr.fnmatch_lines(
        ["Performance has regressed:", "*test_generation[[]tiny_vae[]] (0001_*) - Field 'min' has failed*"]
    )

    # The same code again passes; a saved run from another card is pointed out.
    reference = next((pytester.path / "storage").rglob("0001_reference.json"))
    document = json.loads(reference.read_text())
    document["machine_info"]["gpu"] = "NVIDIA H100 80GB HBM3"
    reference.write_text(json.dumps(document))
    monkeypatch.setenv("SLEEP_IN_TINY_VAE", "0.05")
    # pytest-benchmark issues it as a warning while configuring: on stderr from the command line.
    with pytest.warns(
        Warning, match=r"sdxl: the compared run comes from another card.*gpu 'NVIDIA H100 80GB HBM3' then"
    ):
        same = pytester.runpytest(*common, *compare)
    assert same.ret == 0, same.stdout.str()
