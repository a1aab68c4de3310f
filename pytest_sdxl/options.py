"""The option table: every setting's name, parser, default and help, and the checks of what users type.

The single description of every setting: the pytest plugin adds it as ``--sdxl-<name>`` options and
``sdxl_<name>`` ini keys, the command line as ``--<name>``, and ``PYTEST_SDXL_<NAME>`` environment
variables are read for both; ``pytest_sdxl.settings`` resolves the values into one ``Settings``. The
plugin imports this module in every pytest session, so it stays cheap: no dataclass, and no torch or
variant registry until a value that needs them is checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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

# The accepted ranges, inclusive; a value outside is a usage error naming its range, before anything loads.
# Steps: SDXL-Turbo's scheduler has 1,000 training timesteps, so no schedule has more steps than that
# (more never finished the first generation: the timestep spacing reaches zero).
STEPS_RANGE = (1, 1000)
# Size: 4096 is four times SDXL's native 1024 a side (16 times the pixels), beyond what anyone measures
# on one card today (the VAE decode alone outgrows 80 GB there without vae_tiling); a larger number is
# far more likely a slip of the keyboard (40960) that would only fail after the model was loaded.
SIZE_RANGE = (8, 4096)
# Runs: each command-line run loads the model afresh (a block of ten or more timed calls under pytest);
# the statistics settle well within a few dozen, and 100 runs of a real model already take hours.
RUNS_RANGE = (1, 100)
# Seed: prompt i is seeded seed + i; torch's generators take up to 2**64 - 1, so a signed 64-bit seed
# leaves room for any number of prompts.
SEED_RANGE = (-(2**63), 2**63 - 1)


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


# The variant selections a word names; any other value is a list of names. ``auto`` (the default) is every
# variant on a GPU and, on a CPU, every one but those a CPU takes minutes over (compiled ones, bfloat16:
# ``Variant.slow_on_cpu``); ``all`` is every variant wherever it runs.
VARIANT_SELECTIONS = ("auto", "all")


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


PROMPTS_ACCEPTED = "accepted: a UTF-8 text file, one prompt a line, or default"


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
    return prompts


def output_folder(value: str, where: str) -> Path | None:
    """An output folder (report, trace), checked before anything is measured: results must never be lost."""
    from pytest_sdxl.machine.folders import writable_folder

    return writable_folder(value, where) if value else None


def model_source(value: str, where: str) -> str:
    if not value.strip():
        raise SettingsError(f"{where}: empty model; accepted: random:tiny, random:sdxl-turbo, a hub id or a folder")
    return value.strip()


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


# What each profile measures (the user guide's command-line page, "Profiles"):
# - gate: what a pull request's gate judges and nothing else: the gated signals (wall ratio, kernel time and
#   launches, peak memory), no stage split, FLOPs, image quality or energy; rounds stop once the intervals
#   are narrow enough for the gate's thresholds (``measure.sequential``), within the budget;
# - full: every signal, rounds stopped as in gate (the default: a reader of one session's tables wants
#   every figure, and fixed round counts spend time where the interval is narrow already and too little
#   where it is not);
# - reference: the reference protocol's fixed sampling as it has always been (the rounds ``rounds_per_run``
#   gives, every signal), for tables comparable with earlier ones.
PROFILES = ("gate", "full", "reference")
# Runs when ``--runs`` is auto. The reference protocol's three. Gate and full take two: their rounds stop by
# the interval (``measure.sequential``), a run holds at least one wall block either way, and between two CI
# jobs the unit that matters is the process (``analysis.processes``), not a third run inside one; on the
# 2-core CPU a third run was a third of the reference suite's time (the user guide's command-line page,
# "Profiles").
PROFILE_RUNS = {"gate": 2, "full": 2, "reference": 3}


def profile_name(value: str, where: str) -> str:
    name = value.strip().lower()
    if name not in PROFILES:
        raise SettingsError(
            f"{where}: {value!r} is not a profile; accepted: gate (the gated signals, for pull requests), "
            "full (every signal) or reference (the reference protocol's fixed rounds)"
        )
    return name


# Seconds of timed rounds per variant: a day is far beyond any measurement worth waiting for, so a larger
# number is a slip (seconds typed as milliseconds).
BUDGET_RANGE = (0.1, 86400.0)
# What ``auto`` gives, by device type. On a GPU, 30 s holds the fixed protocol's rounds of a batch variant
# of random:sdxl-turbo on an H100 (144 rounds of about 0.2 s) with room for a noisy host. On a CPU the tiny
# model is a check of the harness, not a measurement of a GPU's code paths: 2 s a variant keeps the
# reference suite's CPU job near a minute on two cores, past the minimum rounds only where they are quick.
AUTO_BUDGET_S = {"cuda": 30.0, "cpu": 2.0}


def budget_seconds(value: str, where: str) -> float | None:
    """Seconds, or None for ``auto`` (``AUTO_BUDGET_S`` by device type)."""
    if value.strip().lower() == "auto":
        return None
    low, high = BUDGET_RANGE
    accepted = f"accepted: auto, or seconds from {low:g} to {high:g}, e.g. 30 or 12.5"
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{where}: {value!r} is not a number of seconds; {accepted}") from None
    if not low <= seconds <= high:  # also refuses nan
        raise SettingsError(f"{where}: {value!r} is outside the range; {accepted}")
    return seconds


# A plain class, not a frozen dataclass: the plugin builds this table in every pytest session, and
# creating a dataclass (it compiles its generated methods) cost about 1 ms of the plugin's import.
class Option:
    """One setting: its name (``model``), parser, default and help text (said once, used everywhere)."""

    def __init__(
        self, name: str, parse: Callable[[str, str], Any], default: str, help: str, metavar: str = "VALUE"
    ) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.help = help
        self.metavar = metavar
        self.flag = "--" + name.replace("_", "-")
        self.plugin_flag = "--sdxl-" + name.replace("_", "-")
        self.ini_key = "sdxl_" + name
        self.environment_variable = "PYTEST_SDXL_" + name.upper()


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
    Option(
        "size",
        image_size,
        "auto",
        f"Image side in pixels, a multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}, or auto (the model's "
        "default, 64 on random:tiny)",
        "PIXELS",
    ),
    Option("steps", step_count, "1", f"Inference steps per image, {STEPS_RANGE[0]} to {STEPS_RANGE[1]}", "N"),
    Option("prompts", prompt_file, "default", "File of prompts, one a line (default: five built-in prompts)", "FILE"),
    Option(
        "runs",
        run_count,
        "auto",
        f"Runs of the protocol, {RUNS_RANGE[0]} to {RUNS_RANGE[1]}, each from a fresh load, or auto (3 in the "
        "reference profile, 2 in gate and full)",
        "N",
    ),
    Option(
        "variants",
        variant_list,
        "auto",
        "Variants to run: auto (every one; on a CPU all but those it takes minutes over: compiled, bf16), all "
        "(every one), or a comma-separated list, each a name or names joined with + (default: auto)",
        "LIST",
    ),
    Option(
        "profile",
        profile_name,
        "full",
        "What to measure: gate (the gated signals, rounds stopped once narrow enough; for pull requests), full "
        "(every signal, rounds stopped the same way) or reference (the reference protocol's fixed rounds)",
        "NAME",
    ),
    Option(
        "variant_budget",
        budget_seconds,
        "auto",
        "Seconds of timed rounds per variant (all its runs) within which gate and full stop sampling: auto "
        f"({AUTO_BUDGET_S['cuda']:g} on a GPU, {AUTO_BUDGET_S['cpu']:g} on a CPU) or a number; the minimum rounds are "
        "always timed",
        "SECONDS",
    ),
    Option("report", output_folder, "", "Folder to write results.json, results.md and results.png to", "DIR"),
    Option(
        "trace",
        output_folder,
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
