"""The bytecode cache of the processes ``ab`` starts, where the environment turns bytecode off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_sdxl.machine.bytecode import bytecode_note, kept_bytecode
from pytest_sdxl.measure.interleave import ProcessRequest, run_process


def test_bytecode_is_left_alone_unless_turned_off_without_a_prefix(tmp_path: Path) -> None:
    assert kept_bytecode({}) == {} and bytecode_note({}) == ""
    assert kept_bytecode({"PYTHONDONTWRITEBYTECODE": ""}) == {}
    # A prefix the user chose is theirs: nothing is changed, even with bytecode off.
    assert kept_bytecode({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/elsewhere"}) == {}
    kept = kept_bytecode({"PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(tmp_path)})
    assert kept == {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(tmp_path / "pytest-sdxl" / "bytecode")}
    note = bytecode_note({"PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(tmp_path)})
    assert "PYTHONDONTWRITEBYTECODE is set here" in note and str(tmp_path / "pytest-sdxl" / "bytecode") in note


def test_a_started_process_writes_bytecode_into_the_cache_where_the_environment_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    module = tmp_path / "code" / "measured_module.py"
    module.parent.mkdir()
    module.write_text("VALUE = 1\n")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import measured_module; "
        "print('writes bytecode:', not sys.dont_write_bytecode, 'prefix:', sys.pycache_prefix)"
    )
    folder = tmp_path / "process"
    command = (sys.executable, "-c", probe, str(module.parent))
    outcome = run_process(ProcessRequest("head", 1, command, {}, None, folder))
    assert outcome.status == 0, outcome.stderr_tail
    cache = tmp_path / "cache" / "pytest-sdxl" / "bytecode"
    assert f"writes bytecode: True prefix: {cache}" in (folder / "process.log").read_text()
    # The module's bytecode lies in the cache, under its source folder's path; none beside the source.
    assert list(cache.rglob("measured_module.*.pyc")) and not (module.parent / "__pycache__").exists()
