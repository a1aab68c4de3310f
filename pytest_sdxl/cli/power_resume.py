"""``power --resume``: one experiment's trials grown over several commands in its ``--json`` file.

A command limited to ten minutes (a CI job's step, a machine with a per-command time limit) holds one or two
cross-process trials. With ``--resume`` the ``--json`` file is read back before anything is measured: its trials
are kept, the injections are sized from its calibration (every command then measures one slowdown, and only the
first pays the calibration process), and only the trials that ``--trials`` still asks for are measured; after
each one the file holds the trials of every command so far. A file of another experiment is refused, naming
what differs: trials of two experiments added up would be the rate of neither.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.cli.power_calibration import (
    calibration_of,
    earlier_power,
    refuse_another_experiment,
    same_calibration_experiment,
    this_card,
)
from pytest_sdxl.errors import SettingsError

if TYPE_CHECKING:
    from pytest_sdxl.measure.power import PowerResult
    from pytest_sdxl.measure.power_processes import Calibration
    from pytest_sdxl.settings import Settings

ACCEPTED = "give the --json file of an earlier power --resume run with the same options on this card, or a new file"


def resumed_trials(arguments: argparse.Namespace, settings: Settings) -> PowerResult | None:
    """The trials already in ``--json``'s file, shown to be this experiment's; None where there is no file yet."""
    from pytest_sdxl.measure import interleave
    from pytest_sdxl.measure.power import injection_name
    from pytest_sdxl.variants.registry import parse

    if arguments.json is None:
        raise SettingsError("--resume needs --json FILE: the trials go on in that file, and it keeps them")
    if arguments.across != "processes":
        raise SettingsError(
            "--resume applies to --across processes only: --across rounds measures its calibration and every trial "
            "in one process, so a later command's trials would not be measured against the same calibration"
        )
    if not Path(arguments.json).exists():
        return None
    if arguments.calibration is not None:
        raise SettingsError(
            f"--resume {arguments.json}: the file exists, and its own calibration sizes the injections; give "
            "--calibration only to a first command, whose file does not exist yet"
        )
    earlier = earlier_power("--resume", arguments.json)
    untouched = "none" if arguments.untouched is None else parse(arguments.untouched).id
    injections = sorted(injection_name(kind, level) for kind, level in arguments.inject)
    found = same_calibration_experiment(earlier, settings, parse(arguments.variant), this_card(settings))
    found["processes a side"] = (earlier.processes, arguments.processes or interleave.DEFAULT_PAIRS)
    found["untouched variant"] = (earlier.untouched or "none", untouched)
    found["injection set"] = (", ".join(sorted(earlier.detections)), ", ".join(injections))
    refuse_another_experiment("--resume", arguments.json, found, ACCEPTED)
    return earlier


def resumed_calibration(earlier: PowerResult, path: str) -> Calibration:
    """The earlier trials' injection sizes, recorded as coming from where theirs came from."""
    return calibration_of(earlier, "--resume", path, source=earlier.calibration_from)
