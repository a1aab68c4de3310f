"""The option table: every setting's name, default, help text and accepted range, said once.

The pytest plugin adds each as an ``--sdxl-<name>`` option and an ``sdxl_<name>`` ini key, the
command line as ``--<name>``, and ``PYTEST_SDXL_<NAME>`` environment variables are read for both;
``pytest_sdxl.settings`` checks the values (its ``PARSERS``) and resolves them into one ``Settings``.
The plugin imports this module in every pytest session, so it holds no checks, no dataclass and
no import beyond the standard library (the measurement method page, "The plugin's cost where unused").
"""

from __future__ import annotations

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


# The variant selections a word names; any other value is a list of names. ``auto`` (the default) is every
# variant on a GPU and, on a CPU, every one but those a CPU takes minutes over (compiled ones, bfloat16:
# ``Variant.slow_on_cpu``); ``all`` is every variant wherever it runs.
VARIANT_SELECTIONS = ("auto", "all")


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


# Seconds of timed rounds per variant, and of a whole session's measuring (``--session-budget``): a day is far
# beyond any measurement worth waiting for, so a larger number is a slip (seconds typed as milliseconds).
BUDGET_RANGE = (0.1, 86400.0)
# What ``auto`` gives, by device type. On a GPU, 30 s holds the fixed protocol's rounds of a batch variant
# of random:sdxl-turbo on an H100 (144 rounds of about 0.2 s) with room for a noisy host. On a CPU the tiny
# model is a check of the harness, not a measurement of a GPU's code paths: 2 s a variant keeps the
# reference suite's CPU job near a minute on two cores, past the minimum rounds only where they are quick.
AUTO_BUDGET_S = {"cuda": 30.0, "cpu": 2.0}


# A plain class, not a frozen dataclass: the plugin builds this table in every pytest session, and
# creating a dataclass (it compiles its generated methods) cost about 1 ms of the plugin's import.
class Option:
    """One setting: its name (``model``), default and help text (said once, used everywhere)."""

    def __init__(self, name: str, default: str, help: str, metavar: str = "VALUE") -> None:
        self.name = name
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
        "random:tiny",
        "Model source: random:tiny, random:sdxl-turbo, a hub id or a local folder",
        "SOURCE",
    ),
    Option(
        "device",
        "auto",
        "Device: auto (cuda when present, else cpu), cpu, cuda, cuda:N, or one per xdist worker (cuda:0,cuda:1)",
        "DEVICE",
    ),
    Option(
        "dtype",
        "auto",
        "Precision: auto (float16 on cuda, float32 on cpu), float16, bfloat16 or float32",
        "DTYPE",
    ),
    Option(
        "size",
        "auto",
        f"Image side in pixels, a multiple of 8 from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}, or auto (the model's "
        "default, 32 on random:tiny)",
        "PIXELS",
    ),
    Option("steps", "1", f"Inference steps per image, {STEPS_RANGE[0]} to {STEPS_RANGE[1]}", "N"),
    Option("prompts", "default", "File of prompts, one a line (default: five built-in prompts)", "FILE"),
    Option(
        "runs",
        "auto",
        f"Runs of the protocol, {RUNS_RANGE[0]} to {RUNS_RANGE[1]}, each from a fresh load, or auto (3 in the "
        "reference profile, 2 in gate and full)",
        "N",
    ),
    Option(
        "variants",
        "auto",
        "Variants to run: auto (every one; on a CPU all but those it takes minutes over: compiled, bf16), all "
        "(every one), or a comma-separated list, each a name or names joined with + (default: auto)",
        "LIST",
    ),
    Option(
        "profile",
        "full",
        "What to measure: gate (the gated signals, rounds stopped once narrow enough; for pull requests), full "
        "(every signal, rounds stopped the same way) or reference (the reference protocol's fixed rounds)",
        "NAME",
    ),
    Option(
        "variant_budget",
        "auto",
        "Seconds of timed rounds per variant (all its runs) within which gate and full stop sampling: auto "
        f"({AUTO_BUDGET_S['cuda']:g} on a GPU, {AUTO_BUDGET_S['cpu']:g} on a CPU) or a number; the minimum rounds are "
        "always timed",
        "SECONDS",
    ),
    Option(
        "session_budget",
        "none",
        "Wall seconds for the whole session's measuring, loads and compiles included, under gate and full: each "
        "variant's budget becomes at most the seconds left over the variants left; none or a number; the minimum "
        "rounds are always timed, so it can be passed",
        "SECONDS",
    ),
    Option("report", "", "Folder to write results.json, results.md and results.png to", "DIR"),
    Option(
        "trace",
        "",
        "Folder to keep a Chrome trace of one generation per variant in (<variant>.json, opens in Perfetto)",
        "DIR",
    ),
    Option("seed", "0", "Seed of the first prompt's generator; prompt i uses seed + i", "N"),
    Option(
        "tiny_vae",
        "madebyollin/taesdxl",
        "Tiny autoencoder weights for tiny_vae: hub id, folder, or random",
        "SOURCE",
    ),
    Option(
        "fp16_vae",
        "madebyollin/sdxl-vae-fp16-fix",
        "fp16-fix VAE weights for fp16_vae: hub id, folder, or random",
        "SOURCE",
    ),
    Option(
        "compile_cache",
        "auto",
        "Folder keeping torch's compiled kernels between sessions: auto (pytest-sdxl/compile in "
        "$XDG_CACHE_HOME or ~/.cache), a folder, or off",
        "DIR",
    ),
    Option(
        "lpips_weights",
        "",
        "The LPIPS backbone on disk (torchvision's AlexNet checkpoint, or its folder), never downloaded; "
        "without it LPIPS is n/a and SSIM and PSNR are still measured",
        "PATH",
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}
