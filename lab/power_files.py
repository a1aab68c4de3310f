"""``power --json`` files: trials of one experiment added up, and two re-readings of their raw samples.

Usage:
  python lab/power_files.py merge STEM FILE.json [FILE.json ...]
      the trials of one experiment run in several processes (one per GPU) added up, an untouched variant's
      flags too: STEM.md and STEM.json
  python lab/power_files.py blocks FILE.json [--blocks 30,15,10,6,5]
      how the wall-ratio gate would have judged the same rounds cut into shorter runs
  python lab/power_files.py host-normalized FILE.json [...] --reference-kernel-ms 14.7 [--factor 1.03]
      each measurement's plain and host-normalized ratio, judged pair by pair as ``asv compare`` would
  python lab/power_files.py processes FILE.json
      a cross-process file's processes, trial by trial and side by side: each variant's wall ratio, kernel
      time and steadiness (median call over fastest, its own and its reference's), a process far from its side
      marked (which process moved a comparison's verdict)
  python lab/power_files.py rejudge WORK [--pairs 3]
      every finished trial of a ``power --work-folder`` folder judged again from its processes' results, as the
      trial judged it, each wall ratio twice: with the stretches of one side left out (``analysis.stretches``,
      today's test) and with every block kept (the test before it), and the gated signals each comparison left
      undecided (``ab``'s answer where the interval still spans the flag line: more processes could change it)
  python lab/power_files.py estimators WORK [--variant batch] [--slowed host-5pct]
      other ways to read one process's wall ratio from the same calls, trial by trial: how far apart each puts
      the unchanged processes (base and none: the standard deviation of their logarithms) and how far it moves
      the slowed ones (the mean of logarithms, slowed less unchanged): the noise and the signal of the gate

``processes`` marks a process whose wall ratio lies far from its side's median: a modified z-score (its
log's distance from the side's median over 1.4826 times the median absolute distance, pooled over every
side of the variant in the file) above 3.5, the usual cut for that score.

``blocks``, ``host-normalized``, ``processes``, ``rejudge`` and ``estimators`` read measurements already made;
they measure nothing.
A run of the measurement core is a block of consecutive alternating rounds, so the same rounds cut into blocks of k
are what ``--runs R*30/k --rounds k`` would have measured: ``blocks`` re-judges every trial (unchanged
against the one before, injected against unchanged) with compare's rule on each block's minima, the
p-value doubled for the Holm family wall ratio shares with kernel time. Block sizes chosen after the
fact: confirm one with ``power --runs --rounds`` before relying on it. ``host-normalized`` takes each
side's fastest sample per measurement, the variant's kernel time from the file's calibration and the
reference's from ``--reference-kernel-ms`` (the files do not keep it); the measurements of one file
shared a process, which the pairs do not account for.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_sdxl.analysis.comparison import SIGNALS_BY_NAME, Rules, compare_signal, verdict_of
from pytest_sdxl.analysis.host_normalized import host_normalized_ratio
from pytest_sdxl.measure.power import power_report
from pytest_sdxl.measure.power_results import combined, power_from_dict
from pytest_sdxl.results.records import RunRecord
from pytest_sdxl.results.schema import encode_float, load_results, write_atomically

GATED_P_VALUES = 2  # wall_ratio and kernel_ms (kernel launches are exact and carry no p-value)


def merge(stem: str, files: list[Path]) -> str:
    try:
        total = combined([power_from_dict(json.loads(path.read_text())) for path in files])
    except ValueError as error:  # files of different experiments: their rates do not add up
        raise SystemExit(f"power_files.py merge: {error}") from None
    text = power_report(total)
    write_atomically(Path(stem + ".md"), text + "\n")
    write_atomically(Path(stem + ".json"), json.dumps(encode_float(total.as_dict()), indent=2) + "\n")
    return text


def block_pairs(measurement: dict[str, Any], size: int) -> list[list[float]]:
    """Each block of ``size`` rounds as one run: [min(own samples), min(reference samples)], as the core keeps."""
    blocks = []
    for own, reference in measurement["runs"]:
        calls = len(reference) // len(own)  # the reference's calls in each round
        for start in range(0, len(own) - size + 1, size):
            blocks.append([min(own[start : start + size]), min(reference[start * calls : (start + size) * calls])])
    return blocks


def block_flagged(base: dict[str, Any], new: dict[str, Any], size: int) -> bool:
    """compare's verdict on the blocks' wall ratios, the p-value doubled for the Holm family it shares."""
    rules = Rules()
    pending = compare_signal("", SIGNALS_BY_NAME["wall_ratio"], block_pairs(base, size), block_pairs(new, size), rules)
    return verdict_of(pending, min(1.0, pending.p_value * GATED_P_VALUES), rules).regressed


def blocks(path: Path, sizes: list[int]) -> list[str]:
    samples = json.loads(path.read_text())["samples"]
    trials = sorted({item["trial"] for item in samples if item["trial"] > 0})
    longest = min(len(own) for item in samples for own, _ in item["runs"])
    lines = ["| rounds a run | runs a measurement | injected flagged | false alarms |", "|---|---|---|---|"]
    for size in sizes:
        if size > longest:
            lines.append(f"| {size} | - | blocks longer than the stored runs ({longest} rounds) | - |")
            continue
        previous = next(item for item in samples if item["comparison"] == "calibration")
        detections = false_alarms = 0
        for trial in trials:
            unchanged = next(item for item in samples if item["trial"] == trial and item["comparison"] == "none")
            slowed = next(item for item in samples if item["trial"] == trial and item["comparison"] != "none")
            false_alarms += block_flagged(previous, unchanged, size)
            detections += block_flagged(unchanged, slowed, size)
            previous = unchanged
        runs = len(block_pairs(previous, size))
        lines.append(f"| {size} | {runs} | {detections}/{len(trials)} | {false_alarms}/{len(trials)} |")
    return lines


def ratios_of(path: Path, reference_kernel_s: float, images_per_call: int) -> dict[str, list[tuple[float, float]]]:
    """Per comparison ("none" or an injection): each measurement's (plain ratio of minima, host-normalized)."""
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


