"""tools/gpu_pinned_lanes.sh: lanes run at once, each pinned, each bounded, and all they wrote in one archive."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")


def run_lanes(tmp_path: Path, **lanes: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OUT": str(tmp_path), "LANES_INSTALL": "0", **lanes}
    return subprocess.run(
        ["bash", "tools/gpu_pinned_lanes.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_each_lane_sees_its_own_gpus_and_a_cut_lane_leaves_what_it_wrote(tmp_path: Path) -> None:
    finished = run_lanes(
        tmp_path,
        LANE_SECONDS="4",
        LANE_0='0 0 mkdir -p $OUT/one && echo "gpus=$CUDA_VISIBLE_DEVICES" > $OUT/one/seen.txt',
        LANE_2="1,2 0 mkdir -p $OUT/two && echo started > $OUT/two/seen.txt; sleep 60; echo never > $OUT/two/late.txt",
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "== lane 0 (GPUs 0, CPUs 0): exit status 0" in finished.stdout
    assert "== lane 2 (GPUs 1,2, CPUs 0): exit status 124" in finished.stdout  # cut by LANE_SECONDS
    # Only the archive and the logs stay: the device tool brings back at most eight files.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lane0.log", "lane2.log", "lanes.tar.gz"]
    with tarfile.open(tmp_path / "lanes.tar.gz") as archive:
        names = set(archive.getnames())
        seen = archive.extractfile("one/seen.txt")
        assert seen is not None and seen.read().decode().strip() == "gpus=0"
    assert {"two/seen.txt", "lane0.log", "lane2.log"} <= names
    assert "two/late.txt" not in names


@pytest.mark.parametrize("spec", ["x 0-15 true", "0 0-15", "0 cpus true"])
def test_a_lane_that_is_not_gpus_cpus_command_is_refused_before_anything_runs(tmp_path: Path, spec: str) -> None:
    finished = run_lanes(tmp_path / "out", LANE_1=spec)
    assert finished.returncode == 2
    assert f"LANE_1='{spec}': give \"<GPUs> <CPUs> <command>\"" in finished.stdout
    assert not (tmp_path / "out").exists()


def test_no_lane_at_all_is_a_usage_error(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LANE_")}
    finished = subprocess.run(
        ["bash", "tools/gpu_pinned_lanes.sh"],
        cwd=ROOT,
        env={**environment, "OUT": str(tmp_path), "LANES_INSTALL": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "no lane: set LANE_0 to LANE_7" in finished.stdout
