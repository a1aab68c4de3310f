"""The pytest_sdxl_variants hook: a conftest adds a variant that is listed, composed and run (pytest and the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sdxl.cli import main as cli
from pytest_sdxl.errors import VariantSpecError
from pytest_sdxl.variants import registry as variants
from pytest_sdxl.variants.registry import REGISTRY, Variant, parse

SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
# The variant writes a file each time it is applied, so the tests see that its own code ran.
USER_CONFTEST = """
from pathlib import Path

from pytest_sdxl.variants import Variant

APPLIED = Path(__file__).parent / "applied.txt"


def halve_vae_scaling(pipe, context):
    with APPLIED.open("a") as file:
        file.write(type(pipe.vae).__name__ + "\\n")


def pytest_sdxl_variants():
    return [
        Variant(
            "user_marker",
            "exact",
            "a user's variant from a conftest",
            apply=halve_vae_scaling,
            conflicts=("cached_embeds",),
        )
    ]
"""
BENCHMARK_TEST = "def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n"

pytestmark = pytest.mark.usefixtures("model_code_imported")


@pytest.fixture
def registry_restored() -> Iterator[None]:
    """The command line registers plugin variants for good; in this test process they must go again."""
    before = dict(REGISTRY)
    yield
    variants.unregister([name for name in REGISTRY if name not in before])


def prompt_file(folder: Path, count: int) -> str:
    path = folder / "prompts.txt"
    path.write_text("".join(f"prompt number {index}\n" for index in range(count)))
    return str(path)


def test_a_conftest_variant_runs_through_benchmark_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    result = pytester.runpytest(
        *SMALL,
        "--benchmark-only",
        "--benchmark-json=out.json",
        "--sdxl-variants=baseline,tiny_vae+user_marker",
        "--sdxl-runs=1",
        f"--sdxl-prompts={prompt_file(pytester.path, 2)}",
    )
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "out.json").read_text())
    assert {bench["param"] for bench in document["benchmarks"]} == {"baseline", "tiny_vae+user_marker"}
    user = next(bench for bench in document["benchmarks"] if bench["param"] == "tiny_vae+user_marker")
    assert user["extra_info"]["variant"] == "tiny_vae+user_marker" and user["stats"]["median"] > 0
    # Applied once, after tiny_vae (plugin variants come after the built-in ones).
    assert (pytester.path / "applied.txt").read_text().splitlines() == ["AutoencoderTiny"]
    # The session removed its plugin variant again when it ended.
    assert "user_marker" not in REGISTRY


def test_a_conftest_variant_conflict_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_suite=BENCHMARK_TEST)
    result = pytester.runpytest(*SMALL, "--sdxl-variants=user_marker+cached_embeds")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*impossible combination: user_marker and cached_embeds cannot be combined*"])


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ('[Variant("tiny_vae", "exact", "again")]', "*variant named 'tiny_vae', but pytest-sdxl's built-in*"),
        ('["not_a_variant"]', "*returned a bad variant: 'not_a_variant' is a str, not a pytest_sdxl.variants.Variant*"),
        ('[Variant("Bad-Name", "fast", "x")]', "*name 'Bad-Name' is not lower snake_case*kind 'fast' is not one of*"),
        ('[Variant("mine", "exact", "x", conflicts=("nothing",))]', "*names unknown variants [[]'nothing'[]]*"),
        ('"mine"', "*must return a list of Variant objects, got 'mine'*"),
    ],
)
def test_a_bad_plugin_variant_is_a_clear_usage_error(pytester: pytest.Pytester, returned: str, message: str) -> None:
    pytester.makeconftest(
        f"from pytest_sdxl.variants import Variant\n\ndef pytest_sdxl_variants():\n    return {returned}\n"
    )
    pytester.makepyfile(test_suite="def test_nothing():\n    pass\n")
    result = pytester.runpytest(*SMALL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-sdxl: *conftest*" + message.lstrip("*")])
    assert "mine" not in REGISTRY and "Bad-Name" not in REGISTRY


def test_two_plugins_with_one_name_are_refused_together(registry_restored: None) -> None:
    variants.register([Variant("twice", "exact", "first")], "plugin one")
    with pytest.raises(VariantSpecError, match="plugin two returned a variant named 'twice', but plugin one already"):
        variants.register([Variant("other", "exact", "x"), Variant("twice", "exact", "second")], "plugin two")
    # All or none: the valid one offered beside the duplicate was not added either.
    assert "other" not in REGISTRY and REGISTRY["twice"].summary == "first"


def test_cli_lists_a_conftest_variant_and_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry_restored: None
) -> None:
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    assert cli.main(["variants", "--device", "cpu", "--conftest", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if line.startswith("user_marker"))
    assert line.split()[1:3] == ["exact", "yes"] and line.endswith("a user's variant from a conftest")
    report = tmp_path / "report"
    arguments = ["run", "--conftest", str(tmp_path / "conftest.py"), "--quiet", "--model", "random:tiny"]
    arguments += ["--variants", "user_marker+tiny_vae", "--runs", "1", "--report", str(report)]
    arguments += ["--prompts", prompt_file(tmp_path, 2)]
    assert cli.main(arguments) == 0
    results = json.loads((report / "results.json").read_text())
    record = next(item for item in results["variants"] if item["variant"] == "tiny_vae+user_marker")
    assert record["runs"] and record["status"] != "failed"
    assert (tmp_path / "applied.txt").read_text().splitlines()[0] == "AutoencoderTiny"


def test_cli_unknown_variant_lists_the_plugin_variants(tmp_path: Path, registry_restored: None) -> None:
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    with pytest.raises(VariantSpecError) as error:
        cli.load_plugin_variants(cli.build_parser().parse_args(["variants", "--conftest", str(tmp_path)]))
        parse("user_markr")
    assert "Did you mean 'user_marker'?" in str(error.value) and "batch, user_marker" in str(error.value)


def test_cli_refuses_a_missing_conftest_and_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["variants", "--conftest", "/nowhere/conftest.py"]) == cli.USAGE_ERROR
    assert "--conftest '/nowhere/conftest.py': no such file" in capsys.readouterr().err
    assert cli.main(["variants", "-p", "no_such_module_for_sdxl"]) == cli.USAGE_ERROR
    assert "plugin module 'no_such_module_for_sdxl' could not be imported" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def pytest_sdxl_variants(:\n", "importing it raised SyntaxError: invalid syntax ({file}, line 1)"),
        ("import no_such_module_for_sdxl\n", "importing it raised ModuleNotFoundError: No module named"),
        (
            "def pytest_sdxl_variants():\n    raise RuntimeError('boom')\n",
            "pytest_sdxl_variants raised RuntimeError: boom ({file}, line 2)",
        ),
    ],
    ids=["syntax error", "failing import", "raising hook"],
)
def test_a_broken_conftest_is_a_usage_error_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    conftest = tmp_path / "conftest.py"
    conftest.write_text(source)
    assert cli.main(["variants", "--conftest", str(conftest)]) == cli.USAGE_ERROR
    error = capsys.readouterr().err
    assert message.format(file=conftest) in error and "Traceback" not in error


def test_a_raising_hook_under_pytest_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("def pytest_sdxl_variants():\n    raise RuntimeError('boom')\n")
    pytester.makepyfile(test_suite="def test_nothing():\n    pass\n")
    result = pytester.runpytest(*SMALL)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-sdxl: plugin *conftest*: pytest_sdxl_variants raised RuntimeError: boom*"])


def test_the_module_entry_point_lists_a_plugin_module_variant(tmp_path: Path) -> None:
    (tmp_path / "my_sdxl_variants.py").write_text(USER_CONFTEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest_sdxl", "variants", "--device", "cpu", "-p", "my_sdxl_variants"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{Path(__file__).parents[1]}"},
    )
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("user_marker ") for line in result.stdout.splitlines())
