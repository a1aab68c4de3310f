"""The pytest plugin entry point (pytest11 ``sdxl``): options, ini keys, markers, hooks, header and summary.

Imports only pytest, the standard library and pytest-sdxl's option table at module level, and its
hooks resolve the settings only in a session that gives one or uses sdxl (``plugin.session``), so a
session that does not use pytest-sdxl pays next to nothing for it being installed (the user guide's
measurement method page, "The plugin's cost where unused"). The fixtures live in
``pytest_sdxl.plugin.fixtures``, the benchmark they time in ``pytest_sdxl.plugin.benchmark``, and
the lines the hooks write in ``pytest_sdxl.plugin.terminal``.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sdxl.options import OPTIONS, Option
from pytest_sdxl.plugin.collection import group_by_variant, planned_variants, variant_of, variants_for
from pytest_sdxl.plugin.session import (
    CONFIGURED_KEY,
    INI_UNSET,
    STATE_KEY,
    create_state,
    destination,
    settings_given,
    state_of,
)

if TYPE_CHECKING:
    from pytest_sdxl.plugin.state import SessionState
    from pytest_sdxl.variants.registry import Composition

GROUP = "sdxl"
GPU_MARKER = "gpu: the test needs a CUDA GPU; skipped with the reason where torch sees none"
VARIANTS_MARKER = (
    "sdxl_variants(*names): run the test for these variants only (names or compositions such as "
    "'tiny_vae+batch'), of those --sdxl-variants selects; without it, every selected variant"
)
# Fixtures whose use makes a test an sdxl test (for the lazily asked GPU name).
SDXL_FIXTURES = ("sdxl_components", "sdxl_pipeline", "sdxl_generate", "sdxl_benchmark")
# The session's exit status when sdxl benchmarks ran but every one was skipped: pytest's own status
# for a session that ran nothing, so a CI job never passes without numbers.
NOTHING_MEASURED = pytest.ExitCode.NO_TESTS_COLLECTED


# What a setting means under pytest where that differs from the command line's protocol.
PYTEST_MEANING = {"runs": "under pytest: blocks of at least ten timed calls on the one warmed pipeline"}


def option_help(option: Option) -> str:
    """The option's help from the settings table, with its default (unless said already), ini key and variable."""
    where = f"ini {option.ini_key}, env {option.environment_variable}"
    if "(default" not in option.help:
        where = f"default: {option.default or 'none'}; {where}"
    meaning = f"; {PYTEST_MEANING[option.name]}" if option.name in PYTEST_MEANING else ""
    return f"{option.help}{meaning} ({where})"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The pytest_sdxl_variants hook, and the plugin that registers the variants its implementations return."""
    from pytest_sdxl.plugin import hook_variants as plugin_variants
    from pytest_sdxl.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    if not pluginmanager.is_registered(plugin_variants):
        pluginmanager.register(plugin_variants, "sdxl-plugin-variants")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "SDXL-Turbo benchmarks (pytest-sdxl)")
    for option in OPTIONS:
        group.addoption(
            option.plugin_flag, dest=destination(option), default=None, metavar=option.metavar, help=option_help(option)
        )
        parser.addini(option.ini_key, help=option.help, default=INI_UNSET)


def under_xdist(config: pytest.Config) -> bool:
    """An xdist worker, or a controller that will start workers (``-n``)."""
    return hasattr(config, "workerinput") or config.getoption("dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", GPU_MARKER)
    config.addinivalue_line("markers", VARIANTS_MARKER)
    # A given setting is checked now, so a wrong one is a usage error before collection; under xdist the
    # controller and workers need the settings to share out devices. Otherwise the defaults wait until used.
    if settings_given(config) or under_xdist(config):
        try:
            create_state(config)
        except pytest.UsageError:
            if config.getoption("help", False):
                return  # --help must work even with a wrong setting in the environment
            raise
    config.stash[CONFIGURED_KEY] = True
    from pytest_sdxl.plugin import fixtures

    config.pluginmanager.register(fixtures, "sdxl-fixtures")
    if STATE_KEY in config.stash:
        # Without settings yet there is no device list to check and no xdist session to share out.
        from pytest_sdxl.plugin import workers

        workers.configure(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not config.stash.get(CONFIGURED_KEY, False):
        return []
    from pytest_sdxl.plugin.terminal import header_lines

    return header_lines(state_of(config))


def default_variants(state: SessionState) -> list[Composition]:
    """The variants a test without a marker runs when none are named; those left out here are remembered."""
    if state.default_variants is None:
        from pytest_sdxl.machine.devices import device_type

        kept, left_out = state.settings.default_variants(device_type(state.settings.device))
        state.default_variants, state.left_out = kept, left_out
    return state.default_variants


def pytest_report_collectionfinish(config: pytest.Config, items: Sequence[pytest.Item]) -> list[str]:
    """The variants the default selection left out; where the driver has no /proc files (WSL), nvidia-smi names
    the GPU, only when sdxl tests will run."""
    if not config.stash.get(CONFIGURED_KEY, False):
        return []
    state = config.stash.get(STATE_KEY, None)  # not yet resolved where no test parametrized by variant
    sdxl_tests = any(name in SDXL_FIXTURES for item in items for name in getattr(item, "fixturenames", ()))
    if not sdxl_tests and (state is None or not state.left_out):
        return []
    from pytest_sdxl.plugin.terminal import gpu_line_from_nvidia_smi, left_out_line

    left_out = left_out_line(state) if state is not None else []
    return left_out + gpu_line_from_nvidia_smi() if sdxl_tests else left_out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdxl_variant" not in metafunc.fixturenames or not metafunc.config.stash.get(CONFIGURED_KEY, False):
        return
    state = state_of(metafunc.config)
    marker = metafunc.definition.get_closest_marker("sdxl_variants")
    compositions = variants_for(marker, state.settings.variants, metafunc.definition.nodeid, default_variants(state))
    if not compositions:
        selected = ",".join(item.id for item in state.settings.variants or ())
        reason = f"none of this test's variants is selected by --sdxl-variants ({selected})"
        metafunc.parametrize(
            "sdxl_variant",
            [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
            ids=["unselected"],
            indirect=True,
        )
        return
    # Session scope: pytest then runs every test of one variant before building the next variant.
    ids = [composition.id for composition in compositions]
    metafunc.parametrize("sdxl_variant", compositions, ids=ids, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    group_by_variant(items)
    skip_gpu_tests_without_cuda(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The variants this session will measure: a session that stops early names those it never reached."""
    state = session.config.stash.get(STATE_KEY, None)
    if state is not None:
        state.planned = planned_variants(session.items)
        measuring = not session.config.option.collectonly and not hasattr(session.config, "workerinput")
        if state.settings.report is not None and state.planned and measuring:
            from pytest_sdxl.plugin.report import announce

            # Before the first test: a usage error where another session writing the folder would clash with this one.
            announce(state)
        if measuring and state.planned:
            # A Ctrl-C that a finalizer swallows would let the session run on to its end; latched, it stops
            # the session after the test it landed in (pytest_runtest_protocol below).
            from pytest_sdxl.machine.interrupts import LATCH

            LATCH.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    outcome = yield
    latch = sys.modules.get("pytest_sdxl.machine.interrupts")  # imported only where a session measures
    if latch is not None and latch.LATCH.installed:
        latch.LATCH.raise_if_pressed()
    return outcome


