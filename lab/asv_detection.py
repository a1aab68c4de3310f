"""asv's detection rate on a GPU: a commit whose batch path is 5 % slower, and an unchanged one.

Usage: python lab/asv_detection.py --trials 3 --out STEM        (on a GPU machine, wheels installed)
       python lab/asv_detection.py --merge A.json B.json --out STEM   (trials of several lanes added up)

A scratch repository holds ``main`` (the project as it is in this checkout), ``unchanged`` (a README
edit) and ``slower-batch`` (every batch call sleeps ``--slowdown`` of its own time). Each trial runs
one side-by-side ratio of the asv suite (``--ratio plain``: ``BatchOverOneByOne``; ``--ratio
host-normalized``: ``HostNormalizedBatchOverOneByOne``, GPU only) of ``--variant`` at 4 prompts with
``asv run --python=same`` at each of the three commits, each benchmark in a fresh process as asv runs
it, then judges ``asv compare --factor FACTOR main <commit>`` as ``asv continuous`` does: a ``+`` row
is a regression. ``--python=same`` with the scratch checkout first on ASV_PYTHONPATH (asv's PYTHONPATH
for benchmark processes) runs each commit's own code without reinstalling the runner's CUDA torch.
Writes STEM.md and STEM.json after every trial.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_sdxl.results.schema import write_atomically  # noqa: E402

BENCHMARKS = {
    "plain": ("BatchOverOneByOne", "track_batch_over_one_by_one"),
    "host-normalized": ("HostNormalizedBatchOverOneByOne", "track_host_normalized_batch_over_one_by_one"),
}
COMMITS = ("main", "unchanged", "slower-batch")
# What asv needs to build and run the suite at a commit: the package, its build file and the suite.
PROJECT_PATHS = ("pyproject.toml", "README.md", "asv.conf.json", "pytest_sdxl", "benchmarks")
PIPELINE_MODULE = Path("pytest_sdxl") / "variants" / "assembly.py"
SLOWER_BATCH = """

# --- lab/asv_detection.py: the batch path made slower on purpose, nothing else ---
import time as _lab_clock

_lab_full_speed = VariantPipeline.generate


def _lab_slower_batch(self, prompts, seeds, check=True):
    started = _lab_clock.perf_counter()
    images = _lab_full_speed(self, prompts, seeds, check)
    if self.composition.is_batch:
        _lab_clock.sleep({slowdown!r} * (_lab_clock.perf_counter() - started))
    return images


