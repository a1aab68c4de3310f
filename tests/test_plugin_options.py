"""End-to-end tests of the plugin's options, ini keys, environment variables, markers and header.

Each runs a small pytest session with ``pytester`` (in-process); none loads a model.
"""

from __future__ import annotations

import sys

import pytest

from pytest_sdxl.machine.devices import device_type
from pytest_sdxl.variants.registry import REGISTRY, default_selection

# Plugins the child sessions do not need: smaller, faster sessions.
SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")

HELP_BLOCK = """\
SDXL-Turbo benchmarks (pytest-sdxl):
  --sdxl-model=SOURCE   Model source: random:tiny, random:sdxl-turbo, a hub id or a local folder (default: random:tiny; ini sdxl_model, env PYTEST_SDXL_MODEL)
  --sdxl-device=DEVICE  Device: auto (cuda when present, else cpu), cpu, cuda, cuda:N, or one per xdist worker (cuda:0,cuda:1) (default: auto; ini sdxl_device, env PYTEST_SDXL_DEVICE)
  --sdxl-dtype=DTYPE    Precision: auto (float16 on cuda, float32 on cpu), float16, bfloat16 or float32 (default: auto; ini sdxl_dtype, env PYTEST_SDXL_DTYPE)
  --sdxl-size=PIXELS    Image side in pixels, a multiple of 8 from 8 to 4096, or auto (the model's default, 32 on random:tiny) (default: auto; ini sdxl_size, env PYTEST_SDXL_SIZE)
  --sdxl-steps=N        Inference steps per image, 1 to 1000 (default: 1; ini sdxl_steps, env PYTEST_SDXL_STEPS)
  --sdxl-prompts=FILE   File of prompts, one a line (default: five built-in prompts) (ini sdxl_prompts, env PYTEST_SDXL_PROMPTS)
  --sdxl-runs=N         Runs of the protocol, 1 to 100, each from a fresh load, or auto (3 in the reference profile, 2 in gate and full); under pytest: blocks of at least ten timed calls on the one
                        warmed pipeline (default: auto; ini sdxl_runs, env PYTEST_SDXL_RUNS)
  --sdxl-variants=LIST  Variants to run: auto (every one; on a CPU all but those it takes minutes over: compiled, bf16), all (every one), or a comma-separated list, each a name or names joined with +
                        (default: auto) (ini sdxl_variants, env PYTEST_SDXL_VARIANTS)
  --sdxl-profile=NAME   What to measure: gate (the gated signals, rounds stopped once narrow enough; for pull requests), full (every signal, rounds stopped the same way) or reference (the reference
                        protocol's fixed rounds) (default: full; ini sdxl_profile, env PYTEST_SDXL_PROFILE)
  --sdxl-variant-budget=SECONDS
                        Seconds of timed rounds per variant (all its runs) within which gate and full stop sampling: auto (30 on a GPU, 2 on a CPU) or a number; the minimum rounds are always timed
                        (default: auto; ini sdxl_variant_budget, env PYTEST_SDXL_VARIANT_BUDGET)
  --sdxl-session-budget=SECONDS
                        Wall seconds for the whole session's measuring, loads and compiles included, under gate and full: each variant's budget becomes at most the seconds left over the variants left;
                        none or a number; the minimum rounds are always timed, so it can be passed (default: none; ini sdxl_session_budget, env PYTEST_SDXL_SESSION_BUDGET)
  --sdxl-report=DIR     Folder to write results.json, results.md and results.png to (default: none; ini sdxl_report, env PYTEST_SDXL_REPORT)
  --sdxl-trace=DIR      Folder to keep a Chrome trace of one generation per variant in (<variant>.json, opens in Perfetto) (default: none; ini sdxl_trace, env PYTEST_SDXL_TRACE)
  --sdxl-seed=N         Seed of the first prompt's generator; prompt i uses seed + i (default: 0; ini sdxl_seed, env PYTEST_SDXL_SEED)
  --sdxl-tiny-vae=SOURCE
                        Tiny autoencoder weights for tiny_vae: hub id, folder, or random (default: madebyollin/taesdxl; ini sdxl_tiny_vae, env PYTEST_SDXL_TINY_VAE)
  --sdxl-fp16-vae=SOURCE
                        fp16-fix VAE weights for fp16_vae: hub id, folder, or random (default: madebyollin/sdxl-vae-fp16-fix; ini sdxl_fp16_vae, env PYTEST_SDXL_FP16_VAE)
  --sdxl-compile-cache=DIR
                        Folder keeping torch's compiled kernels between sessions: auto (pytest-sdxl/compile in $XDG_CACHE_HOME or ~/.cache), a folder, or off (default: auto; ini sdxl_compile_cache,
                        env PYTEST_SDXL_COMPILE_CACHE)
  --sdxl-lpips-weights=PATH
                        The LPIPS backbone on disk (torchvision's AlexNet checkpoint, or its folder), never downloaded; without it LPIPS is n/a and SSIM and PSNR are still measured (default: none; ini
                        sdxl_lpips_weights, env PYTEST_SDXL_LPIPS_WEIGHTS)
"""  # noqa: E501


