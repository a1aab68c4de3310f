"""lab/steps.sh refuses a step it does not know before it installs or writes anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("", "STEPS is empty: give some of reruns, workers, cache"),
        ("reruns,smoke", "STEPS=reruns,smoke: smoke is not a step; give some of reruns, workers"),
    ],
)
def test_an_unknown_or_missing_step_is_refused_with_the_steps_there_are(
    tmp_path: Path, steps: str, message: str
) -> None:
    environment = {key: value for key, value in os.environ.items() if key not in ("STEPS", "PART")}
    environment.update(STEPS=steps, OUT=str(tmp_path / "out"), LAB_WHEELS=str(tmp_path / "no-wheels"))
    finished = subprocess.run(
        ["bash", "lab/steps.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 2
    assert message in finished.stdout
    assert not (tmp_path / "out").exists()


def test_every_step_the_header_documents_is_one_the_script_runs() -> None:
    text = (ROOT / "lab" / "steps.sh").read_text()
    known = text.split('KNOWN_STEPS="', 1)[1].split('"', 1)[0].split()
    documented = [line.split()[1] for line in text.splitlines() if line.startswith("#   ") and line[4] != " "]
    assert documented == known
    for step in known:
        assert f"has_step {step}; then" in text, f"{step} is listed but never run"
