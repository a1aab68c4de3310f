"""lab/lanes.sh: lanes run at once, each on its GPUs and CPUs, each bounded, and all they wrote in one archive."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_taskset = pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")


def run_lanes(out: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("LANE", "OUT"))}
    # No carried wheels: nothing is installed, the checkout's own code runs.
    environment.update({"OUT": str(out), "LAB_WHEELS": str(out.parent / "no-wheels"), **settings})
    return subprocess.run(
        ["bash", "lab/lanes.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


@needs_taskset
def test_each_lane_sees_its_own_gpus_and_a_cut_lane_leaves_what_it_wrote(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    finished = run_lanes(
        tmp_path / "out",
        LANE_SECONDS="4",
        LANE_0=f'0 {cpu} mkdir -p $OUT/one && echo "gpus=$CUDA_VISIBLE_DEVICES" > $OUT/one/seen.txt',
        LANE_2=f"1,2 {cpu} mkdir -p $OUT/two && echo started > $OUT/two/seen.txt; sleep 60; echo never > $OUT/two/late",
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"== lane 0 (GPUs 0, CPUs {cpu}): exit status 0" in finished.stdout
    assert f"== lane 2 (GPUs 1,2, CPUs {cpu}): exit status 124" in finished.stdout  # cut by LANE_SECONDS
    # Only the archive and the logs stay: a device command brings back few files.
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["lane0.log", "lane2.log", "lanes.tar.gz"]
    with tarfile.open(tmp_path / "out" / "lanes.tar.gz") as archive:
        names = set(archive.getnames())
        seen = archive.extractfile("one/seen.txt")
        assert seen is not None and seen.read().decode().strip() == "gpus=0"
    assert {"two/seen.txt", "lane0.log", "lane2.log"} <= names
    assert "two/late" not in names


def test_an_unpinned_lane_shares_the_cpus_and_the_after_command_keeps_merged_beside_the_archive(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    finished = run_lanes(
        out,
        LANE_1="3 - mkdir -p $OUT/lane && python3 -c 'import os; print(len(os.sched_getaffinity(0)))' > $OUT/lane/cpus",
        LANES_AFTER="cat $OUT/lane/cpus > $OUT/merged/joined.txt",
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "== lane 1 (GPUs 3, CPUs -): exit status 0" in finished.stdout
    assert sorted(path.name for path in out.iterdir()) == ["lane1.log", "lanes.tar.gz", "merged"]
    # The after command ran before the archive, on what the lane wrote; the lane ran on every CPU it was given.
    assert (out / "merged" / "joined.txt").read_text().strip() == str(len(os.sched_getaffinity(0)))
    with tarfile.open(out / "lanes.tar.gz") as archive:
        assert "lane/cpus" in archive.getnames()
        assert not any(name.startswith("merged") for name in archive.getnames())


def test_a_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    finished = run_lanes(
        tmp_path / "out",
        LANES_DRY_RUN="1",
        LANE_0="0 0-15 STEPS=reruns bash lab/steps.sh",
        LANE_3="1,2 - STEPS=workers WORKERS=2 bash lab/steps.sh",
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.splitlines() == [
        "lane 0: GPUs 0, CPUs 0-15: STEPS=reruns bash lab/steps.sh",
        "lane 3: GPUs 1,2, CPUs -: STEPS=workers WORKERS=2 bash lab/steps.sh",
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec", ["x 0-15 true", "0 0-15", "0 cpus true"])
def test_a_lane_that_is_not_gpus_cpus_command_is_refused_before_anything_runs(tmp_path: Path, spec: str) -> None:
    finished = run_lanes(tmp_path / "out", LANE_1=spec)
    assert finished.returncode == 2
    assert f"LANE_1='{spec}': give \"<GPUs> <CPUs> <command>\"" in finished.stdout
    assert not (tmp_path / "out").exists()


def test_no_lane_at_all_is_a_usage_error(tmp_path: Path) -> None:
    finished = run_lanes(tmp_path / "out")
    assert finished.returncode == 2
    assert "no lane: set LANE_0 to LANE_7" in finished.stdout
