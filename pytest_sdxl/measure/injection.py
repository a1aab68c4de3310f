"""A slowdown injected into another process's pipeline calls, named by an environment variable.

``power --across processes`` slows the head side's processes only. Each such process starts through
``CHILD_ENTRY`` (``python -c CHILD_ENTRY run ...``): it reads ``PYTEST_SDXL_INJECT`` (``host:12.5ms@batch``:
a sleep of 12.5 ms, or ``device:3ms@batch``: extra device work of about 3 ms, before every call of the
pipeline of variant ``batch``), wraps ``VariantPipeline.call`` as the in-process injection
(``power.injected``) wraps one pipeline's, then runs the command line as ``python -m pytest_sdxl`` would.
Without the variable the entry changes nothing, so both sides of a trial start the same way. The
side-by-side reference is another variant, so it is never slowed. Sizes are absolute (milliseconds a
call), calibrated by the parent from an unchanged process: a process cannot size its own slowdown
without measuring itself first.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from pytest_sdxl.errors import SettingsError

VARIABLE = "PYTEST_SDXL_INJECT"
KINDS = ("host", "device")
# The program of an injected child: the hook first, then the command line exactly as ``-m pytest_sdxl``.
CHILD_ENTRY = (
    "import runpy; from pytest_sdxl.measure.injection import install_from_environment; "
    "install_from_environment(); runpy.run_module('pytest_sdxl', run_name='__main__', alter_sys=True)"
)


@dataclasses.dataclass(frozen=True)
class Injection:
    kind: str  # host: a sleep; device: extra work on the pipeline's device
    milliseconds: float  # per pipeline call
    variant: str  # the composition id whose calls are slowed

    def spec(self) -> str:
        return f"{self.kind}:{self.milliseconds:.6g}ms@{self.variant}"


def parse_injection(text: str, where: str = VARIABLE) -> Injection:
    """'host:12.5ms@batch' -> Injection('host', 12.5, 'batch'); the error says what is accepted."""
    slowdown, at, variant = text.strip().partition("@")
    kind, _, amount = slowdown.partition(":")
    number = amount[:-2] if amount.endswith("ms") else ""
    try:
        milliseconds = float(number)
    except ValueError:
        milliseconds = -1.0
    if kind not in KINDS or not at or not variant or not milliseconds >= 0:
        raise SettingsError(
            f"{where}: {text!r} is not accepted; give kind:millisecondsms@variant, kind {' or '.join(KINDS)}, "
            "e.g. host:12.5ms@batch"
        )
    return Injection(kind, milliseconds, variant)


def slowdown_of(injection: Injection, device: Any) -> Callable[[], None]:
    from pytest_sdxl.measure.power import device_work, host_sleep

    if injection.kind == "host":
        return host_sleep(injection.milliseconds / 1000)
    return device_work(device, injection.milliseconds)


def install(injection: Injection) -> Callable[[], None]:
    """Every call of the injected variant's pipelines runs the slowdown first; returns what undoes it."""
    from pytest_sdxl.variants.assembly import VariantPipeline

    original = VariantPipeline.call
    built: dict[str, Callable[[], None]] = {}

    def call(self: VariantPipeline, prompts: list[str], generators: list[Any]) -> Any:
        if self.id == injection.variant:
            if "slowdown" not in built:  # the device work is sized on the pipeline's device, once
                built["slowdown"] = slowdown_of(injection, self.device)
            built["slowdown"]()
        return original(self, prompts, generators)

    VariantPipeline.call = call  # type: ignore[method-assign]

    def undo() -> None:
        VariantPipeline.call = original  # type: ignore[method-assign]

    return undo


def install_from_environment() -> Injection | None:
    """The injection ``PYTEST_SDXL_INJECT`` names, installed; None (nothing changed) when it is unset."""
    text = os.environ.get(VARIABLE, "")
    if not text:
        return None
    injection = parse_injection(text)
    install(injection)
    return injection
