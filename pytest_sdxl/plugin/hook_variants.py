"""Variants added through the ``pytest_sdxl_variants`` hook: collected under pytest and on the command line.

Under pytest the hook is called at configure time (conftest files and plugins are loaded by then),
before the settings parse ``--sdxl-variants``, and the variants are removed again at unconfigure so
that in-process sessions (pytester) do not leak them. The command line has no pytest session: it
builds a plugin manager of its own from installed ``pytest11`` entry points, ``-p`` modules,
``PYTEST_PLUGINS`` and ``--conftest`` files. Imports no torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_sdxl.errors import VariantSpecError

ADDED_KEY = pytest.StashKey[list[str]]()
PACKAGE_FOLDER = str(Path(__file__).resolve().parents[1])
HOOK_NAME = "pytest_sdxl_variants"


def register_from(hook_caller: Any, plugins_of: Any) -> list[str]:
    """Call the hook on each implementation and register what each returns, named by its plugin."""
    added: list[str] = []
    try:
        for implementation in hook_caller.get_hookimpls():
            source = f"plugin {plugins_of(implementation.plugin)}"
            try:
                returned = implementation.function()
            except Exception as error:  # the user's hook, not pytest-sdxl: say whose and where, not a traceback
                raise VariantSpecError(f"{source}: {HOOK_NAME} raised {failure_at(error)}") from error
            if returned is None:
                continue
            if not isinstance(returned, Iterable) or isinstance(returned, (str, bytes)):
                raise VariantSpecError(f"{source}: {HOOK_NAME} must return a list of Variant objects, got {returned!r}")
            # Imported only where a plugin adds variants: a session without any never loads the registry.
            from pytest_sdxl.variants.registry import register

            added.extend(register(list(returned), source))
    except BaseException:
        from pytest_sdxl.variants.registry import unregister

        unregister(added)
        raise
    return added


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the sdxl plugin's own pytest_configure parses --sdxl-variants, which may name these.
    manager = config.pluginmanager
    try:
        added = register_from(getattr(config.hook, HOOK_NAME), lambda plugin: plugin_name(manager, plugin))
    except VariantSpecError as error:
        raise pytest.UsageError(f"pytest-sdxl: {error}") from None
    config.stash[ADDED_KEY] = added


def pytest_unconfigure(config: pytest.Config) -> None:
    added: list[str] = config.stash.get(ADDED_KEY, [])
    if added:
        from pytest_sdxl.variants.registry import unregister

        unregister(added)


def plugin_name(manager: Any, plugin: object) -> str:
    name = manager.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))
    file = getattr(plugin, "__file__", None)
    return f"{name} ({file})" if file and file not in name else str(name)


def load_for_command_line(conftests: Sequence[str] = (), modules: Sequence[str] = ()) -> list[str]:
    """Register the hook's variants for the command line; returns the names added.

    Loads installed ``pytest11`` entry points (unless PYTEST_DISABLE_PLUGIN_AUTOLOAD is set, as pytest
    does), modules from ``-p`` and ``PYTEST_PLUGINS``, and conftest files by path.
    """
    from pytest_sdxl.plugin import hookspecs

    # pytest's own manager: it takes unmarked pytest_* functions in conftest files as hook implementations.
    manager = pytest.PytestPluginManager()
    manager.add_hookspecs(hookspecs)
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        manager.load_setuptools_entrypoints("pytest11")
    from_environment = [name.strip() for name in os.environ.get("PYTEST_PLUGINS", "").split(",") if name.strip()]
    for name in [*from_environment, *modules]:
        if manager.get_plugin(name) is None:
            try:
                manager.register(importlib.import_module(name), name)
            except ImportError as error:
                raise VariantSpecError(f"plugin module {name!r} could not be imported: {error}") from error
    for path in conftests:
        manager.register(import_conftest(Path(path)), str(path))
    return register_from(getattr(manager.hook, HOOK_NAME), lambda plugin: plugin_name(manager, plugin))


def import_conftest(path: Path) -> object:
    """A conftest.py imported by path as a module of its own, its folder on sys.path (as pytest does)."""
    file = path / "conftest.py" if path.is_dir() else path
    if not file.is_file():
        raise VariantSpecError(f"--conftest {str(path)!r}: no such file (give a conftest.py or the folder holding it)")
    folder = str(file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = f"pytest_sdxl_conftest_{abs(hash(str(file.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a syntax error or a failing import in the user's file: a usage error
        del sys.modules[module_name]
        raise VariantSpecError(f"--conftest {str(path)!r}: importing it raised {failure_at(error)}") from error
    return module


def failure_at(error: BaseException) -> str:
    """'NameError: name 'x' is not defined (conftest.py, line 3)': the error and the user's line that raised it."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"SyntaxError: {error.msg} ({error.filename}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    # The innermost frame outside pytest-sdxl and importlib: the line of the user's code that raised.
    theirs = [frame for frame in frames if "importlib" not in frame.filename and PACKAGE_FOLDER not in frame.filename]
    where = f" ({theirs[-1].filename}, line {theirs[-1].lineno})" if theirs else ""
    return f"{type(error).__name__}: {error}{where}"
