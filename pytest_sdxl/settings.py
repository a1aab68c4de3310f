"""One frozen Settings object, resolved from the command line, then environment, then ini, then default.

The options themselves (names, parsers, defaults, help) are ``pytest_sdxl.options``' table. This module
is imported only where settings are resolved or used: the plugin resolves them only in a session that
gives an sdxl setting or uses an sdxl fixture. No torch import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.options import AUTO_BUDGET_S, DEFAULT_PROMPTS, OPTIONS, PROFILE_RUNS, VARIANT_SELECTIONS

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition


@dataclass(frozen=True)
class Settings:
    """The effective settings of a session or a command-line run."""

    model: str = "random:tiny"
    device: str = "auto"
    dtype: str = "auto"
    size: int | None = None
    steps: int = 1
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    runs: int = 3
    variants: tuple[Composition, ...] | None = None
    # Without named variants: auto or all (see VARIANT_SELECTIONS); "named" when ``variants`` lists them.
    variant_selection: str = "auto"
    profile: str = "full"
    # Seconds of timed rounds per variant; None: auto (``budget_for``).
    variant_budget: float | None = None
    report: Path | None = None
    trace: Path | None = None
    seed: int = 0
    tiny_vae: str = "madebyollin/taesdxl"
    fp16_vae: str = "madebyollin/sdxl-vae-fp16-fix"
    # None: off, torch's own cache folders are left alone.
    compile_cache: Path | None = None
    # None: LPIPS not measured (analysis.quality says how to provide its weights).
    lpips_weights: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for report headers."""
        variants = self.variant_selection if self.variants is None else ",".join(item.id for item in self.variants)
        size = "auto" if self.size is None else str(self.size)
        return (
            f"model={self.model} device={self.device} dtype={self.dtype} size={size} steps={self.steps} "
            f"prompts={len(self.prompts)} runs={self.runs} variants={variants} profile={self.profile}"
        )

    def budget_for(self, device_type: str) -> float:
        """Seconds of timed rounds per variant on this device type (``auto``: ``AUTO_BUDGET_S``)."""
        if self.variant_budget is not None:
            return self.variant_budget
        return AUTO_BUDGET_S["cpu" if device_type == "cpu" else "cuda"]

    def default_variants(self, device_type: str) -> tuple[list[Composition], list[Composition]]:
        """The compositions to measure on this device type and those the selection leaves out here.

        Named variants are measured as named; ``all`` is every variant; ``auto`` leaves out, on a CPU,
        the variants it takes minutes over (``Variant.slow_on_cpu``).
        """
        from pytest_sdxl.variants.registry import default_selection

        if self.variants is not None:
            return list(self.variants), []
        return default_selection(device_type, every=self.variant_selection == "all")


def resolve(
    command_line: Mapping[str, str | None],
    environment: Mapping[str, str],
    ini: Mapping[str, str | None],
    ini_name: str = "ini file",
    flag_style: str = "plugin",
) -> Settings:
    """Settings from the first source that gives each value: command line, environment, ini, default.

    Values are strings as typed; each is parsed by its option, and an error names where it came from.
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for option in OPTIONS:
        flag = option.plugin_flag if flag_style == "plugin" else option.flag
        candidates = (
            (command_line.get(option.name), f"command line {flag}"),
            (environment.get(option.environment_variable), f"environment variable {option.environment_variable}"),
            (ini.get(option.name), f"{ini_name} key {option.ini_key}"),
            (option.default, f"default of {flag}"),
        )
        raw, where = next((value, where) for value, where in candidates if value is not None)
        values[option.name] = option.parse(str(raw), where)
        origins[option.name] = where.split(" ")[0]
        if option.name == "variants":
            word = str(raw).strip().lower()
            values["variant_selection"] = word if word in VARIANT_SELECTIONS else "named"
    if values["runs"] is None:
        values["runs"] = PROFILE_RUNS[values["profile"]]
    return Settings(**values, sources=origins)
