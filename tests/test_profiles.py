"""Profiles (gate, full, reference), the variant budget, the device-aware default variants, the CPU's threads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.machine import devices
from pytest_sdxl.measure.profiles import measuring_options
from pytest_sdxl.options import AUTO_BUDGET_S, OPTIONS_BY_NAME
from pytest_sdxl.settings import Settings, resolve
from pytest_sdxl.variants.registry import all_single_variants, default_selection, left_out_on_cpu, parse


def settings_from(**environment: str) -> Settings:
    return resolve({}, environment, {})


def test_profile_and_budget_have_a_flag_an_ini_key_and_a_variable() -> None:
    profile, budget = OPTIONS_BY_NAME["profile"], OPTIONS_BY_NAME["variant_budget"]
    assert (profile.flag, profile.plugin_flag, profile.ini_key, profile.environment_variable) == (
        "--profile",
        "--sdxl-profile",
        "sdxl_profile",
        "PYTEST_SDXL_PROFILE",
    )
    assert budget.plugin_flag == "--sdxl-variant-budget" and budget.environment_variable == "PYTEST_SDXL_VARIANT_BUDGET"
    defaults = settings_from()
    assert defaults.profile == "full" and defaults.variant_budget is None and defaults.variant_selection == "auto"
    assert settings_from(PYTEST_SDXL_PROFILE="Gate").profile == "gate"
    assert settings_from(PYTEST_SDXL_VARIANT_BUDGET="12.5").budget_for("cpu") == 12.5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PYTEST_SDXL_PROFILE", "fast", r"'fast' is not a profile; accepted: gate .* full .* reference"),
        ("PYTEST_SDXL_VARIANT_BUDGET", "soon", r"'soon' is not a number of seconds; accepted: auto, or seconds"),
        ("PYTEST_SDXL_VARIANT_BUDGET", "0", r"'0' is outside the range; accepted: auto, or seconds from 0.1 to 86400"),
        ("PYTEST_SDXL_VARIANT_BUDGET", "nan", r"'nan' is outside the range"),
    ],
)
def test_a_bad_profile_or_budget_says_what_is_accepted(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"environment variable {name}: {message}"):
        settings_from(**{name: value})


def test_auto_budget_follows_the_device() -> None:
    settings = settings_from()
    assert settings.budget_for("cpu") == AUTO_BUDGET_S["cpu"] < settings.budget_for("cuda") == AUTO_BUDGET_S["cuda"]


def test_auto_leaves_out_on_a_cpu_the_variants_it_takes_minutes_over_and_all_keeps_them() -> None:
    every = all_single_variants()
    kept, left_out = default_selection("cpu")
    names = {composition.id for composition in left_out}
    assert {"compile_unet", "compile_kernels", "compile_regions", "compile_max_autotune", "compile_pipeline"} <= names
    assert "bf16" in names and "baseline" not in names and "batch" not in names
    assert kept + left_out == every or sorted(map(str, kept + left_out)) == sorted(map(str, every))
    assert default_selection("cuda") == (every, [])
    assert default_selection("cpu", every=True) == (every, [])
    assert settings_from(PYTEST_SDXL_VARIANTS="all").default_variants("cpu") == (every, [])
    assert settings_from().default_variants("cpu") == (kept, left_out)
    named = settings_from(PYTEST_SDXL_VARIANTS="compile_unet,baseline")
    assert named.variant_selection == "named"
    assert [item.id for item in named.default_variants("cpu")[0]] == ["compile_unet", "baseline"]
    line = left_out_on_cpu(left_out)
    assert "compile_unet" in line and "(compiles for minutes)" in line and "bf16 (bfloat16 is emulated" in line
    assert parse("tiny_vae+compile_unet").slow_on_cpu == "compiles for minutes"


def test_each_profile_measures_what_it_says() -> None:
    gate = measuring_options(settings_from(PYTEST_SDXL_PROFILE="gate"), 3, "cuda")
    assert gate.sequential and gate.budget_s == AUTO_BUDGET_S["cuda"]
    assert not (gate.split_stages or gate.count_flops or gate.energy or gate.quality)
    full = measuring_options(settings_from(), 3, "cpu", budget_share=0.5)
    assert full.sequential and full.budget_s == AUTO_BUDGET_S["cpu"] / 2
    assert full.split_stages and full.count_flops and full.energy and full.quality
    reference = measuring_options(settings_from(PYTEST_SDXL_PROFILE="reference"), 3, "cuda")
    assert not reference.sequential and reference.budget_s == math.inf and reference.rounds is None
    assert reference.split_stages and reference.quality


def test_one_torch_thread_on_a_cpu_unless_omp_num_threads_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        monkeypatch.setattr(devices, "_threads_chosen", False)
        devices.resolve_device("cpu")
        assert torch.get_num_threads() == 2
        assert devices.threads_in_use() == {"torch_threads": 2, "torch_threads_from": "OMP_NUM_THREADS=2"}
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(devices, "_threads_chosen", False)
        devices.resolve_device("cpu")
        assert torch.get_num_threads() == 1
        assert devices.threads_in_use() == {"torch_threads": 1, "torch_threads_from": "default"}
        # Once a process: a caller's later choice stands.
        torch.set_num_threads(2)
        devices.resolve_device("cpu")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


SUITE = """
def test_generation(sdxl_benchmark):
    assert sdxl_benchmark().ndim == 4
"""


@pytest.mark.slow
def test_pytest_benchmark_rounds_stop_by_the_rule_and_stay_in_its_json(pytester: pytest.Pytester) -> None:
    """pedantic mode's rounds end where the rule stops them; the benchmark is kept, not marked as an error."""
    pytester.makepyfile(test_suite=SUITE)
    output = pytester.path / "bench.json"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--sdxl-variants",
        "cached_embeds",
        "--sdxl-runs",
        "2",
        "--sdxl-profile",
        "gate",
        "--sdxl-variant-budget",
        "0.1",
        "--sdxl-report",
        str(pytester.path / "report"),
        f"--benchmark-json={output}",
    )
    assert result.ret == 0, result.stdout.str()
    benchmarks = {item["extra_info"]["variant"]: item for item in json.loads(output.read_text())["benchmarks"]}
    assert set(benchmarks) == {"cached_embeds"}
    # Beside the baseline, a wall block (three rounds of four calls, ten calls at least) a run, two runs; then the
    # 0.1 s budget is spent: pedantic mode stopped after the sixth of the cap's rounds.
    assert benchmarks["cached_embeds"]["stats"]["rounds"] == 6
    for item in benchmarks.values():
        assert item["extra_info"]["profile"] == "gate"
        assert item["extra_info"]["sampling"].startswith("6 rounds (")
        assert item["extra_info"]["stages_ms_per_image"] == {}  # the gate profile splits no stages
    results = json.loads(Path(pytester.path / "report" / "results.json").read_text())
    assert results["settings"]["profile"] == "gate" and results["settings"]["torch_threads"] >= 1