def test_help_shows_the_whole_sdxl_group(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = pytester.runpytest(*SMALL, "--help")
    assert result.ret == 0
    lines = result.stdout.lines
    start = lines.index("SDXL-Turbo benchmarks (pytest-sdxl):")
    end = lines.index("", start)
    assert "\n".join(lines[start:end]) + "\n" == HELP_BLOCK
    result.stdout.fnmatch_lines(["*sdxl_model (string):*Model source: random:tiny*"])


def test_help_works_with_a_wrong_setting_in_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_SDXL_STEPS", "zero")
    assert pytester.runpytest(*SMALL, "--help").ret == 0


def test_markers_are_registered_with_their_signatures(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SMALL, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.gpu: the test needs a CUDA GPU; skipped with the reason where torch sees none",
            "@pytest.mark.sdxl_variants(*names): run the test for these variants only*",
        ]
    )


def header_for(pytester: pytest.Pytester, *arguments: str) -> list[str]:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*SMALL, "--collect-only", *arguments)
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.stdout.lines if line.startswith("sdxl")]


@pytest.mark.parametrize(
    ("command_line", "environment", "ini", "expected"),
    [
        ("4", "3", "2", "steps=4"),
        (None, "3", "2", "steps=3"),
        (None, None, "2", "steps=2"),
        (None, None, None, "steps=1"),
    ],
    ids=["command-line-beats-all", "environment-beats-ini", "ini-beats-default", "default"],
)
def test_command_line_beats_environment_beats_ini(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    command_line: str | None,
    environment: str | None,
    ini: str | None,
    expected: str,
) -> None:
    pytester.makeini("[pytest]\n" + (f"sdxl_steps = {ini}\n" if ini else "") + "sdxl_model = example/from-ini\n")
    if environment:
        monkeypatch.setenv("PYTEST_SDXL_STEPS", environment)
    monkeypatch.setenv("PYTEST_SDXL_MODEL", "example/from-environment")
    arguments = ["--sdxl-steps", command_line] if command_line else []
    header = header_for(pytester, *arguments)
    assert f" {expected} " in header[0]
    # The model is set in both the environment and the ini file: the environment wins.
    assert header[0].startswith("sdxl: model=example/from-environment ")
    origin = {"4": "the command line", "3": "environment", "2": "tox.ini"}.get(command_line or environment or ini or "")
    if origin:
        assert f"steps from {origin}" in header[1]


def test_header_names_the_settings_and_the_gpu(pytester: pytest.Pytester) -> None:
    header = header_for(pytester, "--sdxl-variants", "tiny_vae+batch,baseline")
    assert header[0] == (
        "sdxl: model=random:tiny device=auto dtype=auto size=auto steps=1 prompts=5 runs=2 "
        "variants=tiny_vae+batch,baseline profile=full"
    )
    assert header[-1].startswith("sdxl gpu: ")