def pytest_unconfigure(config: pytest.Config) -> None:
    latch = sys.modules.get("pytest_sdxl.machine.interrupts")
    if latch is not None:
        latch.LATCH.uninstall()


def skip_gpu_tests_without_cuda(items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where torch sees no CUDA device (torch is imported only when such tests exist)."""
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not marked:
        return
    reason = cuda_missing_reason()
    if reason is not None:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


def cuda_missing_reason() -> str | None:
    """Why there is no CUDA device here, or None when there is one (torch is imported only for gpu tests)."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"gpu test: needs a CUDA GPU, and torch {torch.__version__} is a CPU-only build"
    return f"gpu test: needs a CUDA GPU, and torch {torch.__version__} (CUDA {torch.version.cuda}) sees none"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    fixtures = getattr(item, "fixturenames", ())
    uses_sdxl = "sdxl_benchmark" in fixtures or "sdxl_variant" in fixtures
    if not uses_sdxl or not item.config.stash.get(CONFIGURED_KEY, False):
        return report
    state = state_of(item.config)  # a benchmark skipped before its fixtures ran is recorded too
    if "sdxl_benchmark" in fixtures:
        record_benchmark_report(state, item, call, report)
    if report.when == "teardown" and "sdxl_variant" in fixtures and not hasattr(item.config, "workerinput"):
        # Without xdist this session holds every record; under xdist the controller saves as reports arrive.
        from pytest_sdxl.plugin.report import save_progress

        save_progress(state)
    return report


def record_benchmark_report(
    state: SessionState, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
) -> None:
    composition = variant_of(item)
    # A variant's record takes its benchmarks' failures; its skips are recorded where the variant turns
    # out unable to run here (not for --benchmark-skip or -k, which say nothing about the variant).
    # Every skip is also kept apart, with its reason, for the verdict that nothing was measured.
    if composition is not None and report.failed:
        state.record_outcome(composition.id, composition.kind, "failed", outcome_reason(call))
    if report.skipped and not hasattr(report, "wasxfail"):
        test = composition.id if composition is not None else item.name
        state.benchmark_skips.setdefault(test, skip_reason(report))
    elif report.when == "call" and report.passed:
        state.benchmark_passed = True


def skip_reason(report: pytest.TestReport) -> str:
    """The reason pytest shows for a skip (its report keeps it as (path, line, 'Skipped: reason'))."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def outcome_reason(call: pytest.CallInfo[None]) -> str:
    from pytest_sdxl.measure.records import failure_reason

    if call.excinfo is None:
        return "failed"
    error = call.excinfo.value
    if isinstance(error, pytest.fail.Exception):
        return str(error.msg).strip().splitlines()[0] if error.msg else "failed"
    return failure_reason(error)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """GPU, driver, CUDA, torch and diffusers, so a comparison shows when two runs come from different cards."""
    from pytest_sdxl.machine.probes import machine_details

    state = config.stash.get(STATE_KEY, None)
    if state is None:
        machine_info.update(machine_details())
        return
    if state.machine_details is None:
        state.machine_details = machine_details()
    machine_info.update(state.machine_details)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(
    config: pytest.Config, benchmarksession: Any, machine_info: dict[str, Any], compared_benchmark: dict[str, Any]
) -> None:
    from pytest_sdxl.machine.probes import machine_differences

    differences = machine_differences(machine_info, compared_benchmark.get("machine_info", {}))
    if differences:
        benchmarksession.logger.warning(
            "sdxl: the compared run comes from another card or software stack ("
            + "; ".join(differences)
            + "): its timings are not comparable with this run's"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A session whose sdxl benchmarks were all skipped fails; the ``--sdxl-report`` files are written, and a session
    whose report could not be written fails too (pytest returns ``session.exitstatus`` as set here).

    Also after an interrupt: every variant that ended is kept, and the report names those never reached.
    """
    state = session.config.stash.get(STATE_KEY, None)
    if state is None or hasattr(session.config, "workerinput"):
        return  # an xdist worker's records go to the controller (workers.py), which reports them all
    if session.exitstatus == pytest.ExitCode.OK and not benchmarks_switched_off(session.config):
        state.nothing_measured_line = state.nothing_measured() or ""
        if state.nothing_measured_line:
            session.exitstatus = NOTHING_MEASURED
    if state.records:
        from pytest_sdxl.plugin.report import finish_report

        written = finish_report(state, session)
        if not written and session.exitstatus == pytest.ExitCode.OK:
            # A job must not pass with its results missing; a status already failing says more and stays.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.settings.report is not None:
        from pytest_sdxl.plugin.report import forget_writer

        forget_writer(id(state))  # the announcement in the report folder ends with the session


def benchmarks_switched_off(config: pytest.Config) -> bool:
    """--benchmark-skip or --benchmark-disable: the session was not meant to measure (pytest-benchmark's rules)."""
    skipped = config.getoption("benchmark_skip", False) and not config.getoption("benchmark_only", False)
    disabled = config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False)
    return bool(skipped or disabled)


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The reference protocol's tables, before pytest-benchmark's table and its regression verdict, which end it."""
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    from pytest_sdxl.plugin.terminal import write_summary

    write_summary(terminalreporter, state)
