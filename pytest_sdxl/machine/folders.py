"""The one check of every output path users give (report, trace and compile-cache folders, report files).

It runs before anything is loaded or measured: a folder that turns out to be a file, or a place that
cannot be written to, must never cost a measurement that is then lost when the results are written.
Nothing is created here; the writers create the folders when they write. Also where the tool's own
caches live (``cache_home``: the compile cache, the bytecode of the processes it starts, the matrix peak).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pytest_sdxl.errors import SettingsError

FOLDER_ACCEPTED = "a folder that exists or can be created, and can be written to"
FILE_ACCEPTED = "a file path (not a folder) in a folder that exists or can be created, and can be written to"


def writable_folder(value: str | Path, where: str, accepted: str = FOLDER_ACCEPTED, what: str = "") -> Path:
    """The folder ``value`` names, when it exists or can be created and can be written to; else SettingsError.

    ``where`` names the option and where its value came from (``command line --report``), ``what`` the
    folder's use where the option's name does not say it; the error is one line that says what was
    wrong and what is accepted.
    """
    folder = Path(value).expanduser()
    shown = f"{what} {str(value)!r}" if what else repr(str(value))
    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"{where}: {shown} is a file; accepted: {accepted}")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SettingsError(f"{where}: {shown} cannot be created: {str(existing)!r} is a file; accepted: {accepted}")
    try:
        # Writing is the only reliable test: permission bits say nothing of a read-only mount, nor of root.
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SettingsError(
            f"{where}: {shown} cannot be written to ({str(existing)!r}: {reason}); accepted: {accepted}"
        ) from None
    return folder


def writable_file(value: str | Path, where: str, accepted: str = FILE_ACCEPTED) -> Path:
    """A file to write, when it is not a folder and its folder passes ``writable_folder``; else SettingsError.

    A link is checked by the file it leads to: the atomic write replaces that file, its temporary file beside it.
    """
    path = Path(value).expanduser()
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise SettingsError(f"{where}: {str(value)!r} is a folder; accepted: {accepted}")
    writable_folder(target.parent, where, accepted=accepted)
    return path


def cache_home(environment: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/pytest-sdxl``, else ``~/.cache/pytest-sdxl`` (the XDG default): the tool's caches live here."""
    base = environment.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "pytest-sdxl"
