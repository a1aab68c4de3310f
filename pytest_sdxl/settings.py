"""One frozen Settings object, resolved from the command line, then environment, then ini, then default.

The option table here is the single description of every setting: the pytest plugin adds it as
``--sdxl-<name>`` options and ``sdxl_<name>`` ini keys, the command line as ``--<name>``, and
``PYTEST_SDXL_<NAME>`` environment variables are read for both. No torch import here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.errors import SettingsError, VariantSpecError

if TYPE_CHECKING:
    # Imported where variant names are parsed, not here: the plugin loads this module at start-up.
    from pytest_sdxl.variants.registry import Composition

DEFAULT_PROMPTS = (
    "A cinematic shot of a baby racoon wearing an intricate italian priest robe.",
    "An astronaut riding a green horse, digital art",
    "A bowl of ramen on a wooden table, studio lighting, photorealistic",
    "A lighthouse on a cliff at sunset, oil painting",
    "A cozy reading nook with a cat sleeping on a stack of books",
)


def positive_int(value: str, where: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a whole number") from None
    if number < 1:
        raise SettingsError(f"{where}: {number} must be at least 1")
    return number


def image_size(value: str, where: str) -> int | None:
    if value == "auto":
        return None
    size = positive_int(value, where)
    if size % 8:
        raise SettingsError(f"{where}: {size} must be a multiple of 8 (the VAE's scale), e.g. 512 or 64")
    return size


def device_name(value: str, where: str) -> str:
    if "," not in value and (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
        return value
    # A list gives each pytest-xdist worker its own device (worker gwK takes entry K).
    devices = [part.strip() for part in value.split(",")]
    if len(devices) > 1 and all(re.fullmatch(r"cuda:\d+", device) for device in devices):
        return ",".join(devices)
    raise SettingsError(
        f"{where}: {value!r} is not a device; accepted: auto, cpu, cuda, cuda:N, "
        "or a list such as cuda:0,cuda:1 for pytest-xdist workers"
    )


def dtype_name(value: str, where: str) -> str:
    from pytest_sdxl.machine.devices import DTYPE_NAMES

    if value == "auto" or value.lower() in DTYPE_NAMES:
        return value if value == "auto" else DTYPE_NAMES[value.lower()]
    raise SettingsError(f"{where}: {value!r} is not a precision; accepted: auto, {', '.join(sorted(DTYPE_NAMES))}")


def variant_list(value: str, where: str) -> tuple[Composition, ...] | None:
    from pytest_sdxl.variants.registry import parse_list, valid_names

    if value == "all":
        return None
    if not value:
        # An empty list is most likely a CI variable that was never filled in: running every
        # variant instead would hide that, so it is refused (an unset option never gets here).
        raise SettingsError(
            f"{where}: empty list of variants; accepted: all, or a comma-separated list of names "
            f"(compose with +) from: {', '.join(valid_names())}"
        )
    try:
        return tuple(parse_list(value))
    except VariantSpecError as error:
        raise SettingsError(f"{where}: {error}") from None


def prompt_file(value: str, where: str) -> tuple[str, ...]:
    if value in ("", "default"):
        return DEFAULT_PROMPTS
    path = Path(value).expanduser()
    if not path.is_file():
        raise SettingsError(f"{where}: prompt file {value!r} does not exist; give a text file, one prompt a line")
    prompts = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not prompts:
        raise SettingsError(f"{where}: prompt file {value!r} holds no prompt; give one prompt a line")
    return prompts


def report_folder(value: str, where: str) -> Path | None:
    return Path(value).expanduser() if value else None


def model_source(value: str, where: str) -> str:
    if not value.strip():
        raise SettingsError(f"{where}: empty model; accepted: random:tiny, random:sdxl-turbo, a hub id or a folder")
    return value.strip()


def compile_cache_folder(value: str, where: str) -> Path | None:
    from pytest_sdxl.machine.compile_cache import folder_from_setting

    return folder_from_setting(value, where)


def seed_value(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a whole number") from None


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


@dataclass(frozen=True)
class Option:
    """One setting: its name (``model``), parser, default and help text (said once, used everywhere)."""

    name: str
    parse: Callable[[str, str], Any]
    default: str
    help: str
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def plugin_flag(self) -> str:
        return "--sdxl-" + self.name.replace("_", "-")

    @property
    def ini_key(self) -> str:
        return "sdxl_" + self.name

    @property
    def environment_variable(self) -> str:
        return "PYTEST_SDXL_" + self.name.upper()


OPTIONS = (
    Option(
        "model",
        model_source,
        "random:tiny",
        "Model source: random:tiny, random:sdxl-turbo, a hub id or a local folder",
        "SOURCE",
    ),
    Option(
        "device",
        device_name,
        "auto",
        "Device: auto (cuda when present, else cpu), cpu, cuda, cuda:N, or one per xdist worker (cuda:0,cuda:1)",
        "DEVICE",
    ),
    Option(
        "dtype",
        dtype_name,
        "auto",
        "Precision: auto (float16 on cuda, float32 on cpu), float16, bfloat16 or float32",
        "DTYPE",
    ),
    Option("size", image_size, "auto", "Image side in pixels: auto (the model's default, 64 on random:tiny)", "PIXELS"),
    Option("steps", positive_int, "1", "Inference steps per image", "N"),
    Option("prompts", prompt_file, "default", "File of prompts, one a line (default: five built-in prompts)", "FILE"),
    Option("runs", positive_int, "3", "Runs of the protocol, each from a fresh load", "N"),
    Option(
        "variants",
        variant_list,
        "all",
        "Comma-separated variants to run, each a name or names joined with + (default: all)",
        "LIST",
    ),
    Option("report", report_folder, "", "Folder to write results.json, results.md and results.png to", "DIR"),
    Option(
        "trace",
        report_folder,
        "",
        "Folder to keep a Chrome trace of one generation per variant in (<variant>.json, opens in Perfetto)",
        "DIR",
    ),
    Option("seed", seed_value, "0", "Seed of the first prompt's generator; prompt i uses seed + i", "N"),
    Option(
        "tiny_vae",
        model_source,
        "madebyollin/taesdxl",
        "Tiny autoencoder weights for tiny_vae: hub id, folder, or random",
        "SOURCE",
    ),
    Option(
        "fp16_vae",
        model_source,
        "madebyollin/sdxl-vae-fp16-fix",
        "fp16-fix VAE weights for fp16_vae: hub id, folder, or random",
        "SOURCE",
    ),
    Option(
        "compile_cache",
        compile_cache_folder,
        "auto",
        "Folder keeping torch's compiled kernels between sessions: auto (pytest-sdxl/compile in "
        "$XDG_CACHE_HOME or ~/.cache), a folder, or off",
        "DIR",
    ),
    Option(
        "lpips_weights",
        lpips_weights_path,
        "",
        "The LPIPS backbone on disk (torchvision's AlexNet checkpoint, or its folder), never downloaded; "
        "without it LPIPS is n/a and SSIM and PSNR are still measured",
        "PATH",
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


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
        variants = "all" if self.variants is None else ",".join(item.id for item in self.variants)
        size = "auto" if self.size is None else str(self.size)
        return (
            f"model={self.model} device={self.device} dtype={self.dtype} size={size} steps={self.steps} "
            f"prompts={len(self.prompts)} runs={self.runs} variants={variants}"
        )


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
    return Settings(**values, sources=origins)
