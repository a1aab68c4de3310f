"""``power --calibration FILE`` and ``--resume``: an earlier run's file read back, shown to be this experiment's.

Each ``power --across processes`` run sizes its injections from a first unchanged process. Trials that take
several commands (on a CI job or a machine with a per-command time limit) would then each measure a slightly
different slowdown, and every command would pay that process again. Given the ``--json`` file of an earlier run,
the trials take its sizes instead, once it is shown to be the same experiment's: measured across processes, on
the same variant, model and card. ``--resume`` goes further and keeps that file's trials, so it also
checks what the trials are counted over: the processes a side, the untouched variant and the injections.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.errors import SettingsError

if TYPE_CHECKING:
    from pytest_sdxl.measure.power import PowerResult
    from pytest_sdxl.measure.power_processes import Calibration
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.registry import Composition

ACCEPTED = "give the --json file of an earlier power --across processes run of this variant on this card"


def this_card(settings: Settings) -> str:
    """The card this machine measures the settings' device on: the GPU's name, or "CPU <name>" (as ``compare``)."""
    from pytest_sdxl.machine.probes import machine_info, resolved_precision
    from pytest_sdxl.results.compatibility import card
    from pytest_sdxl.results.schema import ResultSet

    found = card(ResultSet(settings=resolved_precision(settings), machine=machine_info(settings.device)))
    return "" if found is None else str(found)


def earlier_power(option: str, path: str) -> PowerResult:
    """The ``power --json`` file at ``path`` read back; ``option`` names the flag that gave it, in the error."""
    from pytest_sdxl.measure.power_results import power_from_dict

    try:
        return power_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise SettingsError(f"{option} {path}: cannot read it as power results ({error}); {ACCEPTED}") from None


def refuse_another_experiment(
    option: str, path: str, found: Mapping[str, tuple[object, object]], accepted: str = ACCEPTED
) -> None:
    """Refused unless each label's earlier value is this run's; a file that does not record its card too."""
    for label, (then, now) in found.items():
        if label == "card" and not then:
            raise SettingsError(
                f"{option} {path}: the file does not record the card it ran on (a run before power recorded "
                f"it), so it cannot be shown to be this card's ({now}); {accepted}"
            )
        if then != now:
            raise SettingsError(f"{option} {path}: its {label} is {then!r}, this run's {now!r}; {accepted}")


def same_calibration_experiment(
    earlier: PowerResult, settings: Settings, slowed: Composition, here: str
) -> dict[str, tuple[object, object]]:
    """What an earlier file must share with this run for its injection sizes to be this run's."""
    return {
        "mode": (earlier.across, "processes"),
        "variant": (earlier.variant, slowed.id),
        "model": (earlier.model, settings.model),
        "card": (earlier.card, here),
    }


def calibration_of(earlier: PowerResult, option: str, path: str, source: str) -> Calibration:
    """The injection sizes an earlier file holds, ``source`` recorded as where they came from."""
    from pytest_sdxl.measure.power_processes import Calibration

    wall_ms = earlier.calibration.get("wall_ms_per_call", math.nan)
    if not (math.isfinite(wall_ms) and wall_ms > 0):
        raise SettingsError(f"{option} {path}: it holds no wall time per call to size a slowdown by; {ACCEPTED}")
    return Calibration(
        wall_ms,
        earlier.calibration.get("kernel_ms_per_call", math.nan),
        source=source,
        process_s=earlier.calibration.get("process_s", math.nan),
    )


def calibration_from_file(path: str, settings: Settings, slowed: Composition, here: str) -> Calibration:
    """The calibration of ``path`` (a ``power --json`` file), refused unless it is this experiment's, on ``here``."""
    earlier = earlier_power("--calibration", path)
    refuse_another_experiment("--calibration", path, same_calibration_experiment(earlier, settings, slowed, here))
    return calibration_of(earlier, "--calibration", path, source=path)
