"""lab/reference_calls.py: a recorded four-call reference read as one call a round, the prompts in turn."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from lab_scripts import load_script


def load_tool() -> Any:
    return load_script("reference_calls")


def test_one_call_a_round_keeps_call_i_mod_four_of_each_round() -> None:
    tool = load_tool()
    rounds = 24
    own = [0.010] * rounds
    # Round r's four calls: the one a one-call reference would have made is the fastest of its round.
    reference = [0.020 if call == r % 4 else 0.040 + 0.001 * call for r in range(rounds) for call in range(4)]
    reference[4 * 5 + 2] = 0.015  # the fastest of all, in a call the one-call reference never made
    assert tool.block_values(own, reference, one_call=True) == pytest.approx([math.log(0.5)] * 2)
    assert tool.block_values(own, reference, one_call=False) == pytest.approx([math.log(0.010 / 0.015), math.log(0.5)])


def test_the_summary_reads_only_batch_runs_of_a_four_call_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = load_tool()
    four = {"gen_s": [0.01] * 24, "reference_gen_s": [0.02 + 0.001 * (i % 3) for i in range(96)]}
    equal = {"gen_s": [0.01] * 24, "reference_gen_s": [0.02] * 24}  # a reference of as many calls: not read
    document = {"variants": [{"variant": "batch", "runs": [four, four]}, {"variant": "tiny_vae", "runs": [equal]}]}
    (tmp_path / "results.json").write_text(json.dumps(document))
    assert tool.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 runs of 1 files") and "between runs (1 file-variant groups)" in out
    (tmp_path / "results.json").write_text(json.dumps({"variants": [{"variant": "tiny_vae", "runs": [equal]}]}))
    assert tool.main([str(tmp_path)]) == 1
