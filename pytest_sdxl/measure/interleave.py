"""Two versions of the code under test measured in alternating short fresh processes on one machine, and judged.

Two CI runs of the same code differ by more than the slowdowns worth catching: one process runs
several percent faster than another (address layout, hash seed, what the host does meanwhile). So the
process is the sampling unit, and base and head are measured in one job, on one machine, in turns:
each process is ``<python> -m pytest_sdxl run --runs 1 --report <folder> ...`` with the interpreter of
its side, in ABBA blocks (or each block's four processes in a seeded random order), so that a drift
of the machine over the job falls on both sides alike. Both sides' processes run on the same CPUs.

After each block from the second on (two processes a side are the fewest a comparison of processes
can judge), each side's processes are pooled (``results.merge.pool_result_sets``) and compared as
``compare`` compares (``analysis.comparison.compare_results``). The measurement stops early once
every gated signal is decided: flagged, or its interval clear below the flag line (half the
threshold). Looking several times gives a false alarm several chances, so each look tests at
``alpha / planned looks`` (Bonferroni over the looks, with Holm across signals within a look as
``compare`` does): whatever the dependence between looks, the chance of any false alarm over the
whole job stays at or below ``alpha``. A look not taken (an early stop, the budget) leaves its share
unspent, so stopping early can only lower that chance. Stopping because a signal is clear of the flag
line cannot add a false alarm either: it ends the chances to flag.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pytest_sdxl.analysis.comparison import SIGNALS_BY_NAME, MetricComparison, Rules, compare_results
from pytest_sdxl.machine.bytecode import kept_bytecode
from pytest_sdxl.machine.interrupts import INTERRUPTED, TERMINATED, exit_status, stopped_by
from pytest_sdxl.results.merge import pool_result_sets
from pytest_sdxl.results.schema import ResultSet, load_results

BASE, HEAD = "base", "head"
ORDERS = ("abba", "random")
ABBA = (BASE, HEAD, HEAD, BASE)
# Processes a side at most. The gated signals are ratios within a process (the wall time beside its
# side-by-side reference, kernel time), whose scatter between processes is small; what a process adds
# is one more unit for Welch's t. Its interval narrows as t(2n - 2) * sqrt(2 / n): by a quarter from
# 4 to 6 processes a side (the first two looks), by a sixth more from 6 to 8, so 6 (three ABBA blocks,
# two looks) buys most of what more processes would at three quarters of their time.
DEFAULT_PAIRS = 6
# ``run``'s flags that change no figure, only what a process prints and draws: --quiet drops the tables from
# its terminal; --no-chart skips results.png, since a process's folder is read for its results.json alone and
# the chart would cost each process about half a second (matplotlib's import and a drawing, on the two-core
# CPU host).
QUIET_FLAGS = ("--quiet", "--no-chart")
# Characters of a failed process's standard error shown in its message.
STDERR_TAIL = 2000


@dataclasses.dataclass(frozen=True)
class Side:
    """One version of the code under test: how its processes start, and variables they alone get."""

    name: str
    command: tuple[str, ...]  # the interpreter and how it reaches the command line, e.g. (python, "-m", "pytest_sdxl")
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Flags that only save a process time, passed where this side's ``run`` knows them: a base from before
    # ``--no-chart`` is still measured (``cli.ab_sides.quiet_flags_known``).
    quiet_flags: tuple[str, ...] = QUIET_FLAGS


@dataclasses.dataclass(frozen=True)
class ProcessRequest:
    """One process to start: its side, its number on that side (from 1), the command and where it reports."""

    side: str
    index: int
    command: tuple[str, ...]
    environment: Mapping[str, str]
    cpus: frozenset[int] | None
    folder: Path


@dataclasses.dataclass(frozen=True)
class ProcessOutcome:
    status: int
    seconds: float
    stderr_tail: str = ""
    # Measured by an earlier command and taken for run (``measure.process_reuse``): ``seconds`` are its own then.
    reused: bool = False


# Starts one process and waits for it; a fake in the tests.
ProcessRunner = Callable[[ProcessRequest], ProcessOutcome]


@dataclasses.dataclass(frozen=True)
class InterleavePlan:
    base: Side
    head: Side
    run_arguments: tuple[str, ...]  # passed to every process's ``run`` (model, device, variants, ...)
    folder: Path  # <folder>/base/process-01/results.json, ...; the pooled sets beside them
    rules: Rules
    pairs: int = DEFAULT_PAIRS
    order: str = "abba"
    seed: int = 0
    budget_s: float | None = None
    cpus: frozenset[int] | None = None


@dataclasses.dataclass(frozen=True)
class Look:
    """One judgement during the measurement: after which block, on how many processes a side, what was left open."""

    block: int
    processes_per_side: int
    alpha: float
    undecided: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ProcessFailure:
    side: str
    index: int
    status: int
    stderr_tail: str
    command: tuple[str, ...]

    def describe(self) -> str:
        tail = self.stderr_tail.strip() or "(nothing on its standard error)"
        return (
            f"{self.side} process {self.index} exited with status {self.status}: {' '.join(self.command)}\n"
            f"its standard error ends:\n{tail}"
        )


@dataclasses.dataclass
class Interleaved:
    """What an interleaved measurement did and found; ``comparisons`` empty when it was stopped before judging."""

    plan: InterleavePlan
    finished: list[ProcessRequest] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    looks: list[Look] = dataclasses.field(default_factory=list)
    stop: str = ""
    base: ResultSet | None = None
    head: ResultSet | None = None
    comparisons: list[MetricComparison] = dataclasses.field(default_factory=list)
    failure: ProcessFailure | None = None
    interrupted: int = 0  # the exit status of the signal that stopped it (130 SIGINT, 143 SIGTERM); 0: none

    def count(self, side: str) -> int:
        return sum(1 for request in self.finished if request.side == side)

    @property
    def order(self) -> str:
        """The sides in the order their processes finished, as letters: ``ABBAABBA``."""
        return "".join("A" if request.side == BASE else "B" for request in self.finished)

    @property
    def regressed(self) -> bool:
        return any(item.regressed for item in self.comparisons)


def block_orders(pairs: int, order: str = "abba", seed: int = 0) -> list[tuple[str, ...]]:
    """The sides of each block: ABBA blocks, two processes a side each, an odd last pair AB.

    ``random``: each block's processes in an order drawn from ``seed`` (every block still holds two of
    each side, so every look sees as many processes a side).
    """
    if pairs < 1:
        raise ValueError(f"pairs must be at least 1, got {pairs}")
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not accepted; accepted: {', '.join(ORDERS)}")
    blocks: list[tuple[str, ...]] = [ABBA] * (pairs // 2) + ([(BASE, HEAD)] if pairs % 2 else [])
    if order == "random":
        draw = random.Random(seed)
        blocks = [tuple(draw.sample(block, len(block))) for block in blocks]
    return blocks


def planned_looks(blocks: int) -> int:
    """Judgements planned: after every block from the second on (after the only one when there is one)."""
    return max(1, blocks - 1)


def look_rules(rules: Rules, looks: int) -> Rules:
    """The rules of one look: ``alpha`` split evenly over the planned looks (Bonferroni)."""
    return dataclasses.replace(rules, alpha=rules.alpha / looks)


def undecided(comparisons: Sequence[MetricComparison]) -> tuple[str, ...]:
    """The gated comparisons more processes could still change, as ``variant signal``.

    Decided: flagged (regressed, failed), a kernel-launch count (exact, known from the first look),
    nothing more to measure (missing, skipped), or an interval whose upper end lies below the flag line
    (``1 + FLAG_SHARE * threshold``): a slowdown the gate must catch is then ruled out at the interval's
    level. Open: anything else, an insufficient comparison included.
    """
    open_items = []
    for item in comparisons:
        if not item.gated or item.verdict in ("regressed", "failed", "missing", "skipped"):
            continue
        signal = SIGNALS_BY_NAME.get(item.metric)
        if signal is not None and signal.rule == "exact":
            continue
        if item.verdict in ("unchanged", "improved") and item.high < item.flag_line:
            continue  # a NaN upper end (no interval) compares False: open
        open_items.append(f"{item.variant} {item.metric}")
    return tuple(open_items)


def process_command(side: Side, folder: Path, run_arguments: Sequence[str]) -> tuple[str, ...]:
    return (*side.command, "run", "--runs", "1", *side.quiet_flags, "--report", str(folder), *run_arguments)


def pin_to(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """What the child runs before its program: pinned to ``cpus`` (Linux), so that both sides share them."""
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def run_process(request: ProcessRequest) -> ProcessOutcome:
    """Start the process, its output kept in its folder's ``process.log``; wait for it."""
    request.folder.mkdir(parents=True, exist_ok=True)
    log = request.folder / "process.log"
    started = time.perf_counter()
    with log.open("wb") as output:
        completed = subprocess.run(
            request.command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **kept_bytecode(os.environ), **request.environment},
            preexec_fn=pin_to(request.cpus),
            check=False,
        )
    seconds = time.perf_counter() - started
    tail = log.read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL:]
    return ProcessOutcome(completed.returncode, seconds, tail)


