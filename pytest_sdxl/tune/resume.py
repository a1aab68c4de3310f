"""Resuming a ``tune`` search from its tune.json: what an earlier call measured is not measured again.

A search of a few variants' compositions takes longer than one sitting allows (a CI step's or a shared
GPU machine's time limit): ``tune --out DIR`` rewrites DIR/tune.json after every candidate, and
``tune --resume DIR/tune.json`` replays the search, taking each composition already measured from the
file and measuring only the rest (and the baseline, whose images are the PSNR reference), within a
fresh budget. A measurement is only worth reusing under the conditions it was made in, so the file
must match this call on every key of ``SAME_CONDITIONS`` and ``SAME_MACHINE``, or the resume is
refused with the keys that differ. Failed and skipped candidates are tried again. A file that is not
a tune.json, or holds a value of another type than its field anywhere, is refused naming the value's
JSON path (``results.validation``). Standard library only; no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.results.validation import MalformedDocument, Node, read_json_file
from pytest_sdxl.tune.candidates import OK, REJECTED, Measurement
from pytest_sdxl.variants.registry import BASELINE

TUNE_SCHEMA = "pytest-sdxl-tune"
# Settings and tune options a measurement depends on.
SAME_CONDITIONS = ("model", "dtype", "size", "steps", "prompts", "seed", "tiny_vae", "fp16_vae", "runs", "rounds")
# What the machine must share: the card, where the device was resolved to, and the software (the
# software stack ``results.compatibility`` checks for merge, run --resume and compare).
SAME_MACHINE = ("gpu", "resolved_device", "torch", "diffusers", "transformers", "cuda", "python", "gpu_driver")
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

    Raises SettingsError when the file is missing, is not a tune.json, holds a value of another type
    than its field (naming its JSON path), or was measured under other conditions or on another
    machine; the message names what differs. The baseline at batch 1 is left out: it is measured
    again, because its images are what every later candidate's PSNR is computed against.
    """
    named = f"--resume {path}"
    if Path(path).is_dir():
        # The --out folder names its tune.json, as a run's --report folder names its results.json for compare.
        if not (Path(path) / "tune.json").is_file():
            raise SettingsError(
                f"{named}: a folder without a tune.json; give the tune.json an earlier `tune --out` wrote"
            )
        path = Path(path) / "tune.json"
    if not Path(path).is_file():
        raise SettingsError(f"{named}: no such file; give the tune.json an earlier `tune --out` wrote")
    root = Node(read_json_file(Path(path), named, SettingsError))
    try:
        schema = root.object().get("schema")
        if schema != TUNE_SCHEMA:
            raise SettingsError(f"{named}: not a tune.json (schema {schema!r})")
        earlier_conditions, earlier_machine = root.get("conditions", {}).object(), root.get("machine", {}).object()
        rows = [candidate_from_node(row) for row in root.get("candidates", []).items()]
    except MalformedDocument as error:
        raise SettingsError(f"{named}: not a valid tune.json: {error}") from None
    differ = differences(earlier_conditions, now_conditions, SAME_CONDITIONS)
    differ += differences(earlier_machine, now_machine, SAME_MACHINE)
    if differ:
        raise SettingsError(
            f"{named}: its measurements were made under other conditions, so none can be reused: " + "; ".join(differ)
        )
    return {
        (composition, batch_size): measurement
        for composition, batch_size, measurement in rows
        if measurement is not None and not (composition == BASELINE and batch_size == 1)
    }


def candidate_from_node(row: Node) -> tuple[str, int, Measurement | None]:
    """One candidate row: its composition, batch size and, where it was measured (ok or rejected), its measurement."""
    composition, batch_size = row["composition"].text(), row["batch_size"].integer()
    minima = row.get("run_minima_ms", []).numbers()
    if row["status"].text() not in (OK, REJECTED) or not minima:
        return composition, batch_size, None
    measurement = Measurement(
        run_minima_ms=tuple(minima),
        kernel_ms=row.get("kernel_ms_per_image").optional_number(),
        psnr_db=row.get("psnr_db").optional_number(),
        ssim=row.get("ssim").optional_number(),
        lpips=row.get("lpips").optional_number(),
        peak_gpu_mem_gb=row.get("peak_gpu_mem_gb").optional_number(),
    )
    return composition, batch_size, measurement
