"""Resuming a ``tune`` search from its tune.json: what an earlier call measured is not measured again.

A search of a few variants' compositions takes longer than one sitting allows (a CI step's or a lent
GPU's time limit): ``tune --out DIR`` rewrites DIR/tune.json after every candidate, and
``tune --resume DIR/tune.json`` replays the search, taking each composition already measured from the
file and measuring only the rest (and the baseline, whose images are the PSNR reference), within a
fresh budget. A measurement is only worth reusing under
the conditions it was made in, so the file must match this call on every key of ``SAME_CONDITIONS``
and ``SAME_MACHINE``, or the resume is refused with the keys that differ. Failed and skipped
candidates are tried again. Standard library only; no torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.results.schema import optional_float
from pytest_sdxl.tune.candidates import OK, REJECTED, Measurement
from pytest_sdxl.variants.registry import BASELINE

# Settings and tune options a measurement depends on.
SAME_CONDITIONS = ("model", "dtype", "size", "steps", "prompts", "seed", "tiny_vae", "fp16_vae", "runs", "rounds")
# What the machine must share: the card, where the device was resolved to, and the software.
SAME_MACHINE = ("gpu", "resolved_device", "torch", "diffusers")
Known = dict[tuple[str, int], Measurement]


def conditions(settings: dict[str, Any], runs: int, rounds: int | None) -> dict[str, Any]:
    """The conditions of this call, as written into tune.json beside its candidates."""
    chosen = {key: settings.get(key) for key in SAME_CONDITIONS if key not in ("runs", "rounds")}
    return {**chosen, "runs": runs, "rounds": rounds}


def differences(earlier: dict[str, Any], now: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [
        f"{key}: {earlier.get(key)!r} there, {now.get(key)!r} here" for key in keys if earlier.get(key) != now.get(key)
    ]


def read_known(path: Path, now_conditions: dict[str, Any], now_machine: dict[str, Any]) -> Known:
    """The measured candidates of an earlier tune.json, keyed by (composition, batch size).

    Raises SettingsError when the file is missing, is not a tune.json, or was measured under other
    conditions or on another machine; the message names what differs. The baseline at batch 1 is
    left out: it is measured again, because its images are what every later candidate's PSNR is
    computed against.
    """
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SettingsError(
            f"--resume {path}: no such file; give the tune.json an earlier `tune --out` wrote"
        ) from None
    except (OSError, ValueError) as error:
        raise SettingsError(f"--resume {path}: not readable as JSON ({error})") from None
    if not isinstance(document, dict) or document.get("schema") != "pytest-sdxl-tune":
        raise SettingsError(f"--resume {path}: not a tune.json (schema {document.get('schema')!r})")
    differ = differences(document.get("conditions", {}), now_conditions, SAME_CONDITIONS)
    differ += differences(document.get("machine", {}), now_machine, SAME_MACHINE)
    if differ:
        raise SettingsError(
            f"--resume {path}: its measurements were made under other conditions, so none can be reused: "
            + "; ".join(differ)
        )
    known: Known = {}
    for row in document.get("candidates", []):
        if row.get("status") not in (OK, REJECTED) or not row.get("run_minima_ms"):
            continue
        if row["composition"] == BASELINE and int(row["batch_size"]) == 1:
            continue
        known[(row["composition"], int(row["batch_size"]))] = Measurement(
            run_minima_ms=tuple(float(value) for value in row["run_minima_ms"]),
            kernel_ms=optional_float(row.get("kernel_ms_per_image")),
            psnr_db=optional_float(row.get("psnr_db")),
            ssim=optional_float(row.get("ssim")),
            lpips=optional_float(row.get("lpips")),
            peak_gpu_mem_gb=optional_float(row.get("peak_gpu_mem_gb")),
        )
    return known