def test_an_unknown_variant_is_a_usage_error_naming_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*SMALL, "--sdxl-variants", "baseline,tiny_vea")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*pytest-sdxl: command line --sdxl-variants: unknown variant 'tiny_vea'. Did you mean 'tiny_vae'? "
            "Valid variants: baseline, fp16_vae, tiny_vae, *"
        ]
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "PYTEST_SDXL_VARIANTS",
            "tiny_vae+upcast_vae",
            "*environment variable PYTEST_SDXL_VARIANTS: impossible combination*",
        ),
        ("PYTEST_SDXL_SIZE", "100", "*environment variable PYTEST_SDXL_SIZE: 100 must be a multiple of 8*"),
    ],
)
def test_a_bad_environment_value_is_a_usage_error_saying_where(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*SMALL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


EMPTY_VARIANTS = (
    "*: empty list of variants; accepted: auto, all, or a comma-separated list of names * from: baseline, *"
)


@pytest.mark.parametrize(
    ("arguments", "environment", "ini", "where"),
    [
        (["--sdxl-variants="], {}, "", "command line --sdxl-variants"),
        ([], {"PYTEST_SDXL_VARIANTS": ""}, "", "environment variable PYTEST_SDXL_VARIANTS"),
        ([], {}, "[pytest]\nsdxl_variants =\n", "tox.ini key sdxl_variants"),
    ],
    ids=["command-line", "environment", "ini"],
)
def test_an_empty_variant_list_is_a_usage_error_saying_what_is_accepted(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    environment: dict[str, str],
    ini: str,
    where: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if ini:
        pytester.makeini(ini)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*SMALL, *arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*pytest-sdxl: {where}{EMPTY_VARIANTS}"])


def test_unset_variants_mean_auto_and_all_every_variant(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsdxl_steps = 2\n")
    assert " variants=auto" in header_for(pytester)[0]
    assert " variants=all" in header_for(pytester, "--sdxl-variants=all")[0]


def test_a_bad_ini_value_names_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsdxl_runs = 0\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*SMALL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tox.ini key sdxl_runs: 0 must be at least 1*"])


def test_a_gpu_test_is_skipped_with_its_reason_without_cuda(pytester: pytest.Pytester) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the gpu test would run")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu
        def test_on_the_gpu():
            raise AssertionError("must not run without a GPU")

        def test_anywhere():
            pass
        """
    )
    result = pytester.runpytest(*SMALL, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_a_gpu_test*.py:3: gpu test: needs a CUDA GPU, and torch *"])


def test_plugin_import_pulls_in_no_heavy_library(pytester: pytest.Pytester) -> None:
    result = pytester.run(
        sys.executable,
        "-c",
        "import sys, pytest_sdxl.plugin, pytest_sdxl.plugin.fixtures; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy') if m in sys.modules))",
    )
    assert result.ret == 0
    assert result.stdout.lines[-1] == "[]"


def test_a_bad_sdxl_variants_marker_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.sdxl_variants("tiny_vea")
        def test_variant(sdxl_variant):
            pass
        """
    )
    result = pytester.runpytest(*SMALL, "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*sdxl_variants: unknown variant 'tiny_vea'. Did you mean 'tiny_vae'?*"])


def test_variant_ids_and_marker_restriction(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_every_selected(sdxl_variant):
            pass

        @pytest.mark.sdxl_variants("baseline", "batch+tiny_vae", "vae_slicing")
        def test_marked(sdxl_variant):
            pass
        """
    )
    result = pytester.runpytest(*SMALL, "--collect-only", "-q", "--sdxl-variants", "tiny_vae+batch,baseline")
    collected = [line.split("::")[1] for line in result.stdout.lines if "::" in line]
    assert sorted(collected) == [
        "test_every_selected[baseline]",
        "test_every_selected[tiny_vae+batch]",
        "test_marked[baseline]",
        "test_marked[tiny_vae+batch]",
    ]
    # Grouped by variant, baseline first (every other variant's PSNR reference), so each is built once.
    variants = [name.split("[")[1].rstrip("]") for name in collected]
    assert variants == ["baseline", "baseline", "tiny_vae+batch", "tiny_vae+batch"]
    marked = {"test_marked[baseline]", "test_marked[tiny_vae+batch]", "test_marked[vae_slicing]"}
    everything = pytester.runpytest(*SMALL, "--collect-only", "-q", "--sdxl-variants", "all")
    names = {line.split("::")[1] for line in everything.stdout.lines if "::" in line}
    assert names == {f"test_every_selected[{name}]" for name in REGISTRY} | marked
    # Unset (auto): on this device, what the default selection keeps; a CPU names what it leaves out.
    kept, left_out = default_selection(device_type("auto"))
    automatic = pytester.runpytest(*SMALL, "--collect-only", "-q")
    names = {line.split("::")[1] for line in automatic.stdout.lines if "::" in line}
    assert names == {f"test_every_selected[{composition.id}]" for composition in kept} | marked
    if left_out:
        result = pytester.runpytest(*SMALL, "--collect-only")
        result.stdout.fnmatch_lines(["sdxl variants left out on this cpu: *compile_unet* (compiles for minutes)*"])
