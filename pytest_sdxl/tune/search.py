"""The ``tune`` search: which composition of variants is fastest here, at batch 1 and in images per second.

A beam search over the variant lattice. It starts from the baseline; each step adds every candidate
variant not yet in a composition of the beam to it (compositions ``compose`` refuses, a conflicting
pair, are never built or measured), measures the new compositions, and keeps the ``beam`` fastest of
those faster than their parent by more than the noise margin. It stops when no composition of a step
beats its parent by the margin, when nothing is left to add, or when its time runs out (the baseline is
always measured; a measurement in progress is finished, never cut). When ``batch`` is a candidate the
batch-1 search has ``1 - THROUGHPUT_SHARE`` of the budget and the throughput step the rest, so a short
budget still ends with an images-per-second figure.

The estimate of a composition is the **median over runs of each run's fastest call** (wall ms per
image): host jitter only adds time, so a run's minimum is its steadiest figure, and the median over
runs keeps one lucky or unlucky run from deciding. Kernel time per image (a GPU's profiled pass) is
shown beside it, never ranked on, because the objective is what a user waits for.

Variants that only change a batch (``batch`` itself, and those idle without it such as
``vae_slicing``) change nothing at batch 1: the batch-1 search leaves them out and the throughput
step adds them to the fastest compositions at each asked batch size.

This module holds the rules, not the measuring: ``search`` takes the function that measures a
composition at a batch size (``tune.measurement`` times it through the measurement core; the tests
pass a fake). What it measured and chose is in ``tune.candidates``. It imports no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

from pytest_sdxl.analysis.quality import QualityScores
from pytest_sdxl.errors import VariantSpecError, VariantUnavailable
from pytest_sdxl.tune.candidates import (
    FAILED,
    RANDOM_WEIGHTS_NOTE,
    REJECTED,
    SEARCH,
    SKIPPED,
    THROUGHPUT,
    Candidate,
    Measurement,
    TuneResult,
    compose_id_names,
)
from pytest_sdxl.tune.options import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_BEAM,
    DEFAULT_BUDGET,
    DEFAULT_MARGIN,
    DEFAULT_MIN_PSNR_DB,
    TuneOptions,
)
from pytest_sdxl.variants.registry import REGISTRY, Composition, compose

__all__ = [
    "THROUGHPUT_SHARE",
    "BeamSearch",
    "Measure",
    "Unmet",
    "measurement_scores",
    "needs_a_batch",
    "quality_verdict",
    "search",
]
# The command line still reads these here; they belong to tune.options and tune.candidates.
__all__ += [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_BEAM",
    "DEFAULT_BUDGET",
    "DEFAULT_MARGIN",
    "DEFAULT_MIN_PSNR_DB",
    "Candidate",
    "TuneOptions",
    "TuneResult",
]

# The share of the budget kept for the throughput step when ``batch`` is a candidate: a batch-1 search
# that may use the whole budget can end with no images-per-second figure at all, as a 4-minute search
# on a large GPU did (the user guide's method page, "The tune budget").
THROUGHPUT_SHARE = 0.25


def needs_a_batch(name: str) -> bool:
    """Whether a variant changes nothing at batch 1 (``batch``, or one idle without it)."""
    return name == "batch" or "batch" in REGISTRY[name].idle_without


def measurement_scores(measurement: Measurement) -> QualityScores | None:
    """The measurement's scores against the baseline's images; None where its images were not compared."""
    if measurement.psnr_db is None:
        return None
    ssim = math.nan if measurement.ssim is None else measurement.ssim
    return QualityScores(measurement.psnr_db, ssim, 0, measurement.lpips, measurement.lpips_not_applicable)


def quality_verdict(
    composition: Composition, measurement: Measurement, options: TuneOptions, is_reference: bool = False
) -> tuple[bool, str]:
    """Whether the images meet the quality budget (``QualityBudget.check``), and how to say it.

    Exact compositions are judged whatever the weights: they promise the baseline's images. A lossy
    one is judged only on real weights; on random weights its scores measure nothing.
    """
    if is_reference:
        return True, "reference"
    random = options.random_weights or any(name in options.random_weight_variants for name in composition.names)
    if composition.kind == "lossy" and random:
        return True, RANDOM_WEIGHTS_NOTE
    scores = measurement_scores(measurement)
    check = options.quality.check(scores, composition.kind, random)
    if not check.passed:
        return False, f"{composition.kind}, but against the baseline's images: {'; '.join(check.violations)}"
    shown = "not compared" if scores is None else scores.describe(lpips_reason=False)
    return True, f"{composition.kind} ({shown})"


Measure = Callable[[Composition, int], Measurement]
Unmet = Callable[[Composition], list[str]]


def no_unmet_requirements(composition: Composition) -> list[str]:
    return []


class BeamSearch:
    """One search: the measured candidates so far, the clock and the budget."""

    def __init__(
        self,
        measure: Measure,
        options: TuneOptions,
        clock: Callable[[], float],
        on_candidate: Callable[[Candidate], None] | None,
        known: Mapping[tuple[str, int], Measurement] | None = None,
    ) -> None:
        self.measure = measure
        self.options = options
        self.clock = clock
        self.on_candidate = on_candidate
        self.known = dict(known or {})
        self.started = clock()
        self.result = TuneResult(options)
        self.measured: dict[tuple[str, int], Candidate] = {}

    def out_of_time(self, left_out: int, limit_s: float, what: str) -> bool:
        """Whether ``limit_s`` seconds since the start are spent; if so the result says what was left out."""
        if self.clock() - self.started < limit_s:
            return False
        self.result.cut_short = True
        reason = f"{what} ran out with {left_out} planned measurement(s) not made"
        if self.result.stop_reason:
            self.result.throughput_note = reason
        else:
            self.result.stop_reason = reason
        return True

    def try_one(self, composition: Composition, batch_size: int, phase: str, step: int, parent: str) -> Candidate:
        key = (composition.id, batch_size)
        if key in self.measured:
            return self.measured[key]
        candidate = Candidate(composition.id, composition.kind, batch_size, phase, step, parent)
        try:
            if key in self.known:
                candidate.measurement, candidate.resumed = self.known[key], True
            else:
                candidate.measurement = self.measure(composition, batch_size)
        except VariantUnavailable as error:
            candidate.status, candidate.reason = SKIPPED, str(error)
        except Exception as error:
            from pytest_sdxl.measure.records import failure_reason

            candidate.status, candidate.reason = FAILED, failure_reason(error)
        else:
            is_reference = not composition.names and batch_size == 1
            passed, candidate.quality = quality_verdict(composition, candidate.measurement, self.options, is_reference)
            if not passed:
                candidate.status, candidate.reason = REJECTED, candidate.quality
        self.measured[key] = candidate
        self.result.candidates.append(candidate)
        if self.on_candidate is not None:
            self.on_candidate(candidate)
        return candidate

    def children(self, beam: Sequence[Candidate], names: Sequence[str]) -> list[tuple[Composition, Candidate]]:
        """Each beam member with one more variant, conflicting pairs left out, each composition once."""
        found: dict[str, tuple[Composition, Candidate]] = {}
        for parent in beam:
            parent_names = compose_id_names(parent.composition)
            for name in names:
                if name in parent_names:
                    continue
                try:
                    child = compose([*parent_names, name])
                except VariantSpecError:
                    order = list(REGISTRY)
                    pair = "+".join(sorted([*parent_names, name], key=order.index))
                    if pair not in self.result.conflicts_avoided:
                        self.result.conflicts_avoided.append(pair)
                    continue
                if child.id not in found and (child.id, 1) not in self.measured:
                    found[child.id] = (child, parent)
        return list(found.values())

    def batch_one(self, names: Sequence[str], limit_s: float, what: str) -> None:
        """The beam search at batch 1, measuring until ``limit_s`` seconds since the start."""
        baseline = self.try_one(compose([]), 1, SEARCH, 0, "")
        if not baseline.ok:
            self.result.stop_reason = f"the baseline could not be measured: {baseline.reason}"
            return
        beam = [baseline]
        step = 0
        while True:
            step += 1
            pending = self.children(beam, names)
            if not pending:
                self.result.stop_reason = f"step {step}: no composition left to try"
                return
            improving = []
            for index, (composition, parent) in enumerate(pending):
                if (composition.id, 1) not in self.known and self.out_of_time(len(pending) - index, limit_s, what):
                    return
                child = self.try_one(composition, 1, SEARCH, step, parent.composition)
                if child.ok and child.ms_per_image < parent.ms_per_image * (1 - self.options.margin):
                    improving.append(child)
            if not improving:
                self.result.stop_reason = (
                    f"step {step}: no composition beat its parent by more than the {self.options.margin:.0%} margin"
                )
                return
            beam = sorted(improving, key=lambda item: item.ms_per_image)[: self.options.beam]

    def throughput(self, batch_only: Sequence[str]) -> None:
        """The fastest batch-1 compositions with ``batch`` (and each batch-only variant) at every batch size."""
        sizes = [size for size in self.options.batch_sizes if size > 1]
        finalists = [item for item in self.result.ranked() if item.ok][: self.options.beam]
        if "batch" not in batch_only:
            self.result.throughput_note = "batch is not among the candidates: images per second are batch 1's"
            return
        if not sizes:
            self.result.throughput_note = "only batch size 1 was asked for"
            return
        extras = [[], *([name] for name in batch_only if name != "batch")]
        plan = []
        for finalist in finalists:
            for extra in extras:
                try:
                    composition = compose([*compose_id_names(finalist.composition), "batch", *extra])
                except VariantSpecError:
                    continue
                plan += [(composition, size, finalist.composition) for size in sizes]
        for index, (composition, size, parent) in enumerate(plan):
            if (composition.id, size) not in self.known and self.out_of_time(
                len(plan) - index, self.options.budget_s, f"the {self.options.budget_s:g} s budget"
            ):
                return
            self.try_one(composition, size, THROUGHPUT, 0, parent)


def search(
    names: Sequence[str],
    measure: Measure,
    options: TuneOptions,
    unmet: Unmet = no_unmet_requirements,
    clock: Callable[[], float] = time.monotonic,
    on_candidate: Callable[[Candidate], None] | None = None,
    known: Mapping[tuple[str, int], Measurement] | None = None,
) -> TuneResult:
    """The batch-1 beam search over ``names``, then the throughput step; ``measure`` times each candidate.

    ``unmet`` says why a variant cannot run here (it is then skipped with that reason, once).
    ``known``: measurements of an earlier call (``tune.resume``), keyed by (composition id, batch
    size): the search takes them instead of measuring, and they cost none of the budget.
    """
    run = BeamSearch(measure, options, clock, on_candidate, known)
    runnable = []
    for name in names:
        single = compose([name])
        reasons = unmet(single)
        if reasons:
            run.result.candidates.append(Candidate(single.id, single.kind, status=SKIPPED, reason="; ".join(reasons)))
        else:
            runnable.append(name)
    budget = options.budget_s
    limit, what = budget, f"the {budget:g} s budget"
    if "batch" in runnable and any(size > 1 for size in options.batch_sizes):
        # The batch-1 search stops early enough to leave the throughput step its share.
        limit = budget * (1 - THROUGHPUT_SHARE)
        what = f"{1 - THROUGHPUT_SHARE:.0%} of the {budget:g} s budget (the rest is the throughput step's)"
    run.batch_one([name for name in runnable if not needs_a_batch(name)], limit, what)
    if run.result.fastest() is not None:
        run.throughput([name for name in runnable if needs_a_batch(name)])
    run.result.elapsed_s = clock() - run.started
    return run.result
