"""Whether results measured the same thing: one list of checks for ``merge``, ``run --resume`` and ``compare``.

A figure is only comparable with one measured on the same workload (model, image size, steps, dtype,
prompts), on the same card (the GPU's name, or the CPU's for a run on the CPU) with the same software
(torch, diffusers, transformers, CUDA, Python and, on a GPU, its driver). Each command checks those
and adds what its own output needs:
- ``merge`` joins lanes into one report under one header, so the run count and what the PSNR column
  depends on (seed, the VAE weights' sources) must match too (``MERGE``); ``--pool-runs`` adds up run
  counts, so they may differ (``POOL``). A mismatch is always refused: the joined file would lie.
- ``run --resume`` checks the merge's list before measuring, with the image size as requested (the
  resolved size is known only once the model is loaded; the join checks it afterwards) (``RESUME``).
- Every command checks the harness: results of the pytest plugin and of ``run`` never join, and are
  compared only with ``--allow-mismatch``.
- ``compare`` checks the workload, the card and the software (``COMPARE``): the run count may differ
  (each side's statistics use its own runs), and so may the seed and the VAE weights' sources, which
  change images, not work. The software is checked as strictly as ``merge`` does: an upgrade of torch
  under the code being compared moves the figures as much as the code does, so a verdict across one is
  refused too, until ``--allow-mismatch`` acknowledges it (the command line then prints each difference
  as a warning above the verdict, so a log that says "regressed" also says what else changed). A
  session held by both sides is said too (results.sessions).
Host names, core counts and GPU indices may differ everywhere: lanes of one machine see one GPU each,
and identical cards in two machines measure alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_sdxl.results.schema import ResultSet, ResultsFileError
from pytest_sdxl.results.sessions import repeated_sessions


class NotComparable(ResultsFileError):
    """Results that measured different things were given to be compared (a usage error)."""


def always(result_set: ResultSet) -> bool:
    return True


@dataclass(frozen=True)
class Check:
    """One thing two results must share: its name in messages and how to read it from a result set."""

    label: str
    read: Callable[[ResultSet], object]
    # Whether it means anything for a result set (a GPU driver, for a run on the CPU, does not): it is
    # compared only where it means something on both sides.
    applies: Callable[[ResultSet], bool] = always
    # Whether the result set's file records it at all (files of older writers may not): where one side
    # does not, it cannot be checked, which is said (``unchecked``) rather than refused as a difference.
    recorded: Callable[[ResultSet], bool] = always


def setting(key: str) -> Callable[[ResultSet], object]:
    return lambda result_set: result_set.settings.get(key)


def software(key: str) -> Callable[[ResultSet], object]:
    return lambda result_set: result_set.machine.get(key)


def in_settings(*keys: str) -> Callable[[ResultSet], bool]:
    return lambda result_set: any(key in result_set.settings for key in keys)


def in_machine(key: str) -> Callable[[ResultSet], bool]:
    return lambda result_set: key in result_set.machine


def of_setting(label: str, key: str) -> Check:
    return Check(label, setting(key), recorded=in_settings(key))


def of_software(label: str, key: str, applies: Callable[[ResultSet], bool] = always) -> Check:
    return Check(label, software(key), applies, in_machine(key))


def dtype(result_set: ResultSet) -> object:
    """The resolved dtype, spelled alike by the plugin ('float16') and the command line ('torch.float16')."""
    value = result_set.settings.get("resolved_dtype") or result_set.settings.get("dtype")
    return value.removeprefix("torch.") if isinstance(value, str) else value


def dtype_known(result_set: ResultSet) -> bool:
    return dtype(result_set) not in (None, "auto")


def measured_on_cpu(result_set: ResultSet) -> bool:
    device = str(result_set.settings.get("resolved_device") or result_set.settings.get("device") or "")
    return device.startswith("cpu") or (not device.startswith("cuda") and not result_set.machine.get("gpu"))


def card(result_set: ResultSet) -> object:
    """The GPU a result set was measured on, or 'CPU <name>' for a run on the CPU (whatever GPU the host has)."""
    if measured_on_cpu(result_set):
        return " ".join(["CPU", *([str(result_set.machine["cpu"])] if "cpu" in result_set.machine else [])])
    return result_set.machine.get("gpu")


def card_recorded(result_set: ResultSet) -> bool:
    return "gpu" in result_set.machine or "cpu" in result_set.machine


def on_gpu(result_set: ResultSet) -> bool:
    return not measured_on_cpu(result_set)


def harness(result_set: ResultSet) -> str:
    """'pytest plugin' or 'command line': who measured, the words before the recorded description's colon.

    The plugin has recorded its harness in every file it wrote; ``run`` records none, so a file without one
    is the command line's. Only the name is compared: the description after it may be reworded.
    """
    recorded = result_set.settings.get("harness")
    return str(recorded).split(":", 1)[0] if recorded else "command line"


MODEL = of_setting("model", "model")
STEPS_DTYPE_PROMPTS = (
    of_setting("steps", "steps"),
    Check("dtype", dtype, dtype_known, in_settings("resolved_dtype", "dtype")),
    of_setting("prompts", "prompts"),
)
# What was measured: the work of one generation.
WORKLOAD = (MODEL, of_setting("image size", "image_size"), *STEPS_DTYPE_PROMPTS)
# What the images (the PSNR column) depend on beyond the workload.
IMAGES = (
    of_setting("seed", "seed"),
    of_setting("tiny VAE weights", "tiny_vae"),
    of_setting("fp16 VAE weights", "fp16_vae"),
)
RUNS = (of_setting("runs", "runs"),)
CARD = (Check("card", card, recorded=card_recorded),)
SOFTWARE = (
    of_software("torch", "torch"),
    of_software("diffusers", "diffusers"),
    of_software("transformers", "transformers"),
    of_software("CUDA", "cuda"),
    of_software("Python", "python"),
    of_software("GPU driver", "gpu_driver", on_gpu),
)

# The plugin's runs are blocks of rounds on one warm pipeline, the command line's a fresh load each: a
# file never holds both, and a verdict between them would be about the harness as much as the change.
HARNESS = (Check("harness", harness),)

COMPARE = (*WORKLOAD, *CARD, *SOFTWARE, *HARNESS)
POOL = (*WORKLOAD, *IMAGES, *CARD, *SOFTWARE, *HARNESS)
MERGE = (*WORKLOAD, *RUNS, *IMAGES, *CARD, *SOFTWARE, *HARNESS)
RESUME = (MODEL, of_setting("image size (as requested)", "size"), *STEPS_DTYPE_PROMPTS, *MERGE[len(WORKLOAD) :])


def shown(value: object) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


@dataclass(frozen=True)
class Difference:
    """One check on which a later result set differs from the first, with the names of both."""

    label: str
    first: object
    other: object
    first_name: str
    other_name: str

    def describe(self, names: bool = False) -> str:
        """'model: random:tiny vs random:sdxl-turbo'; with ``names``, each value followed by its file."""
        if names:
            return f"{self.label}: {shown(self.first)} ({self.first_name}) vs {shown(self.other)} ({self.other_name})"
        return f"{self.label}: {shown(self.first)} vs {shown(self.other)}"


def differences(named: Sequence[tuple[str, ResultSet]], checks: Sequence[Check]) -> list[Difference]:
    """Each check on which a later result set differs from the first, check by check."""
    first_name, first = named[0]
    found = []
    for check in checks:
        for name, other in named[1:]:
            if not (check.applies(first) and check.applies(other) and check.recorded(first) and check.recorded(other)):
                continue
            expected, value = check.read(first), check.read(other)
            if value != expected:
                found.append(Difference(check.label, expected, value, first_name, name))
    return found


def unchecked(named: Sequence[tuple[str, ResultSet]], checks: Sequence[Check]) -> list[str]:
    """One line per file that lacks some of the checks' keys (an older writer's file): what could not be checked."""
    lines = []
    for name, result_set in named:
        missing = [check.label for check in checks if not check.recorded(result_set)]
        if missing:
            lines.append(f"{name} does not record {', '.join(missing)}, so that could not be checked")
    return lines


def mismatch_lines(named: Sequence[tuple[str, ResultSet]], checks: Sequence[Check]) -> list[str]:
    """The differences, one line each; the files are named on each line when there are more than two."""
    return [item.describe(names=len(named) > 2) for item in differences(named, checks)]


def refuse_differences(named: Sequence[tuple[str, ResultSet]], checks: Sequence[Check], advice: str) -> None:
    """ResultsFileError listing every difference, then ``advice``, where there is any."""
    found = mismatch_lines(named, checks)
    if found:
        files = " and ".join(name for name, _ in named) if len(named) == 2 else "these results files"
        raise ResultsFileError(f"{files} did not measure the same thing:\n- " + "\n- ".join(found) + "\n" + advice)


def refuse_nothing_in_common(base: tuple[str, ResultSet], new: tuple[str, ResultSet]) -> None:
    """NotComparable where no variant is in both files: every row would be 'missing', and a verdict of no
    regression over nothing compared would pass a gate that saw nothing. Never waived by --allow-mismatch."""
    names = {name: [record.variant for record in result_set.variants] for name, result_set in (base, new)}
    if set(names[base[0]]) & set(names[new[0]]):
        return
    held = "; ".join(f"{name} holds {', '.join(found) if found else 'no variant'}" for name, found in names.items())
    raise NotComparable(f"{base[0]} and {new[0]} have no variant in common, so nothing can be compared: {held}")


def comparison_warnings(base: tuple[str, ResultSet], new: tuple[str, ResultSet], allow_mismatch: bool) -> list[str]:
    """NotComparable naming each thing two results differ in; with ``allow_mismatch``, those as warnings.

    A session on both sides is warned of, never refused: the verdict is true of the figures (comparing a
    file with itself is a fair smoke test of the gate), but part of it compares a measurement with itself.
    """
    head = f"{base[0]} and {new[0]} did not measure the same thing"
    refuse_nothing_in_common(base, new)
    found = mismatch_lines([base, new], COMPARE)
    if found and not allow_mismatch:
        raise NotComparable(
            f"{head}, so a verdict between them would not be about the change under test:\n- "
            + "\n- ".join(found)
            + "\ncompare results of one model, image size, steps, dtype and prompts, on one card with one software "
            "stack; or pass --allow-mismatch to compare anyway, with each difference printed as a warning"
        )
    shared = repeated_sessions([(base[0], base[1].session_ids), (new[0], new[1].session_ids)])
    return (
        [f"warning: {head}: {line}" for line in found]
        + [f"warning: {line}: part of the comparison is of a measurement with itself" for line in shared]
        + [f"warning: {line}" for line in unchecked([base, new], COMPARE)]
    )
