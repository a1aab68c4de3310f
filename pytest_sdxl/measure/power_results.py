"""``power --json`` files read back and added up: trials of one experiment measured in several commands or processes.

The counts of a ``PowerResult`` (``measure.power``) add up only between results of the same experiment (variant,
model, rounds or processes, untouched variant, shared base, card): anything else would mix rates of different
measurements, and is refused saying which two experiments were given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_sdxl.measure.power import PowerResult


def power_from_dict(data: dict[str, Any]) -> PowerResult:
    """A ``PowerResult`` read back from ``power --json`` (a calibration that did not apply reads "nan")."""
    known = {name: data[name] for name in PowerResult.__dataclass_fields__ if name in data}
    known["calibration"] = {key: float(value) for key, value in known.get("calibration", {}).items()}
    for name in ("estimates", "untouched_estimates"):  # files written before an untouched variant have none
        known[name] = [
            {
                comparison: {signal: [float(number) for number in pair] for signal, pair in signals.items()}
                for comparison, signals in trial.items()
            }
            for trial in known.get(name, [])
        ]
    # Each process's figures: a NaN was written as "nan" (results.schema.encode_float).
    known["process_figures"] = [
        {key: decoded(value) for key, value in row.items()} for row in known.get("process_figures", [])
    ]
    return PowerResult(**known)


def decoded(value: Any) -> Any:
    """A process figure as written: "nan" back to NaN, in a list too (``steadiness``)."""
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return float(value) if value == "nan" else value


def combined(results: Sequence[PowerResult]) -> PowerResult:
    """Trials of one variant measured in several processes (one per GPU, say), counted as one result.

    Only results of the same variant, model and injections add up: anything else would mix rates
    of different experiments.
    """
    if not results:
        raise ValueError("no power results to combine")
    first = results[0]
    for other in results[1:]:
        if experiment(other) != experiment(first) or set(other.detections) != set(first.detections):
            raise ValueError(
                "power results of different experiments cannot be combined: "
                f"{describe_experiment(first)} and {describe_experiment(other)}"
            )
    total = PowerResult(
        first.variant,
        first.model,
        ", ".join(dict.fromkeys(result.device for result in results)),
        sum(result.trials for result in results),
        first.runs,
        calibration=dict(first.calibration),
        detections={name: {} for name in first.detections},
    )
    total.rounds = first.rounds
    total.across, total.processes, total.untouched = first.across, first.processes, first.untouched
    total.shared_base, total.card = first.shared_base, first.card
    sources = [result.calibration_from for result in results if result.calibration_from]
    total.calibration_from = ", ".join(dict.fromkeys(sources))
    for result in results:
        total.unchanged_trials += result.unchanged_trials
        total.estimates += result.estimates
        total.untouched_estimates += result.untouched_estimates
        total.samples += result.samples
        total.interleaved += result.interleaved
        total.trial_seconds += result.trial_seconds
        total.process_figures += result.process_figures
        for signal, count in result.false_alarms.items():
            total.false_alarms[signal] = total.false_alarms.get(signal, 0) + count
        for counts, added in ((total.detections, result.detections), (total.untouched_flags, result.untouched_flags)):
            for name, flagged in added.items():
                totals = counts.setdefault(name, {})
                for signal, count in flagged.items():
                    totals[signal] = totals.get(signal, 0) + count
    return total


def experiment(result: PowerResult) -> tuple[object, ...]:
    # The untouched variant belongs to the experiment: it shares the slowed one's processes and Holm family.
    return (
        result.variant, result.model, result.runs, result.rounds, result.across, result.processes, result.untouched,
        result.shared_base, result.card,
    )  # fmt: skip


def describe_experiment(result: PowerResult) -> str:
    if result.across == "processes":
        measured = f"across processes, {result.processes} a side at most"
        measured += f", {result.untouched} untouched beside it" if result.untouched else ""
        measured += ", one base a trial" if result.shared_base else ", a base a comparison"
        measured += f", on {result.card}" if result.card else ""
    else:
        measured = f"{result.runs} runs of {result.rounds} rounds"
    return f"{result.variant} on {result.model}, {measured} ({', '.join(result.detections)})"
