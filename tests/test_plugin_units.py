"""Unit tests of the plugin's pure parts: test grouping, marker restriction, GPU and machine facts."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sdxl.machine import probes as machine
from pytest_sdxl.plugin import collection
from pytest_sdxl.results.schema import encode_float
from pytest_sdxl.variants.registry import BASELINE, all_single_variants, default_selection, parse

SINGLES = all_single_variants()


def fake_item(variant: Any) -> Any:
    """An item as the grouping sees it: a callspec with the sdxl_variant parameter, or none."""
    return SimpleNamespace(callspec=SimpleNamespace(params={"sdxl_variant": variant})) if variant else SimpleNamespace()


@given(st.lists(st.one_of(st.none(), st.sampled_from(SINGLES)), max_size=30))
def test_grouping_makes_each_variant_contiguous_and_leaves_other_tests_in_place(variants: list[Any]) -> None:
    items = [fake_item(variant) for variant in variants]
    grouped = list(items)
    collection.group_by_variant(grouped)
    assert sorted(map(id, grouped)) == sorted(map(id, items))
    for before, after in zip(items, grouped, strict=True):
        if collection.variant_of(before) is None:
            assert after is before
    order = [collection.variant_of(item).id for item in grouped if collection.variant_of(item) is not None]
    runs = [name for index, name in enumerate(order) if index == 0 or order[index - 1] != name]
    assert len(runs) == len(set(runs)), f"a variant comes back after another: {order}"
    if BASELINE in order:
        assert order[0] == BASELINE
    # Within a variant, tests keep their order.
    for name in set(order):
        assert [item for item in grouped if collection.variant_of(item) and collection.variant_of(item).id == name] == [
            item for item in items if collection.variant_of(item) and collection.variant_of(item).id == name
        ]


@given(
    st.lists(st.sampled_from(SINGLES), min_size=1, unique=True),
    st.one_of(st.none(), st.lists(st.sampled_from(SINGLES), unique=True).map(tuple)),
)
def test_a_marker_restricts_to_its_variants_in_its_order(marked: list[Any], selected: Any) -> None:
    marker = pytest.mark.sdxl_variants(*(composition.id for composition in marked)).mark
    chosen = collection.variants_for(marker, selected, "test_x", SINGLES)
    expected = marked if selected is None else [composition for composition in marked if composition in selected]
    assert chosen == expected


def test_without_a_marker_the_selection_or_the_default_selection() -> None:
    assert collection.variants_for(None, None, "test_x", SINGLES) == SINGLES
    on_a_cpu, _ = default_selection("cpu")
    assert collection.variants_for(None, None, "test_x", on_a_cpu) == on_a_cpu
    selected = (parse("tiny_vae+batch"), parse("baseline"))
    assert collection.variants_for(None, selected, "test_x", on_a_cpu) == list(selected)


def test_a_marker_accepts_comma_lists_and_compositions_in_any_order() -> None:
    marker = pytest.mark.sdxl_variants("batch+tiny_vae, baseline", "baseline").mark
    chosen = collection.variants_for(marker, None, "test_x", SINGLES)
    assert [item.id for item in chosen] == ["tiny_vae+batch", "baseline"]


@pytest.mark.parametrize("marker", [pytest.mark.sdxl_variants(), pytest.mark.sdxl_variants(names="baseline")])
def test_a_marker_without_names_says_how_to_write_it(marker: Any) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"sdxl_variants takes variant names as strings, e\.g\."):
        collection.variants_for(marker.mark, None, "test_x", SINGLES)


def write_driver_files(root: Path, names: list[str], driver: str, module: str = "x86_64 Kernel Module") -> Path:
    for index, name in enumerate(names):
        folder = root / "gpus" / f"0000:0{index}:00.0"
        folder.mkdir(parents=True)
        (folder / "information").write_text(f"Model: \t\t {name}\nIRQ:   \t\t 42\nBus Type: \t PCIe\n")
    (root / "version").write_text(
        f"NVRM version: NVIDIA UNIX {module}  {driver}  Thu Jan 1 00:00:00 UTC 2026\nGCC version: 12\n"
    )
    return root


def test_gpus_are_read_from_the_driver_files(tmp_path: Path) -> None:
    root = write_driver_files(tmp_path, ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"], "550.54.15")
    names, driver = machine.gpus_from_driver(root) or ([], None)
    assert names == ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"] and driver == "550.54.15"
    assert machine.gpu_summary(names) == "NVIDIA H100 80GB HBM3 x2"
    assert machine.gpus_from_driver(tmp_path / "absent") is None


def test_open_kernel_module_driver_version_is_read(tmp_path: Path) -> None:
    # The open kernel module words its line differently (seen on an H100 host): "... Module for x86_64  580.159.04".
    root = write_driver_files(tmp_path, ["NVIDIA H100 80GB HBM3"], "580.159.04", "Open Kernel Module for x86_64")
    assert machine.gpus_from_driver(root) == (["NVIDIA H100 80GB HBM3"], "580.159.04")


@pytest.mark.parametrize(
    ("names", "summary"),
    [([], None), (["NVIDIA H200"], "NVIDIA H200"), (["NVIDIA H200", "NVIDIA A10"], "NVIDIA H200, NVIDIA A10")],
)
def test_gpu_summary(names: list[str], summary: str | None) -> None:
    assert machine.gpu_summary(names) == summary


def test_machine_details_name_versions_without_importing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    details = machine.machine_details(use_nvidia_smi=False)
    assert details["torch"] == torch.__version__
    assert details["cuda"] == torch.version.cuda
    # The same answer read from torch/version.py, as at configure time before anything imports torch.
    monkeypatch.delitem(__import__("sys").modules, "torch")
    assert machine.torch_cuda_version() == torch.version.cuda


def test_machine_differences_name_what_changed() -> None:
    then = {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", "diffusers": "0.42.1", "node": "a"}
    now = {"gpu": "NVIDIA H200", "torch": "2.11.0", "diffusers": "0.42.1", "node": "b"}
    assert machine.machine_differences(now, then) == ["gpu 'NVIDIA H100 80GB HBM3' then, 'NVIDIA H200' now"]
    assert machine.machine_differences(now, now) == []


def test_infinite_psnr_is_written_as_a_string() -> None:
    assert encode_float(math.inf) == "inf"
    assert encode_float(31.5) == 31.5
    assert encode_float(None) is None
    assert encode_float({"psnr_db": [math.inf, -math.inf]}) == {"psnr_db": ["inf", "-inf"]}


def test_loading_the_plugin_leaves_the_variant_registry_unimported() -> None:
    # Every pytest session in an environment with pytest-sdxl installed loads the plugin; the
    # registry of built-in variants is for sessions that use it.
    code = (
        "import sys, pytest_sdxl.plugin; "
        "heavy = ('pytest_sdxl.variants.registry', 'pytest_sdxl.variants.builtin'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
