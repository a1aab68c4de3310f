"""Fake processes for ``power --across processes`` tests, and ``power`` called as the command line calls it.

A fake process measures the variants its command names, the one its environment's injection names slowed
by it, so the counting is tested without timing noise (tests/test_power_processes.py, tests/test_power_resume.py).
"""

from __future__ import annotations

import contextlib
import io
import random

from pytest_sdxl.cli.main import main
from pytest_sdxl.measure.injection import VARIABLE, parse_injection
from pytest_sdxl.measure.interleave import ProcessOutcome, ProcessRequest
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, save_results

# Seconds per image of the fake processes' batch path: the injections are sized from it.
PER_IMAGE_S = 0.05


def record_of(variant: str, slowdown_ms: float, draw: random.Random, process_factor: float = 1.0) -> VariantRecord:
    """One variant (4 prompts a call) beside its reference; slower by ``slowdown_ms`` a call, and its own calls
    (not the reference's) by ``process_factor``: a process that runs the variant faster or slower than another."""
    blocks = []
    for _ in range(4):
        reference = PER_IMAGE_S * (1 + abs(draw.gauss(0, 0.01)))
        own = (reference * 4 + slowdown_ms / 1000) / 4 * (1 + draw.gauss(0, 0.0005)) * process_factor
        blocks.append([own, reference])
    run = RunRecord(
        1, 1.0, 0.2, [b[0] for b in blocks], blocks[0][0], blocks[0][0], 3.0,
        reference="baseline", reference_gen_s=[b[1] for b in blocks], wall_blocks=blocks,
    )  # fmt: skip
    return VariantRecord(variant, "speed", runs=[run])


class Processes:
    """Fake processes: each measures the variants its command names, the one its environment's injection names
    slowed by it; ``always_slower`` is slowed by 20 ms in every head process, injected or not; ``process_spread``:
    the standard deviation of a factor drawn for each process and variant, a busy host's drift between processes."""

    def __init__(self, always_slower: str = "", process_spread: float = 0.0) -> None:
        self.requests: list[ProcessRequest] = []
        self.draw = random.Random(11)
        self.always_slower = always_slower
        self.process_spread = process_spread

    def __call__(self, request: ProcessRequest) -> ProcessOutcome:
        self.requests.append(request)
        spec = request.environment.get(VARIABLE)
        injection = parse_injection(spec) if spec else None
        variants = request.command[request.command.index("--variants") + 1].split(",")
        records = []
        for variant in variants:
            slowdown_ms = injection.milliseconds if injection is not None and injection.variant == variant else 0.0
            if variant == self.always_slower and request.side == "head":
                slowdown_ms += 20.0
            factor = 1 + self.draw.gauss(0, self.process_spread) if self.process_spread else 1.0
            records.append(record_of(variant, slowdown_ms, self.draw, factor))
        request.folder.mkdir(parents=True)
        measured = ResultSet({"model": "random:tiny", "image_size": 64}, {}, records)
        save_results(measured, request.folder / "results.json")
        return ProcessOutcome(0, 1.0)


def power(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["power", *arguments])
        except SystemExit as exit_:
            status = int(exit_.code or 0)
    return status, out.getvalue(), err.getvalue()
