"""Re-read `power` files' raw samples with the host-normalized ratio, as asv would judge one value per measurement.

Usage: python tools/host_normalized_reading.py FILE.json [FILE.json ...] --reference-kernel-ms 14.7 [--factor 1.03]

Each measurement of a `power --json` file keeps its raw wall samples per run (the variant's and its
one-by-one reference's, seconds per image). For each measurement this takes each side's minimum, the
variant's kernel time from the file's calibration (per call, over the prompts a call makes) and the
reference's from ``--reference-kernel-ms`` (the files do not keep it), and computes the plain ratio of
minima and the host-normalized ratio (``pytest_sdxl.analysis.host_normalized``). Then every ordered pair of
measurements is judged as `asv compare --factor` would: unchanged against unchanged is a false alarm
when it exceeds the factor, unchanged against slowed a detection. A reading of data already measured,
not a measurement: the measurements of one file shared a process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_sdxl.analysis.host_normalized import host_normalized_ratio  # noqa: E402


def values_of(path: Path, reference_kernel_s: float, images_per_call: int) -> dict[str, list[tuple[float, float]]]:
    document = json.loads(path.read_text())
    own_kernel_s = document["calibration"]["kernel_ms_per_call"] / images_per_call / 1000
    found: dict[str, list[tuple[float, float]]] = {}
    for measurement in document["samples"]:
        own = min(sample for run in measurement["runs"] for sample in run[0])
        reference = min(sample for run in measurement["runs"] for sample in run[1])
        normalized = host_normalized_ratio(own, own_kernel_s, reference, reference_kernel_s)
        # The calibration is an unchanged measurement like the trials' own.
        group = "none" if measurement["comparison"] == "calibration" else measurement["comparison"]
        found.setdefault(group, []).append((own / reference, normalized))
    return found


def judged(unchanged: list[float], slowed: list[float], factor: float) -> tuple[int, int, int, int]:
    false_alarms = sum(
        1 for i, base in enumerate(unchanged) for j, new in enumerate(unchanged) if i != j and new / base > factor
    )
    detections = sum(1 for base in unchanged for new in slowed if new / base > factor)
    return false_alarms, len(unchanged) * (len(unchanged) - 1), detections, len(unchanged) * len(slowed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--reference-kernel-ms", type=float, required=True)
    parser.add_argument("--images-per-call", type=int, default=4)
    parser.add_argument("--factor", type=float, default=1.03)
    parser.add_argument("--injection", default="host 5%")
    arguments = parser.parse_args()
    unchanged: list[tuple[float, float]] = []
    slowed: list[tuple[float, float]] = []
    for path in arguments.files:
        found = values_of(path, arguments.reference_kernel_ms / 1000, arguments.images_per_call)
        unchanged += found.get("none", [])
        slowed += found.get(arguments.injection, [])
    print(
        f"{len(unchanged)} unchanged and {len(slowed)} slowed measurements, pairs judged at factor {arguments.factor}"
    )
    print("| ratio | unchanged range | slowed range | false alarms | detected |")
    print("|---|---|---|---|---|")
    for index, name in enumerate(("plain ratio of minima", "host-normalized")):
        base = [pair[index] for pair in unchanged]
        new = [pair[index] for pair in slowed]
        false_alarms, pairs, detections, slowed_pairs = judged(base, new, arguments.factor)
        print(
            f"| {name} | {min(base):.4f}-{max(base):.4f} ({(max(base) / min(base) - 1) * 100:.1f} %) "
            f"| {min(new):.4f}-{max(new):.4f} | {false_alarms}/{pairs} | {detections}/{slowed_pairs} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
