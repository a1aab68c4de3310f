"""The plugin stays cheap where unused: which modules loading it, and a session of other tests, import.

No timed assertion: the figure is in the user guide's measurement method page ("The plugin's cost where
unused"). What can fail here is a module-level import that pulls the heavy modules back into every session.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Never at plugin load or in a session that does not use sdxl: the libraries pipelines need, the
# variant registry (every built-in variant), and the dataclasses the settings and state are made of.
HEAVY = (
    "torch",
    "numpy",
    "scipy",
    "diffusers",
    "transformers",
    "pytest_sdxl.variants.registry",
    "pytest_sdxl.settings",
    "pytest_sdxl.plugin.state",
    "pytest_sdxl.machine.probes",
)
RECORDER = f"""
import json, sys

def pytest_sessionfinish(session):
    with open("imported.json", "w") as file:
        json.dump(sorted(name for name in {HEAVY!r} if name in sys.modules), file)
"""


def test_loading_the_plugin_imports_none_of_the_heavy_modules() -> None:
    code = f"import sys, pytest, pytest_sdxl.plugin; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_a_quiet_session_of_other_tests_imports_none_of_them(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORDER)
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "imported.json").read_text()) == []


def test_a_given_setting_is_still_resolved_at_start(pytester: pytest.Pytester) -> None:
    # The recorder shows the lazy path is not the only one: a setting given is checked before collection.
    pytester.makeconftest(RECORDER)
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--sdxl-steps", "2")
    result.assert_outcomes(passed=1)
    imported = json.loads((pytester.path / "imported.json").read_text())
    assert {"pytest_sdxl.settings", "pytest_sdxl.plugin.state"} <= set(imported)
    assert "torch" not in imported


def test_every_option_has_its_parser_and_every_parser_an_option() -> None:
    # The table and its checks live apart (the checks are not imported at plugin load): they must still match.
    from pytest_sdxl.options import OPTIONS
    from pytest_sdxl.settings import PARSERS

    assert [option.name for option in OPTIONS] == list(PARSERS)
