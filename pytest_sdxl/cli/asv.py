"""The ``asv init`` command: pytest-sdxl's asv suite set up in the current folder, a user's own repository.

It writes ``asv.conf.json`` from the template shipped in the package (each key explained in a
comment beside it, which asv allows) and a ``benchmarks/`` folder whose ``bench_sdxl.py`` re-exports
the suite (``pytest_sdxl.suite.asv``). It refuses to replace any of the three files without ``--force``.
"""

from __future__ import annotations

import argparse
import os
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_sdxl.errors import SettingsError

TEMPLATE = "asv.conf.json"
BENCHMARKS_INIT = '''"""This repository's asv benchmarks: bench_sdxl.py runs pytest-sdxl's suite."""
'''
BENCH_SDXL = '''"""pytest-sdxl's asv suite (``pytest_sdxl.suite.asv``), re-exported so that asv finds its classes here.

The suite reads PYTEST_SDXL_MODEL, PYTEST_SDXL_VARIANTS and the other PYTEST_SDXL_* variables, and
times the variants that installed plugins add through the ``pytest_sdxl_variants`` hook too.
"""

from pytest_sdxl.suite.asv.all_benchmarks import *  # noqa: F403
'''
# What makes the folder a Python package that asv can build at each commit.
PACKAGE_FILES = ("pyproject.toml", "setup.py")
# A wheel of the commit, installed with its dependencies, then over itself: the version number
# rarely changes between two commits, and --force-reinstall alone would reinstall torch each time.
PACKAGE_BUILD = """    // This folder is a Python package: asv builds a wheel of each commit and installs it, which is
    // how your own code and the variants your plugin adds reach the benchmarks.
    "build_command": ["python -m pip wheel --no-deps -w {build_cache_dir} {build_dir}"],
    "install_command": [
        "in-dir={env_dir} python -m pip install {wheel_file}",
        "in-dir={env_dir} python -m pip install --force-reinstall --no-deps {wheel_file}"
    ],
    "uninstall_command": ["return-code=any python -m pip uninstall -y {project}"],"""
NO_BUILD = """    // This folder held no pyproject.toml or setup.py when this file was written, so nothing of it is
    // built or installed: each commit times the matrix's packages. Once it is a Python package, run
    // `pytest-sdxl asv init --force` again, and asv builds and installs it at each commit.
    "build_command": [],
    "install_command": [],
    "uninstall_command": [],"""
EPILOG = """files written:
  asv.conf.json            asv's configuration, every key explained in a comment beside it:
                           results, environments and pages under .asv/; a matrix that installs
                           this pytest-sdxl and torch; this folder's package built at each commit
                           when it has a pyproject.toml or setup.py
  benchmarks/__init__.py   the benchmark folder asv imports
  benchmarks/bench_sdxl.py the suite: generation time, the reference protocol's metrics and the
                           side-by-side ratios, per variant (PYTEST_SDXL_* variables choose them)

then, in a git repository:
  asv machine --yes && asv run                   a history over the branch's commits
  asv run --python=same --quick --set-commit-hash HEAD
                                                 one quick pass in this environment
  asv continuous main HEAD                       exit status 1 when HEAD got slower"""


def add_command(commands: Any) -> None:
    asv = commands.add_parser("asv", help="Set up pytest-sdxl's asv suite in this folder (your own repository)")
    asv_commands = asv.add_subparsers(dest="asv_command", required=True)
    init = asv_commands.add_parser(
        "init",
        help="Write asv.conf.json and benchmarks/ running pytest-sdxl's asv suite into the current folder",
        description="Write asv.conf.json and a benchmarks/ folder that runs pytest-sdxl's asv suite into "
        "the current folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("--force", action="store_true", help="Replace those files where they exist")
    init.set_defaults(handler=init_command)


def configuration(folder: Path) -> str:
    """The template filled in for this folder: its name, this pytest-sdxl's version, how to build it."""
    from pytest_sdxl import __version__

    templates = resources.files("pytest_sdxl.suite.asv").joinpath("templates")
    template = templates.joinpath(TEMPLATE).read_text(encoding="utf-8")
    is_package = any((folder / name).is_file() for name in PACKAGE_FILES)
    return string.Template(template).substitute(
        project=folder.resolve().name or "project",
        pytest_sdxl_version=__version__,
        build_commands=PACKAGE_BUILD if is_package else NO_BUILD,
    )


def init_command(arguments: argparse.Namespace) -> int:
    """The three files written into the current folder; a usage error naming those in the way without --force."""
    from pytest_sdxl.results.schema import write_atomically

    folder = Path.cwd()
    files = {
        Path(TEMPLATE): configuration(folder),
        Path("benchmarks", "__init__.py"): BENCHMARKS_INIT,
        Path("benchmarks", "bench_sdxl.py"): BENCH_SDXL,
    }
    checked_targets(folder, files)
    # A link, even one that leads nowhere, is in the way as a file is: writing through it is not asked for.
    existing = [str(path) for path in files if os.path.lexists(folder / path)]
    if existing and not arguments.force:
        raise SettingsError(
            f"asv init would replace {', '.join(existing)} in {folder}; pass --force to replace them, "
            "or run it in another folder"
        )
    written: list[str] = []
    try:
        (folder / "benchmarks").mkdir(exist_ok=True)
        # The configuration last: a failure part way leaves no asv.conf.json pointing at a suite not written.
        for path in reversed(files):
            write_atomically(folder / path, files[path])
            written.append(str(path))
    except OSError as error:
        done = f"written before it: {', '.join(written)}" if written else "nothing was written"
        raise SettingsError(
            f"asv init cannot write {error.filename or folder}: {error.strerror or error}; {done}"
        ) from error
    print("written: " + ", ".join(str(path) for path in files))
    print("next: asv machine --yes && asv run --python=same --quick --set-commit-hash HEAD (in a git repository)")
    return 0


def checked_targets(folder: Path, files: Mapping[Path, str]) -> None:
    """Every place init writes, checked before it writes anything: a half-done init is worse than none."""
    from pytest_sdxl.machine.folders import writable_folder

    folders = [str(path) for path in files if (folder / path).is_dir()]
    if folders:
        raise SettingsError(
            f"asv init writes a file at {', '.join(folders)} in {folder}, where a folder is in the way; "
            "move it away, or run it in another folder"
        )
    # A benchmarks that is a file is refused here too; where it does not exist yet, the current folder is tried.
    for place in (folder, folder / "benchmarks"):
        writable_folder(place, "asv init")
