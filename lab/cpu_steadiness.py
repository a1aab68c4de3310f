"""How steady the host's CPU is on its own: a fixed piece of pure-Python work timed over and over.

Usage:
  python lab/cpu_steadiness.py SECONDS [--label NAME]

Times the same work (a sum over a range, about 3 ms at its fastest on the H100 hosts) for SECONDS and prints
its fastest and median time and the share of repeats more than ``STRAY`` over the fastest, as
``lab/call_noise.py`` does for a variant's calls. Run beside a measuring process on another CPU, it tells
whether the calls' straying on a busy host is the CPU itself running slower (the work strays too) or lies in
the path to the GPU (it does not). It touches no GPU and no package but the standard library.
"""

from __future__ import annotations

import argparse
import statistics
import time

# A repeat this much over the fastest counts as strayed (lab/call_noise.py's threshold).
STRAY = 0.15
WORK = 200_000


def one_repeat() -> float:
    started = time.perf_counter()
    sum(range(WORK))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--label", default="cpu")
    arguments = parser.parse_args(argv)
    ended = time.perf_counter() + arguments.seconds
    times = []
    while time.perf_counter() < ended:
        times.append(one_repeat())
    fastest, median = min(times), statistics.median(times)
    strayed = sum(value > fastest * (1 + STRAY) for value in times) / len(times)
    print(
        f"{arguments.label}: {len(times)} repeats, fastest {fastest * 1000:.2f} ms, median {median * 1000:.2f} ms "
        f"({median / fastest:.2f} times), over {STRAY:.0%} of the fastest: {strayed:.0%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
