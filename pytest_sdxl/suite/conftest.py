"""The reference suite's guard: it measures through the pytest-sdxl plugin, so without it the run is refused.

With the plugin disabled (``-p no:sdxl``, or ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` without ``-p pytest_sdxl.plugin``)
the suite's fixtures do not exist, and under ``--benchmark-only`` pytest-benchmark skips a test whose fixtures it
cannot see: the session passed with one test skipped and nothing measured. A CI job must not pass that way.
"""

from __future__ import annotations

import pytest

PLUGIN_NAME = "sdxl"  # the pytest11 entry point's name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN_NAME) and not config.pluginmanager.has_plugin("pytest_sdxl.plugin"):
        raise pytest.UsageError(
            "pytest-sdxl: the reference suite measures through the pytest-sdxl plugin, which is not loaded in this "
            "session (-p no:sdxl, or plugin autoloading turned off); load it with -p pytest_sdxl.plugin"
        )