def pooled(folders: Sequence[Path]) -> ResultSet:
    named = [(str(folder / "results.json"), load_results(folder / "results.json")) for folder in folders]
    if len(named) == 1:
        return named[0][1]
    return pool_result_sets(named).result_set


def measure_interleaved(
    plan: InterleavePlan,
    runner: ProcessRunner = run_process,
    report: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Interleaved:
    """The processes of ``plan`` in their blocks, judged after each from the second on, stopped when decided.

    A failed process stops the measurement (``failure``); SIGINT or SIGTERM (here, or a process that ended
    with 130 or 143) stops it too (``interrupted``). Either way what finished is pooled and kept.
    """
    say = report or (lambda line: None)
    blocks = block_orders(plan.pairs, plan.order, plan.seed)
    looks = planned_looks(len(blocks))
    rules = look_rules(plan.rules, looks)
    outcome = Interleaved(plan)
    started = clock()
    sides = {BASE: plan.base, HEAD: plan.head}
    try:
        for number, block in enumerate(blocks, start=1):
            if number > 1 and plan.budget_s is not None:
                spent = clock() - started
                if spent + spent / (number - 1) > plan.budget_s:
                    outcome.stop = (
                        f"the budget: another block would pass {plan.budget_s:g} s ({spent:.0f} s spent, "
                        f"{spent / (number - 1):.0f} s a block)"
                    )
                    break
            for side_name in block:
                index = outcome.count(side_name) + 1
                folder = plan.folder / side_name / f"process-{index:02d}"
                say(f"block {number}/{len(blocks)}: {side_name} process {index}")
                request, seconds, failure = run_to_end(
                    runner, sides[side_name], side_name, index, folder, plan.run_arguments, plan.cpus
                )
                if failure is not None:
                    outcome.failure = failure
                    outcome.stop = f"{side_name} process {index} failed"
                    return kept(outcome)
                outcome.finished.append(request)
                outcome.seconds.append(seconds)
            if number < 2 and len(blocks) > 1:
                continue
            judge(outcome, rules, number)
            still_open = outcome.looks[-1].undecided
            say(
                f"look {len(outcome.looks)}/{looks}: " + (f"open: {', '.join(still_open)}" if still_open else "decided")
            )
            if not still_open:
                outcome.stop = f"every gated signal decided after block {number}"
                return outcome
        else:
            outcome.stop = f"all {plan.pairs} pairs measured"
        if not outcome.looks:  # stopped by the budget after the first block: judge what there is, once
            judge(outcome, rules, 1)
        return outcome
    except KeyboardInterrupt as interrupt:
        outcome.interrupted = exit_status(interrupt)
        outcome.stop = "interrupted"
        return kept(outcome)


def run_to_end(
    runner: ProcessRunner,
    side: Side,
    side_name: str,
    index: int,
    folder: Path,
    run_arguments: Sequence[str],
    cpus: frozenset[int] | None,
    label: str = "",
) -> tuple[ProcessRequest, float, ProcessFailure | None]:
    """One process of a side run to its end: its request, its seconds, and what failed if it did.

    A process that ended with 130 (SIGINT) raises ``KeyboardInterrupt``, with 143 (SIGTERM) ``Terminated``: the
    signal reached its process group, so it stops this one too. ``label`` names the process in a failure
    (default: its side).
    """
    command = process_command(side, folder, run_arguments)
    request = ProcessRequest(side_name, index, command, dict(side.environment), cpus, folder)
    result = runner(request)
    if result.status in (INTERRUPTED, TERMINATED):
        raise stopped_by(result.status)
    if result.status != 0:
        return (
            request,
            result.seconds,
            ProcessFailure(label or side_name, index, result.status, result.stderr_tail, command),
        )
    return request, result.seconds, None


def judge(outcome: Interleaved, rules: Rules, block: int) -> None:
    """Pool each side's processes and compare them, recording the look."""
    kept(outcome)
    assert outcome.base is not None and outcome.head is not None
    outcome.comparisons = compare_results(outcome.base, outcome.head, rules)
    outcome.looks.append(
        Look(block, min(outcome.count(BASE), outcome.count(HEAD)), rules.alpha, undecided(outcome.comparisons))
    )


def kept(outcome: Interleaved) -> Interleaved:
    """Each side's finished processes pooled (a side with none stays None)."""
    for side in (BASE, HEAD):
        folders = [request.folder for request in outcome.finished if request.side == side]
        setattr(outcome, side, pooled(folders) if folders else None)
    return outcome
