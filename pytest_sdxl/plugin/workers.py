"""pytest-xdist workers: one GPU each, every variant on one worker, every worker's results merged in the controller.

With ``pytest -n N`` worker ``gwK`` takes device K of ``--sdxl-device`` (a list such as
``cuda:0,cuda:1``, or every CUDA device torch sees for ``auto`` and ``cuda``). Two workers on one GPU
would time each other's kernels, so more workers than GPUs is a usage error; on a CPU the workers
share the cores, and the summary says so. xdist's default ``--dist load`` becomes ``loadgroup`` with
one group per variant, so each variant's pipeline is built and measured on one worker only.

A worker hands each variant's record to the controller as soon as a test of it ends: every report of
an sdxl test carries its variant's record as it stands (``REPORT_ATTRIBUTE``, which xdist sends with
the report), and the controller merges it in ``pytest_runtest_logreport`` and rewrites results.json.
The reports are the only path: an interrupted session (SIGINT reaches the controller and its
workers, and the workers' session ends are never heard) still reports every variant that ended.
This module's hooks are registered only when pytest-xdist is installed; xdist itself is never imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_sdxl.plugin.collection import variant_of
from pytest_sdxl.plugin.session import STATE_KEY
from pytest_sdxl.plugin.state import SessionState
from pytest_sdxl.variants.registry import BASELINE

# The test report's attribute that carries a worker's payload (pytest serializes a report's attributes).
REPORT_ATTRIBUTE = "sdxl_payload"


@dataclass
class Merged:
    """What the controller learnt from its workers: each worker's device and the variants it measured."""

    devices: dict[str, str] = field(default_factory=dict)
    variants: dict[str, list[str]] = field(default_factory=dict)
    # Which worker's record of each variant the controller keeps: that worker's later reports replace it.
    owners: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    # Why a worker refused to measure (workers sharing a GPU): the session ends with a usage error.
    refusal: str = ""


MERGED_KEY = pytest.StashKey[Merged]()


def worker_place(config: pytest.Config) -> tuple[str, int, int] | None:
    """(worker id, index, worker count) in an xdist worker, None elsewhere."""
    given = getattr(config, "workerinput", None)
    if not given:
        return None
    worker = str(given["workerid"])
    match = re.fullmatch(r"gw(\d+)", worker)
    return worker, int(match.group(1)) if match else 0, int(given.get("workercount", 1))


def is_controller(config: pytest.Config) -> bool:
    return worker_place(config) is None and config.getoption("dist", "no") != "no"


def configure(config: pytest.Config) -> None:
    """Called by the plugin's pytest_configure: check the device setting, register the xdist hooks."""
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    under_xdist = worker_place(config) is not None or config.getoption("dist", "no") != "no"
    if "," in state.settings.device and not under_xdist:
        raise pytest.UsageError(
            f"pytest-sdxl: --sdxl-device {state.settings.device} lists one device per pytest-xdist worker; "
            f"run with pytest -n {len(state.settings.device.split(','))}, or give one device"
        )
    if not config.pluginmanager.hasplugin("xdist"):
        return
    if is_controller(config):
        config.stash[MERGED_KEY] = Merged()
        if config.getoption("dist") == "load":
            # -n's default spreads a variant's tests over workers, each building its pipeline again.
            config.option.dist = "loadgroup"
    config.pluginmanager.register(XdistHooks(config), "sdxl-xdist")


def worker_devices(device: str) -> list[str] | None:
    """The devices workers take in turn; None on a CPU (workers then share it). Imports torch."""
    if "," in device:
        return device.split(",")
    if device == "cpu":
        return None
    if device.startswith("cuda:"):
        return [device]
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return None  # auto falls back to the CPU; a missing cuda is reported when the variants build
    return [f"cuda:{index}" for index in range(count)]


def pin_worker(state: SessionState, worker: str, index: int, count: int) -> str:
    """Pin this worker's device in its settings; returns why it must not measure ("" when it may).

    Workers sharing a GPU would time each other's kernels: refused. The worker cannot stop the
    session itself (xdist reports an exception in a worker's collection as an internal error), so
    it skips its sdxl tests with the reason and the controller ends the session with a usage error.
    """
    devices = worker_devices(state.settings.device)
    if devices is None:
        return ""
    if count > len(devices):
        gpus = f"{len(devices)} GPU" + ("" if len(devices) == 1 else "s")
        return (
            f"pytest-sdxl: {count} xdist workers but {gpus} for them ({', '.join(devices)}): two workers on one GPU "
            f"would time each other's kernels. Use -n {len(devices)} or fewer, or run without -n"
        )
    state.settings = state.settings.with_changes(device=devices[index % len(devices)])
    return ""


REFUSAL_KEY = pytest.StashKey[str]()


def payload(state: SessionState, worker: str, variants: list[str] | None = None, refusal: str = "") -> str:
    """A worker's records of these variants (all by default) and its verdict inputs.

    Strict JSON: an infinite PSNR goes as a string.
    """
    from pytest_sdxl.results.schema import ResultSet, to_dict

    chosen = [record for variant, record in state.records.items() if variants is None or variant in variants]
    return json.dumps(
        {
            "worker": worker,
            "variants": to_dict(ResultSet(variants=chosen))["variants"],
            "planned": state.planned,
            "benchmark_skips": state.benchmark_skips,
            "benchmark_passed": state.benchmark_passed,
            "resolved": state.resolved,
            "image_size": state.image_size,
            "device": state.settings.device,
            "refusal": refusal,
        },
        allow_nan=False,
    )


