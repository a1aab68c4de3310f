"""lab/compile_breakdown.py still runs on the product's API: its record, on the tiny model on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_cold_call_records_its_calls_and_an_empty_cache(tmp_path: Path) -> None:
    out = tmp_path / "call.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "lab" / "compile_breakdown.py"), "--model", "random:tiny", "--variant", "tiny_vae",
         "--calls", "2", "--cache", str(tmp_path / "cache"), "--out", str(out)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["variant"] == "tiny_vae" and record["model"] == "random:tiny"
    assert len(record["calls_s"]) == 2 and all(seconds > 0 for seconds in record["calls_s"])
    assert record["cache"]["state"] == "cold" and record["cache_entries_before"] == 0
