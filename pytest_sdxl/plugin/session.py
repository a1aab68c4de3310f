"""Where the plugin keeps its session state (``config.stash``), and when it resolves the settings.

A session that gives no sdxl setting (no ``--sdxl-*`` option, ``PYTEST_SDXL_*`` variable or
``sdxl_*`` ini key) resolves the defaults only when something asks for them: an sdxl fixture or
parametrization, or the header. Resolving imports the ``Settings`` dataclass, the state's
dataclasses and the machine modules, which a session of other tests need not pay for; a default
cannot be wrong, so nothing is lost by waiting. A setting that is given is resolved at configure,
so a wrong value is still a usage error before anything is collected. Imports only pytest and the
option table at module level.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from pytest_sdxl.errors import SettingsError, VariantSpecError
from pytest_sdxl.options import OPTIONS, Option

if TYPE_CHECKING:
    from pytest_sdxl.plugin.state import SessionState
    from pytest_sdxl.settings import Settings

# The key is typed by name: importing the state's module for it would cost every session its dataclasses.
STATE_KEY = pytest.StashKey["SessionState"]()
# Set once the plugin's pytest_configure accepted the settings (not under --help with a wrong one).
CONFIGURED_KEY = pytest.StashKey[bool]()
# What an unset ini key answers: pytest 8 answers "" for an unset string key whose default is None,
# which could not be told from an explicitly empty value (``sdxl_variants =``, a usage error).
INI_UNSET = "<unset>"


def destination(option: Option) -> str:
    return "sdxl_" + option.name


def ini_value(config: pytest.Config, key: str) -> str | None:
    """The ini key's value as written (an empty one included), or None when the key is unset."""
    value = config.getini(key)
    return None if value in (None, INI_UNSET) else str(value)


def settings_given(config: pytest.Config) -> bool:
    """Whether the command line, the environment or the ini file gives any sdxl setting.

    Any ``PYTEST_SDXL_*`` variable counts, the options' and the others (the compile budget): each is checked
    when the settings resolve, and a wrong one should stop the session before collection, as a usage error.
    """
    return any(name.startswith("PYTEST_SDXL_") for name in os.environ) or any(
        config.getoption(destination(option)) is not None or ini_value(config, option.ini_key) is not None
        for option in OPTIONS
    )


def resolve_settings(config: pytest.Config) -> Settings:
    """Settings from the command line, then PYTEST_SDXL_* variables, then the ini file, then defaults."""
    from pytest_sdxl.settings import resolve

    return resolve(
        command_line={option.name: config.getoption(destination(option)) for option in OPTIONS},
        environment=os.environ,
        ini={option.name: ini_value(config, option.ini_key) for option in OPTIONS},
        ini_name=config.inipath.name if config.inipath else "ini file",
        flag_style="plugin",
    )


def create_state(config: pytest.Config) -> SessionState:
    """The session's state with its settings resolved; a wrong setting is a UsageError naming its source."""
    from pytest_sdxl.plugin.state import SessionState

    try:
        settings = resolve_settings(config)
    except (SettingsError, VariantSpecError) as error:
        raise pytest.UsageError(f"pytest-sdxl: {error}") from None
    state = config.stash[STATE_KEY] = SessionState(settings=settings)
    return state


def state_of(config: pytest.Config) -> SessionState:
    """The session's state, created on first use; a UsageError when the plugin was not configured (``--help``)."""
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        return state
    if not config.stash.get(CONFIGURED_KEY, False):
        raise pytest.UsageError("pytest-sdxl is not configured in this session (was it disabled with -p no:sdxl?)")
    return create_state(config)
