"""End-to-end tests of the session's verdict when its sdxl benchmarks measured nothing: a non-zero exit status.

Child sessions run in-process (pytester) on random:tiny and share the components this process loaded once.
A CUDA device would let the skipped variants run, so the skip cases need a machine without one.
"""

from __future__ import annotations

import pytest

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
BENCHMARK_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"
PLAIN_TEST = "def test_plain():\n    pass\n"

pytestmark = pytest.mark.usefixtures("model_code_imported")


@pytest.fixture
def without_cuda() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the variants would run")


def prompt_file(pytester: pytest.Pytester, count: int) -> str:
    path = pytester.path / "prompts.txt"
    path.write_text("".join(f"prompt number {index}\n" for index in range(count)))
    return str(path)


@pytest.mark.usefixtures("without_cuda")
def test_every_variant_skipped_ends_with_the_no_tests_status_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST + "\n\n" + PLAIN_TEST)
    result = pytester.runpytest(*SMALL, "--sdxl-variants=cpu_offload")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        ["sdxl: nothing was measured: every variant was skipped (cpu_offload: cpu_offload needs a CUDA GPU*)"]
    )


@pytest.mark.usefixtures("without_cuda")
def test_a_missing_device_skips_each_variant_and_ends_non_zero(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    result = pytester.runpytest(*SMALL, "--sdxl-device=cuda:7", "--sdxl-variants=baseline,tiny_vae")
    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        [
            "sdxl: nothing was measured: every variant was skipped (baseline: device 'cuda:7' was asked for but "
            "no CUDA device is available here; tiny_vae: device 'cuda:7' *)"
        ]
    )


@pytest.mark.usefixtures("without_cuda")
@pytest.mark.parametrize(
    "switch",
    [("--benchmark-skip",), ("--benchmark-disable",), ("-k", "test_plain")],
    ids=["benchmark-skip", "benchmark-disable", "deselected"],
)
def test_benchmarks_switched_off_or_deselected_keep_the_status(
    pytester: pytest.Pytester, switch: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST + "\n\n" + PLAIN_TEST)
    result = pytester.runpytest(*SMALL, "--sdxl-variants=cpu_offload", *switch)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "nothing was measured" not in result.stdout.str()


def test_a_session_without_sdxl_benchmarks_keeps_its_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=PLAIN_TEST + "\n\ndef test_skipped():\n    import pytest\n    pytest.skip('not today')\n"
    )
    result = pytester.runpytest(*SMALL, "--sdxl-variants=cpu_offload")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.usefixtures("without_cuda")
def test_one_measured_variant_is_enough(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    result = pytester.runpytest(
        *SMALL, "--sdxl-variants=baseline,cpu_offload", "--sdxl-runs=1", f"--sdxl-prompts={prompt_file(pytester, 2)}"
    )
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    assert "nothing was measured" not in result.stdout.str()
