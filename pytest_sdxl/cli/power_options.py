"""The ``power`` command's own option values, checked: ``--trials`` and ``--inject`` as they are parsed,
``--work-folder`` and ``--untouched`` before anything is measured across processes.

A refused value is a usage error that says what is accepted, given before the first process starts: a work folder
that holds another measurement's processes, or another experiment's (a resumed command would reuse processes that
ran another trial's order), and an untouched variant the injection would reach (the slowed variant, or one timed
beside it as its side-by-side reference). Apart from ``cli.power``, which runs the trials and writes their files;
the options other commands share are ``cli.options``'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.cli.options import checked_folder, threshold_argument
from pytest_sdxl.cli.power_calibration import refuse_another_experiment
from pytest_sdxl.errors import SettingsError

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition


# What a work folder's processes belong to, kept in it: a resumed command over the folder of another experiment
# would reuse processes that ran the same thing in another trial's order (another set of heads interleaved).
EXPERIMENT_FILE = "experiment.json"


def work_folder(value: str, resumed: bool, experiment: dict[str, object]) -> Path:
    """``--work-folder``: empty for a new experiment; resumed, it may hold an earlier command's processes to reuse,
    if they are this ``experiment``'s (its ``experiment.json``, written here where there is none)."""
    from pytest_sdxl.results.schema import write_atomically

    folder = checked_folder(value, "--work-folder")
    assert folder is not None
    if not resumed and folder.is_dir() and any(folder.iterdir()):
        raise SettingsError(
            f"--work-folder {value!r} is not empty: its processes are another measurement's; give a new or empty "
            "folder, or --resume with that measurement's --json file to go on from them"
        )
    marker = folder / EXPERIMENT_FILE
    if marker.is_file():
        try:
            earlier = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SettingsError(f"--work-folder {value!r}: {EXPERIMENT_FILE} cannot be read ({error})") from None
        found = {
            label: (earlier.get(label) if isinstance(earlier, dict) else None, now) for label, now in experiment.items()
        }
        refuse_another_experiment(
            "--work-folder", value, found, "give the work folder of this experiment's earlier commands, or a new one"
        )
    else:
        write_atomically(marker, json.dumps(experiment, indent=2) + "\n")
    return folder


def refuse_untouched(given: str, untouched: Composition, slowed: Composition) -> None:
    """An untouched variant the injection would reach is refused: the slowed one, or one timed against it."""
    from pytest_sdxl.measure.calls import side_by_side_reference

    if untouched.id == slowed.id:
        raise SettingsError(
            f"--untouched {given} is the slowed variant ({slowed.id}, --variant); give another variant, one the "
            "injection leaves alone"
        )
    reference = side_by_side_reference(untouched)
    if reference is not None and reference.id == slowed.id:
        # Its wall ratio is its time over the reference's, round by round, so slowing the reference moves it.
        raise SettingsError(
            f"--untouched {untouched.id} is timed beside {slowed.id}, the slowed variant, as its side-by-side "
            "reference, so the injection would move its wall ratio; give a variant whose reference is another"
        )


def trial_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not accepted; give a whole number of trials (0: the calibration only, across processes)"
        )
    return int(text)


def injections_argument(text: str) -> tuple[tuple[str, float], ...]:
    """'host:5%,device:2%' -> (('host', 0.05), ('device', 0.02)); the error says what is accepted."""
    from pytest_sdxl.measure.power import KINDS

    chosen = []
    for part in (item.strip() for item in text.split(",") if item.strip()):
        kind, _, level = part.partition(":")
        if kind not in KINDS or not level:
            raise argparse.ArgumentTypeError(
                f"injection {part!r} not accepted; give kind:level, kind {' or '.join(KINDS)}, e.g. host:5%,device:2%"
            )
        chosen.append((kind, threshold_argument(level)))
    if not chosen:
        raise argparse.ArgumentTypeError(f"no injection in {text!r}; e.g. host:5%,device:2%")
    return tuple(chosen)
