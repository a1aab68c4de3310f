"""What a user installs: the built wheel in a fresh venv, used from empty folders, with a plugin's variant.

The wheel is built from the project's files as they are now and installed with ``--no-deps`` into a
venv made with ``--system-site-packages``: torch, diffusers, pytest-benchmark and asv come from this
interpreter's site, nothing from the network. A tiny plugin distribution, written here, adds a variant
through a ``pytest11`` entry point's ``pytest_sdxl_variants`` hook. From empty folders the venv then runs
the reference suite with pytest-benchmark (``pytest --pyargs pytest_sdxl.suite``) and, after
``pytest-sdxl asv init`` in a one-commit git repository, a quick asv run; the plugin's variant must be
measured by both.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from scratch_repository import project_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from (pyproject names README.md as the description).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "pytest_sdxl")
PLUGIN_VARIANT = "wheel_plugin_variant"
VARIANTS = f"baseline,{PLUGIN_VARIANT}"
PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "sdxl-wheel-test-plugin"
version = "1.0"

[project.entry-points.pytest11]
sdxl_wheel_test_plugin = "sdxl_wheel_test_plugin"

[tool.setuptools]
py-modules = ["sdxl_wheel_test_plugin"]
"""
PLUGIN_MODULE = f"""
from pytest_sdxl.variants import Variant


def pytest_sdxl_variants():
    return [Variant({PLUGIN_VARIANT!r}, "exact", "a variant from an installed plugin; changes nothing")]
"""
# The asv benchmarks the quick run measures: one generation and one side-by-side ratio per variant.
ASV_SELECTION = (r"Generation\.time_generate_image", r"VariantOverBaseline")
COMMAND_TIMEOUT_S = 900


@dataclass
class Installed:
    """The venv holding the wheel and the plugin, and the environment its commands run in."""

    python: Path
    home: Path
    environment: dict[str, str]

    def run(self, arguments: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            list(arguments), cwd=cwd, env=self.environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        return completed


def output_of(completed: subprocess.CompletedProcess[str]) -> str:
    text = completed.stdout + completed.stderr
    return f"$ {' '.join(completed.args)}\n(exit {completed.returncode})\n{text[-8000:]}"


def check(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, output_of(completed)
    return completed.stdout


def clean_environment(home: Path, venv: Path) -> dict[str, str]:
    """This process's environment without pytest-sdxl's and pytest's own settings, HOME in the scratch folder."""
    # PYTEST_XDIST_*: the fixture runs before tests/conftest.py takes them out of a test's environment,
    # and pytest-benchmark switches itself off in a session that sees them.
    dropped = ("PYTEST_SDXL_", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "VIRTUAL_ENV")
    dropped += ("PYTEST_XDIST_",)
    environment = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    environment.update(
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        GIT_AUTHOR_NAME="wheel test",
        GIT_AUTHOR_EMAIL="wheel-test@example.invalid",
        GIT_COMMITTER_NAME="wheel test",
        GIT_COMMITTER_EMAIL="wheel-test@example.invalid",
    )
    return environment


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    scratch = tmp_path_factory.mktemp("wheel-install")
    source, wheels, venv, home = (scratch / name for name in ("source", "wheels", "venv", "home"))
    home.mkdir()
    for relative in project_files(WHEEL_SOURCES):
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    environment = clean_environment(home, venv)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)]
    check(subprocess.run(build, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S))
    (wheel,) = wheels.glob("pytest_sdxl-*.whl")
    # No pip of its own: the system site's pip installs into the venv it runs in.
    check(
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
            capture_output=True,
            text=True,
        )
    )
    made = Installed(python=venv / "bin" / "python", home=home, environment=environment)
    plugin = scratch / "plugin"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text(PLUGIN_PYPROJECT, encoding="utf-8")
    (plugin / "sdxl_wheel_test_plugin.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    pip = [str(made.python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet"]
    check(made.run([*pip, str(wheel), str(plugin)], cwd=scratch))
    return made


def empty_folder(installed: Installed, name: str) -> Path:
    folder = installed.home.parent / name
    folder.mkdir()
    return folder


