"""How steady a process's calls were: each variant's wall ratio beside how far its calls strayed from the fastest.

Usage:
  python lab/call_noise.py FOLDER [FOLDER ...]

Each FOLDER holds one ``run`` process's results.json (``lab/steps.sh``'s ``threads`` step writes one a process,
named ``<setting>-NN``). A line a process and variant: its wall ratio (fastest call over its reference's
fastest, as ``RunRecord.wall_ratio``), the fastest and median call of the variant and of its reference, and the
share of the reference's calls more than ``STRAY`` over their fastest. Where the host interferes, the medians
and that share rise while the fastest calls stay; a stretch that slows every call of a variant moves the
fastest too (the results page of 2026-12-07, "The calls were far noisier"). It reads results already
measured; it measures nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_sdxl.results.schema import load_results

# A call this much over its run's fastest counts as strayed.
STRAY = 0.15


def strayed(samples: list[float]) -> float:
    """The share of ``samples`` more than STRAY over their fastest."""
    fastest = min(samples)
    return sum(sample > fastest * (1 + STRAY) for sample in samples) / len(samples)


def noise_lines(folder: Path) -> list[str]:
    """One line a measured variant of the process in ``folder``."""
    lines = []
    for record in load_results(folder / "results.json").variants:
        for run in record.runs:
            if not run.gen_s or not run.reference_gen_s:
                continue
            own, reference = run.gen_s, run.reference_gen_s
            lines.append(
                f"{folder.name} {record.variant}: wall_ratio {run.wall_ratio:.4f}; "
                f"own {min(own) * 1000:.1f}/{statistics.median(own) * 1000:.1f} ms, "
                f"reference {min(reference) * 1000:.1f}/{statistics.median(reference) * 1000:.1f} ms "
                f"(fastest/median); reference calls over {STRAY:.0%} of its fastest: {strayed(reference):.0%}"
                + ("" if run.host_state is None else f"; host: {run.host_state.describe()}")
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    arguments = parser.parse_args(argv)
    for folder in arguments.folders:
        print("\n".join(noise_lines(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