def judged_pairs(unchanged: list[float], slowed: list[float], factor: float) -> tuple[int, int, int, int]:
    """False alarms among ordered unchanged pairs, and detections of slowed over unchanged, at ``factor``."""
    false_alarms = sum(
        1 for i, base in enumerate(unchanged) for j, new in enumerate(unchanged) if i != j and new / base > factor
    )
    detections = sum(1 for base in unchanged for new in slowed if new / base > factor)
    return false_alarms, len(unchanged) * (len(unchanged) - 1), detections, len(unchanged) * len(slowed)


def host_normalized(
    files: list[Path], reference_kernel_ms: float, images_per_call: int, factor: float, injection: str
) -> list[str]:
    unchanged: list[tuple[float, float]] = []
    slowed: list[tuple[float, float]] = []
    for path in files:
        found = ratios_of(path, reference_kernel_ms / 1000, images_per_call)
        unchanged += found.get("none", [])
        slowed += found.get(injection, [])
    if len(unchanged) < 2 or not slowed:
        counts = f"found {len(unchanged)} and {len(slowed)}"
        raise SystemExit(f"need two unchanged measurements and one {injection!r} to judge pairs: {counts}")
    lines = [
        f"{len(unchanged)} unchanged and {len(slowed)} slowed measurements, pairs judged at factor {factor}",
        "| ratio | unchanged range | slowed range | false alarms | detected |",
        "|---|---|---|---|---|",
    ]
    for index, name in enumerate(("plain ratio of minima", "host-normalized")):
        base = [pair[index] for pair in unchanged]
        new = [pair[index] for pair in slowed]
        false_alarms, pairs, detections, slowed_pairs = judged_pairs(base, new, factor)
        lines.append(
            f"| {name} | {min(base):.4f}-{max(base):.4f} ({(max(base) / min(base) - 1) * 100:.1f} %) "
            f"| {min(new):.4f}-{max(new):.4f} | {false_alarms}/{pairs} | {detections}/{slowed_pairs} |"
        )
    return lines


def block_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of round counts: {text!r}; use 30,15,10") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"round counts must be 1 or more: {text!r}")
    return sizes


# A modified z-score above this marks a process as far from its side (Iglewicz and Hoaglin's cut).
FAR_FROM_ITS_SIDE = 3.5


def processes(path: Path) -> list[str]:
    """Each trial's processes side by side per variant: wall ratio (kernel ms), a process far from its side marked."""
    rows = power_from_dict(json.loads(path.read_text())).process_figures
    if not rows:
        raise SystemExit(f"power_files.py processes: {path} holds no process figures (power --across processes)")
    sides: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        side = str(row["process"]).split("/")[0]
        sides.setdefault((int(row["trial"]), str(row["variant"]), side), []).append(row)
    distances: dict[str, list[float]] = {}
    for (_, variant, _), members in sides.items():
        middle = statistics.median(math.log(row["wall_ratio"]) for row in members)
        for row in members:
            row["distance"] = math.log(row["wall_ratio"]) - middle
            distances.setdefault(variant, []).append(abs(row["distance"]))
    scale = {variant: 1.4826 * statistics.median(values) for variant, values in distances.items()}
    lines = []
    for (trial, variant, side), members in sorted(sides.items()):
        cells = []
        for row in members:
            score = abs(row["distance"]) / scale[variant] if scale[variant] > 0 else 0.0
            mark = " FAR" if score > FAR_FROM_ITS_SIDE else ""
            kernel = "" if math.isnan(row["kernel_ms"]) else f" ({row['kernel_ms']:.2f} ms)"
            own, reference = row.get("steadiness", [math.nan, math.nan])
            steady = "" if math.isnan(reference) else f" [median/fastest {own:.2f}, reference {reference:.2f}]"
            waited = row.get("host_waited", math.nan)
            steady += "" if math.isnan(waited) else f" [waited for a CPU {waited:.1%}]"
            cells.append(f"{row['wall_ratio']:.4f}{kernel}{steady}{mark}")
        lines.append(f"trial {trial} {variant} {side}: " + ", ".join(cells))
    return lines


