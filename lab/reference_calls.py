"""A batch variant's side-by-side reference at one call a round, judged on recorded GPU runs.

A batch variant's reference makes one call per prompt every round (four calls beside the batch's one), and
most of a batched variant's measuring time is the reference's. Every recorded run keeps the reference's
samples in order, four a round, so a cheaper reference can be read out of them: round i keeps only call
i mod 4, the prompts in turn, as a reference of one call a round would time them (the method page, "A
reference of one call a round, tried"). For each run this prints nothing; in all it prints

- the pooled standard deviation of the block values (log of the block's variant minimum over its reference
  minimum, blocks of 12 rounds) within a run, with all four calls and with one a round: the noise the
  sequential rule sees;
- per results file and variant with two runs or more, the standard deviation of the runs' mean block
  values, both ways, and their medians: the run-to-run spread a comparison between runs or processes sees;
- how far the one-call figure sits from the four-call one (fewer samples, a higher minimum).

    python lab/reference_calls.py docs/results            # every results file under the folder
    python lab/reference_calls.py A.json B.json ...
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

BLOCK = 12  # rounds a block: WALL_BLOCK_SAMPLES of a batch variant's one call a round
CALLS = 4  # the reference's calls a round in these records: one per timed prompt


def results_files(arguments: Sequence[str]) -> Iterator[Path]:
    for argument in arguments:
        path = Path(argument)
        yield from sorted(path.rglob("*.json")) if path.is_dir() else [path]


def block_values(own: Sequence[float], reference: Sequence[float], one_call: bool) -> list[float]:
    values = []
    for start in range(0, len(own) - BLOCK + 1, BLOCK):
        calls = reference[CALLS * start : CALLS * (start + BLOCK)]
        if one_call:
            calls = [calls[CALLS * index + (start + index) % CALLS] for index in range(BLOCK)]
        values.append(math.log(min(own[start : start + BLOCK])) - math.log(min(calls)))
    return values


def recorded_runs(path: Path) -> Iterator[tuple[str, list[float], list[float]]]:
    """(variant, block values with four calls, with one) of each batch run whose reference made four calls a round."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(document, dict):
        return
    for record in document.get("variants", []):
        for run in record.get("runs", []) if isinstance(record, dict) else []:
            own, reference = run.get("gen_s") or [], run.get("reference_gen_s") or []
            if own and len(reference) == CALLS * len(own) and len(own) >= 2 * BLOCK:
                yield record["variant"], block_values(own, reference, False), block_values(own, reference, True)


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    squares = sum(sum((value - statistics.fmean(values)) ** 2 for value in values) for values in groups)
    return math.sqrt(squares / sum(len(values) - 1 for values in groups))


def main(arguments: Sequence[str]) -> int:
    runs = [(path, *found) for path in results_files(arguments or ["docs/results"]) for found in recorded_runs(path)]
    if not runs:
        print("no batch run with a reference of four calls a round in these files")
        return 1
    four = pooled_sd([values for _, _, values, _ in runs])
    one = pooled_sd([values for _, _, _, values in runs])
    print(f"{len(runs)} runs of {len({path for path, *_ in runs})} files")
    times = f" ({one / four:.2f}x)" if four > 0 else ""
    print(f"within a run, block values' sd: four calls {four:.4f}, one call {one:.4f}{times}")
    by_group: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    for path, variant, with_four, with_one in runs:
        by_group.setdefault((path, variant), []).append((statistics.fmean(with_four), statistics.fmean(with_one)))
    spreads = [
        (statistics.stdev(a for a, _ in means), statistics.stdev(b for _, b in means))
        for means in by_group.values()
        if len(means) >= 2
    ]
    with_four, with_one = statistics.median(a for a, _ in spreads), statistics.median(b for _, b in spreads)
    print(
        f"between runs ({len(spreads)} file-variant groups), median sd of run means: "
        f"four calls {with_four:.4f}, one call {with_one:.4f}"
    )
    shifts = [statistics.fmean(b) - statistics.fmean(a) for _, _, a, b in runs]
    low, middle, high = min(shifts), statistics.median(shifts), max(shifts)
    print(f"one call less four, log ratio: median {middle:+.4f}, {low:+.4f} to {high:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
