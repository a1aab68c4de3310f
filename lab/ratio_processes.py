"""How far apart fresh processes put asv's side-by-side batch ratio: the noise between two commits.

Usage: python lab/ratio_processes.py --variant V --processes K --out STEM [--seconds S] [--pin CPUS]

``asv continuous`` measures each commit in its own fresh process, so what it can detect is bounded by
how much an unchanged ratio moves from one process to the next. This runs the suite's own ratio
(``pytest_sdxl.suite.asv.common``: the batch path of ``--variant`` at 4 prompts over its one-by-one reference,
alternating rounds, ratio of minima) in K fresh processes, one after another. It reports each
process's plain ratio, each side's fastest time per image and, on a CUDA GPU, each side's kernel time
and the host-normalized ratio, each figure with the standard deviation of its logarithms over the
processes. Settings come from ``PYTEST_SDXL_*`` variables as in the asv suite (default model
``random:sdxl-turbo``). STEM.json is rewritten after every process, so a stopped run keeps what it had.
``--pin 3`` (or ``2,3``) keeps each process on those CPUs, as ``asv run --cpu-affinity`` does: a
launch-bound pipeline runs at its core's speed, and a fresh process may land on another core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_sdxl.results.schema import write_atomically  # noqa: E402

BATCH_SIZE = 4
# plain: the suite's ratio (minima of round means); per_call: minima over single calls, where the
# one-by-one side's floor does not wait for a round of four quiet calls in a row.
RATIOS = ("plain", "per_call", "host_normalized")
# Each side's own figures, in seconds per image (kernel times only on a GPU).
SIDE_FIGURES = ("batch_min_s", "one_by_one_min_s", "batch_kernel_s", "one_by_one_kernel_s")


def cpu_list(text: str) -> set[int]:
    """``3``, ``2,3`` or ``0-3`` as a set of CPU numbers (asv's --cpu-affinity format)."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU list: {text!r}; use 3, 2,3 or 0-3") from None
    return cpus


def one_process(variant: str, pin: set[int] | None) -> dict[str, Any]:
    """Both ratios from one set of alternating rounds, in this process (the child's work)."""
    if pin:
        # Before torch starts its threads, so that they inherit the affinity.
        os.sched_setaffinity(0, pin)
    import torch

    from pytest_sdxl.analysis.host_normalized import host_normalized_ratio
    from pytest_sdxl.measure.paired import ratio_of_minima
    from pytest_sdxl.suite.asv import common
    from pytest_sdxl.variants.registry import parse

    started = time.perf_counter()
    prompts, seeds = common.prompts_and_seeds(BATCH_SIZE)
    batched = common.pipeline(common.with_batch(parse(variant)).id, warm_prompts=BATCH_SIZE)
    one_by_one = common.pipeline(variant)
    built_s = time.perf_counter() - started
    loops = common.alternating_loops(batched, one_by_one, prompts, seeds)
    tops, bottoms = ([statistics.fmean(calls) for calls in loop.rounds] for loop in loops)
    top_calls, bottom_calls = ([value for calls in loop.rounds for value in calls] for loop in loops)
    # Each side's own figures too: whether fresh processes move both sides alike (a faster or slower host,
    # which a ratio cancels in part) or one side alone is what tells the cause of the spread apart.
    record: dict[str, Any] = {
        "plain": ratio_of_minima(tops, bottoms),
        "per_call": ratio_of_minima(top_calls, bottom_calls),
        "batch_min_s": min(tops),
        "one_by_one_min_s": min(bottoms),
        "rounds": len(tops),
        "build_s": round(built_s, 1),
        "cpus": sorted(os.sched_getaffinity(0)),
        # Every sample, so that other readings (a low quantile, a trimmed mean) can be tried afterwards.
        "batch_calls_s": top_calls,
        "one_by_one_calls_s": bottom_calls,
    }
    if torch.cuda.is_available():
        record["batch_kernel_s"] = common.kernel_seconds(batched, prompts, seeds)
        record["one_by_one_kernel_s"] = common.kernel_seconds(one_by_one, prompts, seeds)
        record["host_normalized"] = host_normalized_ratio(
            record["batch_min_s"], record["batch_kernel_s"], record["one_by_one_min_s"], record["one_by_one_kernel_s"]
        )
    else:
        record["host_normalized"] = None
        record["host_normalized_reason"] = "needs a CUDA GPU's kernel time"
    common.close(batched, one_by_one)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def log_spread(values: list[float]) -> dict[str, float | None]:
    """Standard deviation of the logarithms (a relative spread) and max/min - 1, of two values or more."""
    if len(values) < 2:
        return {"log_sd": None, "span": None}
    logs = [math.log(value) for value in values]
    return {"log_sd": statistics.stdev(logs), "span": max(values) / min(values) - 1}


def write_report(stem: str, variant: str, records: list[dict[str, Any]]) -> None:
    summary: dict[str, dict[str, Any]] = {}
    for name in (*RATIOS, *SIDE_FIGURES):
        values = [record[name] for record in records if record.get(name) is not None]
        if values:
            summary[name] = {"values": values, **log_spread(values)}
    payload = {"variant": variant, "batch_size": BATCH_SIZE, "processes": records, "summary": summary}
    write_atomically(Path(f"{stem}.json"), json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# `{variant}` batch of {BATCH_SIZE} over one by one, in {len(records)} fresh processes",
        "",
        "| figure | values | sd of log | max/min - 1 |",
        "|---|---|---|---|",
    ]
    for name, row in summary.items():
        spread = "-" if row["log_sd"] is None else f"{row['log_sd']:.2%}"
        span = "-" if row["span"] is None else f"{row['span']:.2%}"
        shown = ", ".join(f"{value:.4f}" if name in RATIOS else f"{value * 1000:.2f} ms" for value in row["values"])
        lines.append(f"| {name} | {shown} | {spread} | {span} |")
    write_atomically(Path(f"{stem}.md"), "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="tiny_vae+cuda_graph+cached_embeds")
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=math.inf, help="start no process past this budget")
    parser.add_argument("--out", help="STEM of STEM.json and STEM.md (required unless --child)")
    parser.add_argument("--pin", type=cpu_list, help="CPUs each process runs on: 3, 2,3 or 0-3 (default: any)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(one_process(arguments.variant, arguments.pin)))
        return 0
    if not arguments.out:
        parser.error("--out is required")
    environment = {"PYTEST_SDXL_MODEL": "random:sdxl-turbo", **os.environ}
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    last_s = 0.0
    for index in range(arguments.processes):
        if time.monotonic() - started + last_s > arguments.seconds:
            print(f"stopping after {index} processes: the next would pass --seconds", flush=True)
            break
        begun = time.monotonic()
        pin = ["--pin", ",".join(map(str, sorted(arguments.pin)))] if arguments.pin else []
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--variant", arguments.variant, *pin],
            env=environment, capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        last_s = time.monotonic() - begun
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
        figures = {name: value for name, value in records[-1].items() if not name.endswith("_calls_s")}
        print(f"process {index + 1}: {figures}", flush=True)
        write_report(arguments.out, arguments.variant, records)
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
