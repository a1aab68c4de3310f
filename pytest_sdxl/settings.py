"""The checks of what users type, and the one frozen Settings they resolve into.

Each value is resolved from the command line, then the environment, then the ini file, then the
default; the options themselves (names, defaults, help, ranges) are ``pytest_sdxl.options``' table.
The model's and a VAE's weights sources are checked in ``pipelines.source_checks``, beside where weights
come from; ``PARSERS`` names those checks with the rest.
This module is imported only where settings are resolved or used: the plugin resolves them only in a
session that gives an sdxl setting, uses sdxl or shows its header. No torch import here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.errors import SettingsError, VariantSpecError
from pytest_sdxl.options import (
    AUTO_BUDGET_S,
    BUDGET_RANGE,
    DEFAULT_PROMPTS,
    OPTIONS,
    PROFILE_RUNS,
    PROFILES,
    RUNS_RANGE,
    SEED_RANGE,
    SIZE_RANGE,
    STEPS_RANGE,
    VARIANT_SELECTIONS,
)
from pytest_sdxl.pipelines.source_checks import model_source, vae_source

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition


def whole_number(value: str, where: str, bounds: tuple[int, int], why: str = "") -> int:
    """A whole number within ``bounds`` (inclusive); the error names the range, and why it ends there."""
    low, high = bounds
    accepted = f"accepted: a whole number from {low} to {high}"
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a whole number; {accepted}") from None
    if number < low:
        raise SettingsError(f"{where}: {number} must be at least {low}; {accepted}")
    if number > high:
        reason = f" ({why})" if why else ""
        raise SettingsError(f"{where}: {number} must be at most {high}{reason}; {accepted}")
    return number


def step_count(value: str, where: str) -> int:
    return whole_number(value, where, STEPS_RANGE, "the scheduler has 1,000 training timesteps")


def run_count(value: str, where: str) -> int | None:
    """A number of runs, or None for ``auto`` (the profile's: ``PROFILE_RUNS``)."""
    if value.strip().lower() == "auto":
        return None
    return whole_number(value, where, RUNS_RANGE, "each run is a fresh load; 100 already take hours on a real model")


def image_size(value: str, where: str) -> int | None:
    if value == "auto":
        return None
    low, high = SIZE_RANGE
    accepted = f"accepted: a multiple of 8 from {low} to {high}, or auto"
    try:
        size = int(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a whole number; {accepted}") from None
    if size < low:
        raise SettingsError(f"{where}: {size} must be at least {low}; {accepted}")
    if size > high:
        raise SettingsError(f"{where}: {size} must be at most {high} (four times SDXL's native 1024); {accepted}")
    if size % 8:
        raise SettingsError(f"{where}: {size} must be a multiple of 8 (the VAE's scale), e.g. 512 or 64; {accepted}")
    return size


DEVICES_ACCEPTED = "accepted: auto, cpu, cuda, cuda:N, or a list such as cuda:0,cuda:1 for pytest-xdist workers"


def device_name(value: str, where: str) -> str:
    """A well-formed device, or list of different devices, that this machine has (cuda:N checked with torch)."""
    from pytest_sdxl.machine.devices import check_present

    name = value.strip()
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        check_present([name], name, where)
        return name
    # A list gives each pytest-xdist worker its own device (worker gwK takes entry K).
    devices = [part.strip() for part in name.split(",")]
    if len(devices) < 2 or not all(re.fullmatch(r"cuda:\d+", device) for device in devices):
        raise SettingsError(f"{where}: {value!r} is not a device; {DEVICES_ACCEPTED}")
    twice = next((device for index, device in enumerate(devices) if device in devices[:index]), None)
    if twice is not None:
        raise SettingsError(
            f"{where}: {value!r} names {twice} twice: two pytest-xdist workers on one GPU would time each other's "
            "kernels; accepted: a list of different devices such as cuda:0,cuda:1"
        )
    listed = ",".join(devices)
    check_present(devices, listed, where)
    return listed


def dtype_name(value: str, where: str) -> str:
    from pytest_sdxl.machine.devices import DTYPE_NAMES

    if value == "auto" or value.lower() in DTYPE_NAMES:
        return value if value == "auto" else DTYPE_NAMES[value.lower()]
    raise SettingsError(f"{where}: {value!r} is not a precision; accepted: auto, {', '.join(sorted(DTYPE_NAMES))}")


def variant_list(value: str, where: str) -> tuple[Composition, ...] | None:
    """The named compositions, or None for a selection word (``Settings.variant_selection`` says which)."""
    if value.strip().lower() in VARIANT_SELECTIONS:
        return None  # without the registry (every built-in variant): the default must stay cheap to resolve
    from pytest_sdxl.variants.registry import parse_list, valid_names

    if not value:
        # An empty list is most likely a CI variable that was never filled in: running every
        # variant instead would hide that, so it is refused (an unset option never gets here).
        raise SettingsError(
            f"{where}: empty list of variants; accepted: auto, all, or a comma-separated list of names "
            f"(compose with +) from: {', '.join(valid_names())}"
        )
    try:
        return tuple(parse_list(value))
    except VariantSpecError as error:
        raise SettingsError(f"{where}: {error}") from None


PROMPTS_ACCEPTED = "accepted: a UTF-8 text file of at least 2 prompts, one a line, or default"
# The protocol's first prompt is the first generation's and the rest are timed: one prompt leaves nothing to time.
FEWEST_PROMPTS = 2


def prompt_file(value: str, where: str) -> tuple[str, ...]:
    if value in ("", "default"):
        return DEFAULT_PROMPTS
    path = Path(value).expanduser()

    def refused(problem: str) -> SettingsError:
        return SettingsError(f"{where}: prompt file {value!r} {problem}; {PROMPTS_ACCEPTED}")

    if path.is_dir():
        raise refused("is a folder")
    if not path.is_file():
        raise refused("does not exist")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise refused(f"cannot be read ({error.strerror or type(error).__name__})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refused(f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})") from None
    if "\x00" in text:
        raise refused("holds a NUL byte: it is not text")
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not prompts:
        raise refused("holds no prompt")
    if len(prompts) < FEWEST_PROMPTS:
        raise refused("holds 1 prompt: the first generation takes it and none is left to time")
    return prompts


def output_folder(value: str, where: str) -> Path | None:
    """An output folder (report, trace), checked before anything is measured: results must never be lost."""
    from pytest_sdxl.machine.folders import writable_folder

    return writable_folder(value, where) if value else None


def compile_cache_folder(value: str, where: str) -> Path | None:
    from pytest_sdxl.machine.compile_cache import folder_from_setting

    return folder_from_setting(value, where)


def seed_value(value: str, where: str) -> int:
    return whole_number(value, where, SEED_RANGE, "a signed 64-bit number, so that seed + i fits torch's generators")


def lpips_weights_path(value: str, where: str) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise SettingsError(
            f"{where}: {value!r} does not exist; give torchvision's AlexNet checkpoint (alexnet-owt-*.pth) "
            "or the folder holding it, or leave it unset to measure SSIM and PSNR without LPIPS"
        )
    return path


def profile_name(value: str, where: str) -> str:
    name = value.strip().lower()
    if name not in PROFILES:
        raise SettingsError(
            f"{where}: {value!r} is not a profile; accepted: gate (the gated signals, for pull requests), "
            "full (every signal) or reference (the reference protocol's fixed rounds)"
        )
    return name


def seconds_in_range(value: str, where: str, word: str, examples: str) -> float | None:
    """Seconds within ``BUDGET_RANGE``, or None for ``word`` (what the option's default means)."""
    if value.strip().lower() == word:
        return None
    low, high = BUDGET_RANGE
    accepted = f"accepted: {word}, or seconds from {low:g} to {high:g}, e.g. {examples}"
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a number of seconds; {accepted}") from None
    if not low <= seconds <= high:  # also refuses nan
        raise SettingsError(f"{where}: {value!r} is outside the range; {accepted}")
    return seconds


def budget_seconds(value: str, where: str) -> float | None:
    """Seconds, or None for ``auto`` (``AUTO_BUDGET_S`` by device type)."""
    return seconds_in_range(value, where, "auto", "30 or 12.5")


def session_seconds(value: str, where: str) -> float | None:
    """Seconds for a whole session's measuring, or None for ``none`` (no session budget)."""
    return seconds_in_range(value, where, "none", "900 or 60")


# Each option's parser, by name: kept here, not in the option table, so that the plugin's start-up
# imports the table without the checks (the measurement method page, "The plugin's cost where unused").
PARSERS: dict[str, Callable[[str, str], Any]] = {
    "model": model_source,
    "device": device_name,
    "dtype": dtype_name,
    "size": image_size,
    "steps": step_count,
    "prompts": prompt_file,
    "runs": run_count,
    "variants": variant_list,
    "profile": profile_name,
    "variant_budget": budget_seconds,
    "session_budget": session_seconds,
    "report": output_folder,
    "trace": output_folder,
    "seed": seed_value,
    "tiny_vae": vae_source,
    "fp16_vae": vae_source,
    "compile_cache": compile_cache_folder,
    "lpips_weights": lpips_weights_path,
}


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
    # Wall seconds for the whole session's measuring, shared out among its variants
    # (``measure.session_budget``); None: no session budget.
    session_budget: float | None = None
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
            + ("" if self.session_budget is None else f" session_budget={self.session_budget:g}")
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
    wheres: dict[str, str] = {}
    for option in OPTIONS:
        flag = option.plugin_flag if flag_style == "plugin" else option.flag
        candidates = (
            (command_line.get(option.name), f"command line {flag}"),
            (environment.get(option.environment_variable), f"environment variable {option.environment_variable}"),
            (ini.get(option.name), f"{ini_name} key {option.ini_key}"),
            (option.default, f"default of {flag}"),
        )
        raw, where = next((value, where) for value, where in candidates if value is not None)
        values[option.name] = PARSERS[option.name](str(raw), where)
        wheres[option.name] = where
        if option.name == "variants":
            word = str(raw).strip().lower()
            values["variant_selection"] = word if word in VARIANT_SELECTIONS else "named"
    if values["session_budget"] is not None and values["profile"] == "reference":
        # Refused rather than ignored: the reference profile's fixed rounds cannot be shortened, so the session
        # would run past the deadline it was given, and a user who set one wants to know that before it starts.
        raise SettingsError(
            f"{wheres['session_budget']}: a session budget needs the gate or full profile, but the profile is "
            f"reference ({wheres['profile']}), whose fixed rounds no budget shortens; accepted: a session budget "
            "with the gate or full profile, or none with reference"
        )
    if values["runs"] is None:
        values["runs"] = PROFILE_RUNS[values["profile"]]
    check_compile_budget(environment)
    return Settings(**values, sources={name: where.split(" ")[0] for name, where in wheres.items()})


def check_compile_budget(environment: Mapping[str, str]) -> None:
    """A typo in the compile budget refused before anything is measured, not found by the first compiled variant
    (which would then be recorded as skipped, and kept skipped by a resumed run)."""
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.variants.compilation import BUDGET_VARIABLE, budget_seconds

    try:
        budget_seconds(environment)
    except VariantUnavailable:
        raise SettingsError(
            f"environment variable {BUDGET_VARIABLE}: {environment[BUDGET_VARIABLE]!r} is not accepted; accepted: "
            "a positive number of seconds, e.g. 600, 600s or 10m"
        ) from None
