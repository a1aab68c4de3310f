"""How ``ab`` finds each side: its interpreter, the pytest-sdxl it imports, and the flags its ``run`` knows.

Each check runs once a job, before the first process, so that a wrong ``--base-python`` is a usage error with
what is accepted, not a failure of every process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pytest_sdxl.errors import SettingsError

ACCEPTED_PYTHON = (
    "a Python interpreter (a virtual environment's bin/python, or a command on PATH such as python3) or a "
    "virtual environment's folder, "
    "whose environment imports pytest_sdxl and the code under test"
)
# Seconds a probe of an interpreter may take: its imports on a cold, busy host.
PROBE_TIMEOUT_S = 120


def interpreter(value: str, flag: str) -> str:
    """The interpreter a --*-python names: the path itself, a venv folder's bin/python (Scripts\\python.exe), or a
    bare command found on PATH (``python3``), resolved to its path so that both sides' processes start the same one."""
    on_path = shutil.which(value) if os.sep not in value else None
    path = Path(on_path) if on_path else Path(value)
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
        raise SettingsError(f"{flag} {value!r} is a folder without bin/python; accepted: {ACCEPTED_PYTHON}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise SettingsError(f"{flag} {value!r} is not an executable file; accepted: {ACCEPTED_PYTHON}")
    return str(path)


def imported_package(python: str, flag: str) -> str:
    """'pytest_sdxl 0.1.0 from /path' as the interpreter sees it; a usage error when it cannot import it."""
    probe = "import pytest_sdxl; print(f'pytest_sdxl {pytest_sdxl.__version__} from {pytest_sdxl.__path__[0]}')"
    try:
        found = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SettingsError(f"{flag} {python!r} could not be started ({error}); accepted: {ACCEPTED_PYTHON}") from None
    if found.returncode != 0:
        tail = (found.stderr.strip().splitlines() or ["(nothing on its standard error)"])[-1]
        raise SettingsError(f"{flag} {python!r} cannot import pytest_sdxl ({tail}); accepted: {ACCEPTED_PYTHON}")
    return found.stdout.strip()


def quiet_flags_known(python: str, flag: str) -> tuple[str, ...]:
    """Those of ``run``'s quiet flags this interpreter's pytest-sdxl knows: an older base lacks ``--no-chart``."""
    from pytest_sdxl.measure.interleave import QUIET_FLAGS

    try:
        found = subprocess.run(
            [python, "-m", "pytest_sdxl", "run", "--help"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SettingsError(f"{flag} {python!r} could not be started ({error}); accepted: {ACCEPTED_PYTHON}") from None
    if found.returncode != 0:
        tail = (found.stderr.strip().splitlines() or ["(nothing on its standard error)"])[-1]
        raise SettingsError(
            f"{flag} {python!r}: its 'python -m pytest_sdxl run --help' failed ({tail}); accepted: {ACCEPTED_PYTHON}"
        )
    # A flag as a whole word of the help ("[--no-chart]", "--no-chart  results.json ..."), not a prefix of another.
    return tuple(quiet for quiet in QUIET_FLAGS if re.search(rf"(?<![\w-]){quiet}(?![\w-])", found.stdout))
