"""lab/call_noise.py: each process's wall ratio beside how far its calls strayed from the fastest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab_scripts import load_script

from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, save_results


def load_tool() -> Any:
    return load_script("call_noise")


def test_a_process_line_gives_the_ratio_the_fastest_and_median_calls_and_the_strayed_share(tmp_path: Path) -> None:
    own = [0.050, 0.051, 0.052, 0.080]
    reference = [0.100, 0.101, 0.130, 0.140, 0.102, 0.100, 0.150, 0.103]  # three of eight over 115 ms
    run = RunRecord(1, 1.0, 0.2, own, 0.058, 0.0515, 3.0, reference="baseline", reference_gen_s=reference)
    folder = tmp_path / "one-01"
    folder.mkdir()
    measured = ResultSet({"model": "random:tiny"}, {}, [VariantRecord("batch", "exact", runs=[run])])
    save_results(measured, folder / "results.json")
    (line,) = load_tool().noise_lines(folder)
    assert line == (
        "one-01 batch: wall_ratio 0.5000; own 50.0/51.5 ms, reference 100.0/102.5 ms (fastest/median); "
        "reference calls over 15% of its fastest: 38%"
    )