VariantPipeline.generate = _lab_slower_batch
"""


def benchmark_pattern(kind: str, variant: str) -> str:
    """asv's --bench regular expression for one ratio benchmark at the batch size of 4.

    asv names a benchmark from inside its benchmark folder (``bench_ratios.Class.method``) and matches
    a parametrized one as ``name('variant', 4)``.
    """
    cls, method = BENCHMARKS[kind]
    return rf"^bench_ratios\.{cls}\.{method}\('{re.escape(variant)}', 4\)$"


def slower_rows(compare_output: str) -> set[str]:
    """The benchmarks that ``asv compare`` marks ``+`` (slower past the factor) in its table."""
    rows = set()
    for line in compare_output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] == "+":
            rows.add(cells[-1])
    return rows


def git(repository: Path, *arguments: str) -> str:
    identity = {"GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@example.invalid"}
    identity.update(GIT_COMMITTER_NAME="lab", GIT_COMMITTER_EMAIL="lab@example.invalid")
    done = subprocess.run(
        ["git", *arguments], cwd=repository, env={**os.environ, **identity}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def scratch_repository(folder: Path, slowdown: float) -> Path:
    """A git repository of this checkout's project files (tracked or new) with the three COMMITS as branches."""
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *PROJECT_PATHS)
    repository = folder / "repository"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (repository / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repository / name)
    git(repository, "init", "--quiet", "--initial-branch=main")
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "--message=the project as it is")
    git(repository, "checkout", "--quiet", "-b", "unchanged")
    with (repository / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nA line of documentation: no code changes.\n")
    git(repository, "commit", "--quiet", "--all", "--message=documentation only")
    git(repository, "checkout", "--quiet", "-b", "slower-batch", "main")
    module = repository / PIPELINE_MODULE
    if "class VariantPipeline" not in module.read_text(encoding="utf-8"):
        raise SystemExit(f"{PIPELINE_MODULE} defines no VariantPipeline: the slower commit would change nothing")
    with module.open("a", encoding="utf-8") as handle:
        handle.write(SLOWER_BATCH.format(slowdown=slowdown))
    git(repository, "commit", "--quiet", "--all", "--message=batch path slower")
    git(repository, "checkout", "--quiet", "main")
    return repository


def asv(repository: Path, environment: dict[str, str], *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "asv", *arguments], cwd=repository, env=environment, capture_output=True, text=True
    )
    if done.returncode not in (0, 1):
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--slowdown", type=float, default=0.05)
    parser.add_argument("--factor", default="1.03")
    parser.add_argument(
        "--ratio", choices=sorted(BENCHMARKS), default="plain", help="which side-by-side ratio asv tracks"
    )
    parser.add_argument("--variant", default="baseline", help="the one-by-one composition whose batch path is judged")
    parser.add_argument(
        "--cpu-affinity", metavar="CPUS", help="asv run's --cpu-affinity for every benchmark process: 3, 2,3 or 0-3"
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--merge", nargs="+", metavar="FILE", help="Add up the JSON files of earlier runs instead")
    arguments = parser.parse_args()
    if arguments.merge:
        return merge(arguments.merge, arguments.out)

    repository = scratch_repository(Path(tempfile.mkdtemp(prefix="asv-detection-")), arguments.slowdown)
    # The runner's own HOME (asv's machine file lands there), and the settings the asv suite reads.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_SDXL_")}
    environment.update(
        PYTEST_SDXL_MODEL=os.environ.get("MODEL", "random:sdxl-turbo"),
        PYTEST_SDXL_DEVICE="auto",
        PYTEST_SDXL_VARIANTS=f"{arguments.variant}+batch" if arguments.variant != "baseline" else "batch",
    )
    # The scratch checkout's own code first: each commit runs its own pytest_sdxl. asv drops
    # PYTHONPATH from the benchmark processes' environment and puts ASV_PYTHONPATH in its place.
    environment["ASV_PYTHONPATH"] = os.pathsep.join(
        part for part in (str(repository), os.environ.get("PYTHONPATH", "")) if part
    )
    asv(repository, environment, "machine", "--yes", "--machine", "gpu")
    hashes = {name: git(repository, "rev-parse", name) for name in COMMITS}
    flagged = {"unchanged": 0, "slower-batch": 0}
    values: dict[str, list[float]] = {name: [] for name in hashes}
    cls = BENCHMARKS[arguments.ratio][0]
    pinned = ["--cpu-affinity", arguments.cpu_affinity] if arguments.cpu_affinity else []
    for trial in range(1, arguments.trials + 1):
        for name, commit in hashes.items():
            git(repository, "checkout", "--quiet", name)
            output = asv(
                repository, environment, "run", "--python=same", "--set-commit-hash", commit, "--machine", "gpu",
                "--bench", benchmark_pattern(arguments.ratio, arguments.variant),
                # Spawned: a child forked from asv's forkserver cannot use CUDA once the server has.
                "--launch-method", "spawn", "--show-stderr", *pinned,
            )  # fmt: skip
            print(f"trial {trial} {name}: {output.strip().splitlines()[-1] if output.strip() else ''}", flush=True)
            value = read_value(repository, commit, cls)
            if value is None:
                # A commit that measured nothing must not count as a clean trial.
                print(f"no value for {name} in trial {trial}: asv said\n{output[-3000:]}", file=sys.stderr)
                return 1
            values[name].append(value)
        for name in flagged:
            compared = asv(
                repository, environment, "compare", "--factor", arguments.factor, "--machine", "gpu",
                hashes["main"], hashes[name],
            )  # fmt: skip
            slower = bool(slower_rows(compared))
            flagged[name] += slower
            print(f"trial {trial}: main -> {name}: {'FLAGGED' if slower else 'clean'}", flush=True)
        # After every trial: a run stopped by its time limit keeps the trials it finished.
        benchmark = f"{cls}('{arguments.variant}', 4)"
        write_report(arguments.out, flagged, values, trial, arguments.slowdown, arguments.factor, benchmark)
    return 0


def write_report(
    out: str,
    flagged: dict[str, int],
    values: dict[str, list[float]],
    trials: int,
    slowdown: float,
    factor: str,
    benchmark: str,
) -> None:
    lines = [
        f"asv on a GPU: {benchmark}, batch path {slowdown:.0%} slower, "
        f"asv compare --factor {factor}, {trials} trials (each commit in a fresh process)",
        "",
        "| commit against main | flagged | ratio values (main, then this commit, per trial) |",
        "|---|---|---|",
    ]
    for name in flagged:
        pairs = ", ".join(f"{base:.4f} -> {new:.4f}" for base, new in zip(values["main"], values[name], strict=False))
        lines.append(f"| {name} | {flagged[name]}/{trials} | {pairs} |")
    text = "\n".join(lines)
    print(text)
    document = {
        "benchmark": benchmark,
        "flagged": flagged,
        "values": values,
        "trials": trials,
        "slowdown": slowdown,
        "factor": factor,
    }
    write_atomically(Path(out + ".md"), text + "\n")
    write_atomically(Path(out + ".json"), json.dumps(document, indent=1) + "\n")


def merge(files: list[str], out: str) -> int:
    """Trials run in several processes (one per GPU) added up, each trial's values kept in order."""
    documents = [json.loads(Path(name).read_text()) for name in files]
    default = "BatchOverOneByOne('baseline', 4)"
    settings = {
        (document["slowdown"], document["factor"], document.get("benchmark", default)) for document in documents
    }
    if len(settings) != 1:
        raise SystemExit(f"asv trial files of different experiments (slowdown, factor, benchmark): {sorted(settings)}")
    flagged = {name: sum(document["flagged"][name] for document in documents) for name in documents[0]["flagged"]}
    values = {
        name: [value for document in documents for value in document["values"][name]] for name in documents[0]["values"]
    }
    slowdown, factor, benchmark = settings.pop()
    trials = sum(document["trials"] for document in documents)
    write_report(out, flagged, values, trials, slowdown, factor, benchmark)
    return 0


def read_value(repository: Path, commit: str, cls: str) -> float | None:
    """The benchmark's value in asv's result file of this commit (asv keeps one file per commit and env)."""
    for path in (repository / ".asv" / "results" / "gpu").glob(f"{commit[:8]}*.json"):
        data = json.loads(path.read_text())
        for name, result in data.get("results", {}).items():
            if name.split(".")[-2:-1] == [cls]:
                found = result[0] if isinstance(result, list) else result
                while isinstance(found, list):
                    found = found[-1] if found else None
                return None if found is None else float(found)
    return None


if __name__ == "__main__":
    sys.exit(main())