def test_the_venv_imports_the_wheel_not_the_checkout(installed: Installed) -> None:
    code = "import pytest_sdxl, sys; print(pytest_sdxl.__file__); print(sys.prefix)"
    location, prefix = check(installed.run([str(installed.python), "-c", code], cwd=installed.home)).split()
    assert Path(location).is_relative_to(prefix) and not Path(location).is_relative_to(ROOT), location


def test_the_reference_suite_runs_from_an_empty_folder_with_the_plugins_variant(installed: Installed) -> None:
    folder = empty_folder(installed, "pytest-project")
    # One prompt to warm up and one timed, in one run: the shortest session that still times each variant.
    prompts = installed.home.parent / "prompts.txt"
    prompts.write_text("a red cube\na blue sphere\n", encoding="utf-8")
    arguments = ["--pyargs", "pytest_sdxl.suite", "--benchmark-only", "--benchmark-json", "benchmark.json"]
    arguments += ["--sdxl-variants", VARIANTS, "--sdxl-runs", "1", "--sdxl-prompts", str(prompts)]
    arguments += ["-p", "no:cacheprovider"]
    completed = installed.run([str(installed.python), "-m", "pytest", *arguments], cwd=folder)
    output = check(completed)
    assert "2 passed" in output, output_of(completed)
    measured = json.loads((folder / "benchmark.json").read_text(encoding="utf-8"))
    names = {benchmark["name"] for benchmark in measured["benchmarks"]}
    assert names == {"test_generation[baseline]", f"test_generation[{PLUGIN_VARIANT}]"}
    for benchmark in measured["benchmarks"]:
        assert "test_benchmark_variants.py::test_generation[" in benchmark["fullname"]
        assert benchmark["stats"]["min"] > 0


def asv_results(folder: Path) -> dict[str, dict[str, object]]:
    """Each benchmark's result row in the one results file of the run, by column name."""
    (machine,) = [path for path in (folder / ".asv" / "results").iterdir() if path.is_dir()]
    (results_file,) = [path for path in machine.glob("*.json") if path.name != "machine.json"]
    data = json.loads(results_file.read_text(encoding="utf-8"))
    # asv leaves out a row's trailing columns that hold nothing.
    return {name: dict(zip(data["result_columns"], row, strict=False)) for name, row in data["results"].items()}


def value_for(row: dict[str, object], variant: str) -> object:
    """The result of one variant in a benchmark parametrized by variant alone."""
    params, results = row["params"], row["result"]
    assert isinstance(params, list) and len(params) == 1 and isinstance(results, list)
    return results[params[0].index(repr(variant))]


def test_asv_init_and_a_quick_run_from_an_empty_folder_measure_the_plugins_variant(installed: Installed) -> None:
    from pytest_sdxl.suite.asv.all_benchmarks import __all__ as suite_classes

    folder = empty_folder(installed, "asv-project")
    check(installed.run([str(installed.python), "-m", "pytest_sdxl", "asv", "init"], cwd=folder))
    for git in (["init", "--quiet", "--initial-branch=main"], ["add", "--all"], ["commit", "--quiet", "-m", "asv"]):
        check(installed.run(["git", *git], cwd=folder))
    asv = [str(installed.python), "-m", "asv"]
    check(installed.run([*asv, "machine", "--yes", "--machine", "wheel-test"], cwd=folder))
    installed.environment["PYTEST_SDXL_VARIANTS"] = VARIANTS
    try:
        selection = [argument for pattern in ASV_SELECTION for argument in ("--bench", pattern)]
        quick = [*asv, "run", "--python=same", "--quick", "--set-commit-hash", "HEAD", "--show-stderr", *selection]
        completed = installed.run(quick, cwd=folder)
    finally:
        del installed.environment["PYTEST_SDXL_VARIANTS"]
    check(completed)
    discovered = json.loads((folder / ".asv" / "results" / "benchmarks.json").read_text(encoding="utf-8"))
    discovered_classes = {name.split(".")[1] for name in discovered if name != "version"}
    assert discovered_classes == set(suite_classes), output_of(completed)
    rows = asv_results(folder)
    generation = rows["bench_sdxl.Generation.time_generate_image"]
    ratio = rows["bench_sdxl.VariantOverBaseline.track_variant_over_baseline"]
    for row, variant in ((generation, "baseline"), (generation, PLUGIN_VARIANT), (ratio, PLUGIN_VARIANT)):
        value = value_for(row, variant)
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (variant, row, output_of(completed))