def wall_ratios(comparisons: list[Any]) -> dict[str, Any]:
    """Each variant's wall-ratio comparison."""
    return {item.variant: item for item in comparisons if item.metric == "wall_ratio"}


def rejudge(work: Path, pairs: int) -> list[str]:
    """Each finished trial's comparisons, base against every head, judged from the processes' files as ``power``
    judged them at the trial's last look; the wall ratio with the stretches left out and with every block kept."""
    from unittest import mock

    from pytest_sdxl.analysis import stretches
    from pytest_sdxl.analysis.comparison import compare_results
    from pytest_sdxl.measure.interleave import block_orders, look_rules, planned_looks, pooled, undecided
    from pytest_sdxl.measure.power import POWER_GATE, POWER_SIGNALS

    rules = look_rules(Rules(metrics=POWER_SIGNALS, gate=POWER_GATE), planned_looks(len(block_orders(pairs))))
    lines = []
    for trial in sorted(work.glob("trial-*")):
        sides = {side.name: sorted(side.glob("process-*")) for side in sorted(trial.iterdir()) if side.is_dir()}
        base = sides.pop("base", [])
        if len(base) < 2 or any(len(folders) != len(base) for folders in sides.values()):
            lines.append(f"{trial.name}: not finished ({', '.join(f'{n} {len(f)}' for n, f in sides.items())})")
            continue
        base_set = pooled(base)
        for head, folders in sides.items():
            head_set = pooled(folders)
            comparisons = compare_results(base_set, head_set, rules)
            judged = wall_ratios(comparisons)
            # What `ab` would have answered: the gated signals still open at this look ("undecided").
            still_open = undecided(comparisons)
            with mock.patch.object(stretches, "STRETCH_SPLIT", math.inf):
                kept = wall_ratios(compare_results(base_set, head_set, rules))
            for variant, item in judged.items():
                before = kept[variant]
                lines.append(
                    f"{trial.name} {head} {variant}: {item.verdict} {item.ratio:.4f} ({item.low:.4f}-{item.high:.4f}) "
                    f"p {item.p_value:.3g}; every block kept: {before.verdict} {before.ratio:.4f} "
                    f"({before.low:.4f}-{before.high:.4f}) p {before.p_value:.3g}"
                )
            lines.append(f"{trial.name} {head}: undecided: {', '.join(still_open) if still_open else 'none'}")
    return lines


def lowest_of(values: list[float], parts: int) -> float:
    """The first of the cut points dividing ``values`` into ``parts`` (10: the 10th percentile), linear between
    order statistics."""
    return statistics.quantiles(values, n=parts, method="inclusive")[0]


def paired_rounds(run: RunRecord) -> list[tuple[float, list[float]]]:
    """Each timed round's own sample and the reference calls timed beside it (the core alternates them)."""
    calls = len(run.reference_gen_s) // len(run.gen_s)
    return [(own, run.reference_gen_s[index * calls : (index + 1) * calls]) for index, own in enumerate(run.gen_s)]


def net_of_waits(samples: list[float], waits: list[float]) -> list[float]:
    """Each call less its wait for a CPU (``RunRecord.gen_waited_s``): what it took while the host let it run;
    the calls themselves where the run has no waits."""
    return [sample - wait for sample, wait in zip(samples, waits, strict=True)] if waits else list(samples)


