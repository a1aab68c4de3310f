"""``python -m pytest_sdxl variants``: every variant, its kind, needs and whether it runs here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_sdxl.reports.variant_listing import variant_table
from pytest_sdxl.variants.registry import REGISTRY


def test_table_lists_every_variant_with_kind_and_status_on_cpu() -> None:
    table = variant_table(device="cpu", dtype="float32")
    lines = {line.split()[0]: line for line in table.splitlines() if line.split() and line.split()[0] in REGISTRY}
    assert set(lines) == set(REGISTRY)
    for name, variant in REGISTRY.items():
        assert f" {variant.kind} " in lines[name]
    assert lines["baseline"].endswith("yes")
    assert "no: cuda_graph needs a CUDA GPU (device here: cpu)" in lines["cuda_graph"]
    assert "no: upcast_vae only changes a half-precision pipeline" in lines["upcast_vae"]
    # Conflicts are listed from both sides.
    assert "cpu_offload" in lines["cuda_graph"] and "cuda_graph" in lines["cpu_offload"]


def test_table_notes_variants_that_need_a_partner() -> None:
    table = variant_table(device="cpu", dtype="float32")
    assert (
        "Note: vae_slicing has no effect at batch 1: diffusers slices only batches of more than one image; "
        "compose it with batch (vae_slicing+batch)." in table.splitlines()
    )


def test_half_precision_makes_upcast_vae_runnable() -> None:
    table = variant_table(device="cpu", dtype="bfloat16")
    line = next(line for line in table.splitlines() if line.startswith("upcast_vae"))
    assert line.endswith("yes")


def test_module_entry_point_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_sdxl", "variants", "--device", "cpu"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cached_embeds" in result.stdout and "runs here (cpu, float32)" in result.stdout


def test_bad_dtype_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_sdxl.cli.main import main

    assert main(["variants", "--dtype", "fp8"]) == 2
    error = capsys.readouterr().err
    assert "dtype 'fp8' is not a precision" in error and "float16" in error
