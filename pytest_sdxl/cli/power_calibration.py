"""``power --calibration FILE``: an earlier run's calibration, so that trials spread over several commands agree.

Each ``power --across processes`` run sizes its injections from a first unchanged process. Trials that take
several commands (a device lent ten minutes at a time) would then each measure a slightly different
slowdown, and every command would pay that process again. Given the ``--json`` file of an earlier run, the
trials take its sizes instead, once it is shown to be the same experiment's: measured across processes, on
the same variant, model and card.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.errors import SettingsError

if TYPE_CHECKING:
    from pytest_sdxl.measure.power_processes import Calibration
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.registry import Composition


def this_card(settings: Settings) -> str:
    """The card this machine measures the settings' device on: the GPU's name, or "CPU <name>" (as ``compare``)."""
    from pytest_sdxl.machine.probes import machine_info, resolved_precision
    from pytest_sdxl.results.compatibility import card
    from pytest_sdxl.results.schema import ResultSet

    found = card(ResultSet(settings=resolved_precision(settings), machine=machine_info(settings.device)))
    return "" if found is None else str(found)


def calibration_from_file(path: str, settings: Settings, slowed: Composition, here: str) -> Calibration:
    """The calibration of ``path`` (a ``power --json`` file), refused unless it is this experiment's, on ``here``."""
    from pytest_sdxl.measure.power_processes import Calibration
    from pytest_sdxl.measure.power_results import power_from_dict

    accepted = "give the --json file of an earlier power --across processes run of this variant on this card"
    try:
        earlier = power_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise SettingsError(f"--calibration {path}: cannot read it as power results ({error}); {accepted}") from None
    found = {
        "mode": (earlier.across, "processes"),
        "variant": (earlier.variant, slowed.id),
        "model": (earlier.model, settings.model),
        "card": (earlier.card, here),
    }
    for label, (then, now) in found.items():
        if label == "card" and not then:
            raise SettingsError(
                f"--calibration {path}: the file does not record the card it ran on (a run before power recorded "
                f"it), so it cannot be shown to be this card's ({here}); {accepted}"
            )
        if then != now:
            raise SettingsError(f"--calibration {path}: its {label} is {then!r}, this run's {now!r}; {accepted}")
    wall_ms = earlier.calibration.get("wall_ms_per_call", math.nan)
    if not (math.isfinite(wall_ms) and wall_ms > 0):
        raise SettingsError(f"--calibration {path}: it holds no wall time per call to size a slowdown by; {accepted}")
    return Calibration(wall_ms, earlier.calibration.get("kernel_ms_per_call", math.nan), source=path)
