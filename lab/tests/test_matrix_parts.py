"""The whole-matrix parts of tools/matrix_parts.sh: every variant measured, none twice, bad parts refused."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pytest_sdxl.variants.registry import REGISTRY, parse

ROOT = Path(__file__).resolve().parents[1]
# Left out of the matrix, each for the reason tools/matrix_parts.sh gives.
LEFT_OUT = {"compile_max_autotune", "xformers", "tome", "vae_tiling"}


def matrix_parts() -> list[list[str]]:
    text = (ROOT / "tools" / "matrix_parts.sh").read_text()
    block = re.search(r"MATRIX_PARTS=\((.*?)\n\)", text, re.S)
    assert block, "tools/matrix_parts.sh defines no MATRIX_PARTS=( ... ) array"
    return [part.split(",") for part in re.findall(r'"([^"]+)"', block.group(1))]


def test_the_parts_cover_every_variant_once_and_the_baseline_once_first() -> None:
    parts = matrix_parts()
    assert len(parts) >= 2
    # The parts add up to the matrix measured once: a part's session builds its PSNR reference aside.
    assert parts[0][0] == "baseline"
    measured = [spec for part in parts for spec in part]
    assert len(measured) == len(set(measured)), "a composition is measured in two parts"
    for part in parts:
        for spec in part:
            parse(spec)  # a misspelt or conflicting composition fails here, not on the GPU
    measured.remove("baseline")
    named = {name for spec in measured for name in spec.split("+")}
    assert set(REGISTRY) - {"baseline"} - LEFT_OUT <= named, "a registered variant is in no part of the matrix"
    assert not named & LEFT_OUT


@pytest.mark.parametrize("script", ["tools/gpu_workers.sh", "tools/gpu_side_by_side.sh"])
@pytest.mark.parametrize("part", ["0", "99", "two"])
def test_a_part_that_does_not_exist_is_refused_before_anything_installs(script: str, part: str, tmp_path: Path) -> None:
    environment = {**os.environ, "PART": part, "OUT": str(tmp_path)}
    finished = subprocess.run(["bash", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert f"PART={part}: give a part from 1 to {len(matrix_parts())}" in finished.stdout
    assert not (tmp_path / "install").exists()


def side_by_side(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("LANE_", "EXTRA"))}
    environment.update({"OUT": str(tmp_path), "LANES_DRY_RUN": "1", **settings})
    return subprocess.run(
        ["bash", "tools/gpu_side_by_side.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_one_part_side_by_side_leaves_the_fourth_gpu_to_extra(tmp_path: Path) -> None:
    finished = side_by_side(tmp_path, PART="4", EXTRA="bash tools/gpu_reruns.sh")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.splitlines() == [
        "lane 0: GPUs 0, CPUs 0-15: PART=4 WORKERS=1 OUT=$OUT/one bash tools/gpu_workers.sh",
        "lane 1: GPUs 1,2, CPUs 16-47: PART=4 WORKERS=2 OUT=$OUT/two bash tools/gpu_workers.sh",
        "lane 2: GPUs 3, CPUs 48-63: bash tools/gpu_reruns.sh",
    ]


def test_two_parts_side_by_side_take_each_on_one_gpu_and_both_on_two(tmp_path: Path) -> None:
    finished = side_by_side(tmp_path, PART="3,5")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.splitlines() == [
        "lane 0: GPUs 0, CPUs 0-15: PART=3 WORKERS=1 OUT=$OUT/one-3 bash tools/gpu_workers.sh",
        "lane 1: GPUs 1, CPUs 16-31: PART=5 WORKERS=1 OUT=$OUT/one-5 bash tools/gpu_workers.sh",
        "lane 2: GPUs 2,3, CPUs 32-63: PART=3,5 WORKERS=2 OUT=$OUT/two bash tools/gpu_workers.sh",
    ]
    assert not list(tmp_path.iterdir()), "a dry run writes nothing"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"PART": "1,2,3"}, "side by side takes one part or two"),
        ({"PART": "1,2", "EXTRA": "true"}, "EXTRA goes with a single part"),
        ({"PART": "1,99"}, "PART=1,99: give a part from 1 to"),
    ],
)
def test_side_by_side_refuses_what_four_gpus_cannot_hold(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    finished = side_by_side(tmp_path, **settings)
    assert finished.returncode == 2
    assert message in finished.stdout


def test_joined_parts_are_measured_in_one_session_in_part_order() -> None:
    script = 'source tools/matrix_parts.sh; part_variants "$1"'
    finished = subprocess.run(["bash", "-c", script, "-", "3,1"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    parts = matrix_parts()
    assert finished.stdout.strip().split(",") == parts[2] + parts[0]