# One process's wall ratio read from its run's calls: the first is the gate's.
ESTIMATORS = {
    "fastest/fastest": lambda run: run.wall_ratio,
    "block minima": lambda run: math.exp(statistics.fmean(math.log(own / ref) for own, ref in run.wall_blocks)),
    "p10/p10": lambda run: lowest_of(run.gen_s, 10) / lowest_of(run.reference_gen_s, 10),
    "p25/p25": lambda run: lowest_of(run.gen_s, 4) / lowest_of(run.reference_gen_s, 4),
    "median/median": lambda run: statistics.median(run.gen_s) / statistics.median(run.reference_gen_s),
    "median of rounds": lambda run: statistics.median(own / min(beside) for own, beside in paired_rounds(run)),
    "net fastest/fastest": lambda run: (
        min(net_of_waits(run.gen_s, run.gen_waited_s)) / min(net_of_waits(run.reference_gen_s, run.reference_waited_s))
    ),
    "net median/median": lambda run: (
        statistics.median(net_of_waits(run.gen_s, run.gen_waited_s))
        / statistics.median(net_of_waits(run.reference_gen_s, run.reference_waited_s))
    ),
}


def estimators(work: Path, variant: str, slowed: str) -> list[str]:
    """Per trial and estimator: the unchanged processes' spread and the slowed ones' shift, then the root mean
    square spread and mean shift over the trials."""
    spreads: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    shifts: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    lines = ["trial: " + "; ".join(f"{name} spread, shift" for name in ESTIMATORS)]
    for trial in sorted(work.glob("trial-*")):
        runs: dict[str, list[RunRecord]] = {}
        for path in sorted(trial.glob("*/process-*/results.json")):
            record = load_results(path).variant(variant)
            if record is not None and record.status == "ok" and record.runs:
                runs.setdefault(path.parent.parent.name, []).append(record.runs[0])
        unchanged = runs.get("base", []) + runs.get("none", [])
        moved = runs.get(slowed, [])
        if len(unchanged) < 2 or not moved:
            lines.append(f"{trial.name}: too few processes ({len(unchanged)} unchanged, {len(moved)} {slowed})")
            continue
        cells = []
        for name, estimate in ESTIMATORS.items():
            calm = [math.log(estimate(run)) for run in unchanged]
            spreads[name].append(statistics.stdev(calm))
            shifts[name].append(statistics.fmean(math.log(estimate(run)) for run in moved) - statistics.fmean(calm))
            cells.append(f"{spreads[name][-1]:.2%}, {shifts[name][-1]:+.2%}")
        lines.append(f"{trial.name}: " + "; ".join(cells))
    for name in ESTIMATORS:
        if spreads[name]:
            spread = math.sqrt(statistics.fmean(value * value for value in spreads[name]))
            lines.append(
                f"{name}: spread {spread:.2%} (root mean square over {len(spreads[name])} trials), "
                f"shift {statistics.fmean(shifts[name]):+.2%} (mean)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    merging = commands.add_parser("merge", help="add up the trials of one experiment run in several processes")
    merging.add_argument("stem", help="writes STEM.md and STEM.json")
    merging.add_argument("files", nargs="+", type=Path)
    cutting = commands.add_parser("blocks", help="the wall-ratio gate on the same rounds cut into shorter runs")
    cutting.add_argument("file", type=Path)
    cutting.add_argument("--blocks", type=block_sizes, default=[30, 15, 10, 6, 5])
    normalizing = commands.add_parser("host-normalized", help="plain and host-normalized ratios judged pair by pair")
    normalizing.add_argument("files", nargs="+", type=Path)
    normalizing.add_argument("--reference-kernel-ms", type=float, required=True)
    normalizing.add_argument("--images-per-call", type=int, default=4)
    normalizing.add_argument("--factor", type=float, default=1.03)
    normalizing.add_argument("--injection", default="host 5%")
    listing = commands.add_parser("processes", help="a cross-process file's processes side by side, far ones marked")
    listing.add_argument("file", type=Path)
    judging = commands.add_parser("rejudge", help="a work folder's trials judged again, stretches left out and kept")
    judging.add_argument("work", type=Path)
    judging.add_argument("--pairs", type=int, default=3, help="the trials' processes a side (power --processes)")
    reading = commands.add_parser("estimators", help="other readings of a process's wall ratio: spread and shift")
    reading.add_argument("work", type=Path)
    reading.add_argument("--variant", default="batch")
    reading.add_argument("--slowed", default="host-5pct", help="the slowed side's folder in each trial")
    arguments = parser.parse_args(argv)
    if arguments.command == "merge":
        print(merge(arguments.stem, arguments.files))
    elif arguments.command == "blocks":
        print("\n".join(blocks(arguments.file, arguments.blocks)))
    elif arguments.command == "processes":
        print("\n".join(processes(arguments.file)))
    elif arguments.command == "rejudge":
        print("\n".join(rejudge(arguments.work, arguments.pairs)))
    elif arguments.command == "estimators":
        print("\n".join(estimators(arguments.work, arguments.variant, arguments.slowed)))
    else:
        lines = host_normalized(
            arguments.files, arguments.reference_kernel_ms, arguments.images_per_call, arguments.factor,
            arguments.injection,
        )  # fmt: skip
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
