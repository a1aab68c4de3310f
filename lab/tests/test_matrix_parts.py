"""The whole-matrix parts of lab/host.sh: every variant measured, none twice, bad parts refused."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pytest_sdxl.variants.registry import REGISTRY, parse

ROOT = Path(__file__).resolve().parents[2]
# Left out of the matrix, each for the reason lab/host.sh gives.
LEFT_OUT = {"compile_max_autotune", "xformers", "tome", "vae_tiling"}


def array_of(name: str) -> list[list[str]]:
    """The comma-separated lists of lab/host.sh's bash array ``name``."""
    text = (ROOT / "lab" / "host.sh").read_text()
    block = re.search(rf"{name}=\((.*?)\n\)", text, re.S)
    assert block, f"lab/host.sh defines no {name}=( ... ) array"
    return [part.split(",") for part in re.findall(r'"([^"]+)"', block.group(1))]


def matrix_parts() -> list[list[str]]:
    return array_of("MATRIX_PARTS")


def refused(tmp_path: Path, **given: str) -> str:
    """lab/steps.sh's output under ``given``, which it must refuse (status 2) before installing or writing."""
    environment = {**os.environ, **given, "OUT": str(tmp_path / "out")}
    finished = subprocess.run(
        ["bash", "lab/steps.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 2
    assert not (tmp_path / "out").exists()
    return finished.stdout


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


def test_joined_parts_are_measured_in_one_session_in_part_order() -> None:
    script = 'source lab/host.sh; part_variants "$1"'
    finished = subprocess.run(["bash", "-c", script, "-", "3,1"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    parts = matrix_parts()
    assert finished.stdout.strip().split(",") == parts[2] + parts[0]


@pytest.mark.parametrize("part", ["0", "99", "two", "1,99"])
def test_a_part_that_does_not_exist_is_refused_before_anything_installs(part: str, tmp_path: Path) -> None:
    output = refused(tmp_path, STEPS="workers", PART=part)
    assert f"PART={part}: give a part from 1 to {len(matrix_parts())}" in output


def test_the_two_halves_are_the_gpus_whole_default_selection_once() -> None:
    from pytest_sdxl.variants.registry import default_selection

    first, second = array_of("MATRIX_HALVES")
    assert first[0] == "baseline"  # the other half builds its PSNR reference aside
    selection = [composition.id for composition in default_selection("cuda")[0]]
    assert sorted(first + second) == sorted(selection)
    compiled = re.search(r'COMPILED_VARIANTS="([^"]+)"', (ROOT / "lab" / "host.sh").read_text())
    assert compiled and set(compiled.group(1).split(",")) <= set(second)


@pytest.mark.parametrize("half", ["0", "3", "one"])
def test_a_half_that_does_not_exist_is_refused_before_anything_installs(half: str, tmp_path: Path) -> None:
    assert f"HALF={half}: give 1 or 2" in refused(tmp_path, STEPS="matrix", HALF=half)