def merge(state: SessionState, merged: Merged, text: str) -> None:
    """Add one worker's payload to the controller's records.

    A worker sends a variant's record again after each of its tests: its latest one replaces the
    earlier. A variant another worker also measured is named a duplicate and kept once: its first
    record with runs.
    """
    from pytest_sdxl.results.schema import SCHEMA_VERSION, from_dict

    data = json.loads(text)
    worker = str(data["worker"])
    merged.refusal = merged.refusal or str(data.get("refusal", ""))
    records = from_dict({"schema_version": SCHEMA_VERSION, "variants": data["variants"]}).variants
    merged.devices[worker] = str(data["resolved"].get("resolved_device") or data["device"])
    measured_here = merged.variants.setdefault(worker, [])
    for record in records:
        if record.variant not in measured_here:
            measured_here.append(record.variant)
        owner = merged.owners.setdefault(record.variant, worker)
        known = state.records.get(record.variant)
        if owner != worker and known is not None and (known.runs or not record.runs):
            duplicate = f"{record.variant} ({worker})"
            if duplicate not in merged.duplicates:
                merged.duplicates.append(duplicate)
            continue
        merged.owners[record.variant] = worker
        state.records[record.variant] = record
    state.planned += [variant for variant in data["planned"] if variant not in state.planned]
    for test, reason in data["benchmark_skips"].items():
        state.benchmark_skips.setdefault(test, reason)
    state.benchmark_passed = state.benchmark_passed or bool(data["benchmark_passed"])
    if data["image_size"] is not None:
        state.image_size = int(data["image_size"])
    state.resolved.update({key: str(value) for key, value in data["resolved"].items()})
    state.resolved["resolved_device"] = ",".join(sorted(set(merged.devices.values())))
    state.resolved["xdist_workers"] = workers_line(merged)
    # Baseline first, then worker by worker: the same table whichever worker finished first.
    order = {
        variant: (variant != BASELINE, worker)
        for worker in sorted(merged.variants)
        for variant in merged.variants[worker]
    }
    state.records = dict(sorted(state.records.items(), key=lambda pair: order.get(pair[0], (True, "~"))))


def workers_line(merged: Merged) -> str:
    parts = [
        f"{worker} on {merged.devices[worker]}: {', '.join(merged.variants.get(worker, [])) or 'no variant'}"
        for worker in sorted(merged.devices)
    ]
    line = "; ".join(parts)
    if len(merged.devices) > 1 and any(device == "cpu" for device in merged.devices.values()):
        line += " (the workers shared the CPU: each one's timings include the others' load)"
    return line


class XdistHooks:
    """The hooks that run only under pytest-xdist (a plugin object, so that nothing registers them without it)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """In the controller: look up the report's machine (torch, CUDA) now, not while the workers time variants."""
        state = self.config.stash.get(STATE_KEY, None)
        if state is not None and state.settings.report is not None and is_controller(self.config):
            from pytest_sdxl.plugin.report import report_machine

            report_machine(state)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """In a worker: pin its device and give each variant's tests one xdist group (before xdist reads groups)."""
        place = worker_place(config)
        state = config.stash.get(STATE_KEY, None)
        if place is None or state is None:
            return
        sdxl_items = [(item, composition) for item in items if (composition := variant_of(item)) is not None]
        if not sdxl_items:
            return
        for item, composition in sdxl_items:
            item.add_marker(pytest.mark.xdist_group(f"sdxl-{composition.id}"))
        refusal = pin_worker(state, *place)
        if refusal:
            config.stash[REFUSAL_KEY] = refusal
            for item, _ in sdxl_items:
                item.add_marker(pytest.mark.skip(reason=refusal))

    # tryfirst makes this the outermost wrapper: it runs after the plugin's own has recorded the report.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """In a worker: every report of an sdxl test carries its variant's record as it stands, to the controller."""
        report = yield
        place = worker_place(item.config)
        state = item.config.stash.get(STATE_KEY, None)
        if place is None or state is None or "sdxl_variant" not in getattr(item, "fixturenames", ()):
            return report
        composition = variant_of(item)
        variants = [composition.id] if composition is not None else []
        refusal = item.config.stash.get(REFUSAL_KEY, "")
        setattr(report, REPORT_ATTRIBUTE, payload(state, place[0], variants, refusal))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """In the controller: merge a worker's record as its report arrives; results.json follows each test."""
        text = getattr(report, REPORT_ATTRIBUTE, None)
        state = self.config.stash.get(STATE_KEY, None)
        if text is None or state is None or not is_controller(self.config):
            return
        merge(state, self.config.stash.setdefault(MERGED_KEY, Merged()), str(text))
        if report.when == "teardown":
            from pytest_sdxl.plugin.report import save_progress

            save_progress(state)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """In the controller, after the plugin's verdict: workers that refused to share a GPU make it a usage error."""
        merged = session.config.stash.get(MERGED_KEY, None)
        if merged is not None and merged.refusal:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        merged = config.stash.get(MERGED_KEY, None)
        if merged is None or not merged.devices:
            return
        if merged.refusal:
            terminalreporter.write_line(merged.refusal, red=True, bold=True)
            return
        count = len(merged.devices)
        terminalreporter.write_line(f"sdxl: results merged from {count} xdist workers: {workers_line(merged)}")
        if merged.duplicates:
            terminalreporter.write_line(
                "sdxl: measured on more than one worker, first record kept: " + ", ".join(merged.duplicates)
            )
