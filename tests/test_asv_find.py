"""``asv find``: bisecting a history to the commit that made a benchmark slower, on a scratch repository.

The scratch repository holds the project as it is now in a first commit on ``main``; the branch
``history`` adds four commits on top: two that touch only the README, one that makes only the batch
path slower (a sleep per batch, as in ``test_asv_continuous``), and one more README edit after it.
``asv find main..history`` then searches those four commits on one ratio benchmark through the batch
path. It builds and runs only the commits its bisection visits (here four of four: the ends, the
middle, then the commit after the middle), so the test stays within a few minutes on a CPU.

The command, as a user runs it (README, "Performance history with asv")::

    asv find --show-stderr GOOD..BAD "VariantOverBaseline.track_variant_over_baseline"

GOOD..BAD is a git range (``git log`` syntax): the commits after GOOD up to BAD. The benchmark
name must match one benchmark (a parameterized one runs all its parameters; asv follows the
largest change among them). ``asv find`` looks for the largest increase, ``--invert`` for the
largest decrease, and assumes the change is mostly monotonic over the range.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRATCH_PATHS = ("pyproject.toml", "README.md", "LICENSE", "asv.conf.json", "pytest_sdxl", "benchmarks")
# One ratio benchmark with one parameter: the batch variant over the baseline, which the slower batch
# path moves by about the slowdown (the batch variant's own calls take 1 + SLOWDOWN times as long).
VARIANTS = "baseline,batch"
BENCHMARK = "VariantOverBaseline.track_variant_over_baseline"
SLOWDOWN = 2.0
ASV_TIMEOUT_S = 900

SLOWER_BATCH_PATCH = """

# --- test_asv_find: only the batch path made slower, on purpose ---
import time as _slowdown_clock

_generate_at_full_speed = VariantPipeline.generate


def _generate_with_slower_batch(self, prompts, seeds, check=True):
    started = _slowdown_clock.perf_counter()
    images = _generate_at_full_speed(self, prompts, seeds, check)
    if self.composition.is_batch:
        _slowdown_clock.sleep({slowdown!r} * (_slowdown_clock.perf_counter() - started))
    return images


VariantPipeline.generate = _generate_with_slower_batch
"""


@dataclass
class Scratch:
    root: Path
    home: Path

    @property
    def environment(self) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_SDXL_")}
        environment.update(
            HOME=str(self.home),
            PYTEST_SDXL_MODEL="random:tiny",
            PYTEST_SDXL_DEVICE="cpu",
            PYTEST_SDXL_VARIANTS=VARIANTS,
            GIT_AUTHOR_NAME="asv test",
            GIT_AUTHOR_EMAIL="asv-test@example.invalid",
            GIT_COMMITTER_NAME="asv test",
            GIT_COMMITTER_EMAIL="asv-test@example.invalid",
        )
        return environment

    def git(self, *arguments: str) -> str:
        completed = subprocess.run(
            ["git", *arguments], cwd=self.root, env=self.environment, capture_output=True, text=True, check=True
        )
        return completed.stdout.strip()

    def asv(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asv", *arguments],
            cwd=self.root,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=ASV_TIMEOUT_S,
        )

    def commit_readme_line(self, line: str) -> str:
        with (self.root / "README.md").open("a", encoding="utf-8") as readme:
            readme.write(f"\n{line}\n")
        self.git("commit", "--quiet", "--all", f"--message={line}")
        return self.git("rev-parse", "HEAD")


def project_files() -> list[Path]:
    """The project's files as they are now, tracked or new (never what .gitignore ignores)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *SCRATCH_PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [Path(name) for name in listed.split("\0") if name and (ROOT / name).is_file()]


def make_history(folder: Path) -> tuple[Scratch, list[str]]:
    """``main`` (the project now) and ``history``: doc, doc, slower batch path, doc; the four commits in order."""
    scratch = Scratch(root=folder / "repository", home=folder / "home")
    scratch.home.mkdir(parents=True)
    for relative in project_files():
        target = scratch.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    scratch.git("init", "--quiet", "--initial-branch=main")
    scratch.git("add", "--all")
    scratch.git("commit", "--quiet", "--message=the project as it is")
    scratch.git("checkout", "--quiet", "-b", "history")
    commits = [scratch.commit_readme_line("Documentation only, first."), scratch.commit_readme_line("And second.")]
    assembly = scratch.root / "pytest_sdxl" / "variants" / "assembly.py"
    assert "class VariantPipeline" in assembly.read_text(encoding="utf-8")
    with assembly.open("a", encoding="utf-8") as module:
        module.write(SLOWER_BATCH_PATCH.format(slowdown=SLOWDOWN))
    scratch.git("commit", "--quiet", "--all", "--message=batch path slower")
    commits.append(scratch.git("rev-parse", "HEAD"))
    commits.append(scratch.commit_readme_line("Documentation after the slowdown."))
    scratch.git("checkout", "--quiet", "main")
    return scratch, commits


def test_asv_find_names_the_commit_that_slowed_the_batch_path(tmp_path: Path) -> None:
    scratch, commits = make_history(tmp_path)
    machine = scratch.asv("machine", "--yes", "--machine", "scratch")
    assert machine.returncode == 0, machine.stdout + machine.stderr
    found = scratch.asv("find", "--show-stderr", "main..history", BENCHMARK)
    output = found.stdout + found.stderr
    assert found.returncode == 0, output[-6000:]
    match = re.search(r"Greatest regression found: ([0-9a-f]{8})", output)
    assert match is not None, output[-6000:]
    assert match[1] == commits[2][:8], f"found {match[1]}; the slower commit is {commits[2][:8]}\n{output[-6000:]}"
    # It measured each commit it visited, the slower one among them, and kept the results.
    results = list((scratch.root / ".asv" / "results" / "scratch").glob("*.json"))
    measured = {path.name[:8] for path in results if path.name != "machine.json"}
    assert commits[2][:8] in measured and commits[0][:8] in measured, sorted(measured)
