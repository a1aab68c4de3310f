"""``python -m pytest_sdxl variants``: each variant's kind, whether it runs here, what it does; 120 columns."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pytest_sdxl.reports.layout import WIDTH
from pytest_sdxl.reports.variant_listing import variant_table, what_it_does
from pytest_sdxl.variants import Variant
from pytest_sdxl.variants.registry import REGISTRY


def rows_by_name(table: str) -> dict[str, str]:
    """Each variant's row, its continuation lines joined column by column, as 'name kind runs-here summary'."""
    lines = table.splitlines()
    starts = [lines[0].index(label) for label in ("variant", "kind", "runs here", "what it does")]
    rows: dict[str, list[list[str]]] = {}
    current = ""
    for line in lines[2:]:
        if not line.strip():  # the end of the table
            break
        if re.match(r" {4,6}\S", line):  # a verbose detail; a cell's continuation starts further right
            continue
        cells = [line[begin:end].strip() for begin, end in zip(starts, [*starts[1:], len(line)], strict=True)]
        if cells[0]:
            current = cells[0]
            rows[current] = [[] for _ in starts]
        if not current:
            continue
        for column, cell in zip(rows[current], cells, strict=True):
            column.append(cell)
    return {name: " ".join(" ".join(part for part in column if part) for column in row) for name, row in rows.items()}


def details_by_name(table: str) -> dict[str, str]:
    """The verbose lines under each variant, joined."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in table.splitlines()[2:]:
        if line and not line.startswith(" "):
            current = line.split()[0]
        elif re.match(r" {4,6}\S", line) and current:
            found.setdefault(current, []).append(line.strip())
    return {name: " ".join(lines) for name, lines in found.items()}


def test_table_lists_every_variant_with_kind_status_and_summary_on_cpu() -> None:
    table = variant_table(device="cpu", dtype="float32")
    assert max(len(line) for line in table.splitlines()) <= WIDTH
    rows = rows_by_name(table)
    assert set(rows) == set(REGISTRY)
    for name, variant in REGISTRY.items():
        assert rows[name].startswith(f"{name} {variant.kind} ")
        assert 0 < len(variant.summary) <= 60, name  # one line each
    assert rows["baseline"] == "baseline exact yes the pipeline as loaded, no optimization"
    assert "no: needs a CUDA GPU " in rows["cuda_graph"]
    assert "the UNet step captured in a CUDA graph and replayed" in rows["cuda_graph"]
    assert rows["upcast_vae"].startswith("upcast_vae exact no: only changes a half-precision pipeline the VAE kept")
    assert "conflicts with" not in table  # the short form leaves needs and conflicts to --verbose


def test_verbose_adds_details_needs_and_conflicts_only_where_present() -> None:
    table = variant_table(device="cpu", dtype="float32", verbose=True)
    assert max(len(line) for line in table.splitlines()) <= WIDTH
    rows = details_by_name(table)
    # Conflicts are listed from both sides.
    assert "cpu_offload" in rows["cuda_graph"].split("conflicts with: ")[1]
    assert "cuda_graph" in rows["cpu_offload"].split("conflicts with: ")[1]
    assert "needs: CUDA GPU, package accelerate" in rows["cpu_offload"]
    assert "how: no torch.compile" in rows["cuda_graph"]
    assert "channels_last" not in rows  # nothing more to say of it


def test_a_plugin_variant_without_a_summary_shows_its_details_and_a_long_one_wraps() -> None:
    assert what_it_does(Variant("from_details", "exact", details="what the details say")) == "what the details say"
    assert what_it_does(Variant("bare", "exact")) == "-"
    long_summary = "a plugin's summary that goes on " * 5
    REGISTRY["long_summary"] = Variant("long_summary", "lossy", long_summary)
    try:
        table = variant_table(device="cpu", dtype="float32")
        row = rows_by_name(table)["long_summary"]
    finally:
        del REGISTRY["long_summary"]
    assert max(len(line) for line in table.splitlines()) <= WIDTH
    assert row == "long_summary lossy yes " + " ".join(long_summary.split())


def test_table_notes_variants_that_need_a_partner() -> None:
    table = variant_table(device="cpu", dtype="float32")
    assert (
        "Note: vae_slicing has no effect at batch 1: diffusers slices only batches of more than one image; "
        "compose it with batch (vae_slicing+batch)." in " ".join(" ".join(line.split()) for line in table.splitlines())
    )


def test_half_precision_makes_upcast_vae_runnable() -> None:
    table = variant_table(device="cpu", dtype="bfloat16")
    assert rows_by_name(table)["upcast_vae"].startswith("upcast_vae exact yes ")


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
