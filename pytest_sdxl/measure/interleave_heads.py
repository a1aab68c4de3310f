"""Several heads against one base, interleaved in one job: how ``power --across processes`` measures a trial.

A power trial compares the unchanged code with itself and with each injected slowdown. Measured as
separate ``ab`` jobs, every comparison starts base processes of its own, though the base is the same
code each time. Here the heads share the base's processes: each block runs the base, then each open
head, then the heads again in reverse order and the base last (``B H1 H2 H3 H3 H2 H1 B``; an odd last
pair ``B H1 H2 H3``), so each head's processes sit as symmetric in time about the block's middle as the
base's, and a drift of the machine over the block falls on both sides of every comparison alike, as
ABBA does for one. With three comparisons a trial starts a third fewer processes.

Each head is judged against the base as ``ab`` judges (``measure.interleave``): the same blocks, looks
after each block from the second on at ``alpha / planned looks``, and the early stop once every gated
signal is decided; a decided head starts no more processes and keeps the comparisons of the look that
decided it, and the base goes on while any head is open. What each head's comparison sees is what an
``ab`` job of its own would: so a comparison's rate over trials is ``ab``'s. The comparisons of one
trial share their base processes and are not independent of each other; trials are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pytest_sdxl.analysis.comparison import Rules
from pytest_sdxl.machine.interrupts import exit_status
from pytest_sdxl.measure.interleave import (
    BASE,
    HEAD,
    Interleaved,
    InterleavePlan,
    ProcessRunner,
    Side,
    block_orders,
    judge,
    kept,
    look_rules,
    planned_looks,
    run_process,
    run_to_end,
)


@dataclasses.dataclass(frozen=True)
class HeadsPlan:
    base: Side
    heads: Mapping[str, Side]  # name -> side, in the order each block starts them
    run_arguments: tuple[str, ...]
    folder: Path  # <folder>/base/process-01/, <folder>/<head folder>/process-01/, ...
    rules: Rules
    pairs: int
    cpus: frozenset[int] | None = None


def folder_name(head: str) -> str:
    """A head's folder: its name with what a path would not like spelt out (``host 5%`` -> ``host-5pct``)."""
    return head.replace(" ", "-").replace("%", "pct")


def block_sides(open_heads: Sequence[str], odd_pair: bool) -> list[str | None]:
    """The processes of a block in order, ``None`` for the base: forward, then mirrored unless it is an odd pair."""
    forward: list[str | None] = [None, *open_heads]
    return forward if odd_pair else [*forward, *reversed(forward)]


def measure_heads_interleaved(
    plan: HeadsPlan,
    runner: ProcessRunner = run_process,
    report: Callable[[str], None] | None = None,
) -> dict[str, Interleaved]:
    """Every head of ``plan`` judged against the shared base; per head, what its own ``ab`` job would hold.

    A failed process stops every head's measurement (each gets the ``failure``); SIGINT (here, or a process
    that ended with 130) stops them too (``interrupted``). Either way what finished is pooled and kept.
    """
    say = report or (lambda line: None)
    blocks = block_orders(plan.pairs)
    rules = look_rules(plan.rules, planned_looks(len(blocks)))
    outcomes = {
        name: Interleaved(
            InterleavePlan(
                plan.base, side, plan.run_arguments, plan.folder / folder_name(name), plan.rules,
                pairs=plan.pairs, cpus=plan.cpus,
            )
        )
        for name, side in plan.heads.items()
    }  # fmt: skip
    open_heads = list(plan.heads)
    base_started = 0
    try:
        for number, block in enumerate(blocks, start=1):
            for head in block_sides(open_heads, odd_pair=len(block) == 2):
                if head is None:
                    base_started += 1
                    side, side_name, index = plan.base, BASE, base_started
                    folder = plan.folder / BASE / f"process-{index:02d}"
                    sharing = [outcomes[name] for name in open_heads]
                else:
                    side, side_name = plan.heads[head], HEAD
                    index = outcomes[head].count(HEAD) + 1
                    folder = outcomes[head].plan.folder / f"process-{index:02d}"
                    sharing = [outcomes[head]]
                label = head or BASE
                say(f"block {number}/{len(blocks)}: {label} process {index}")
                request, seconds, failure = run_to_end(
                    runner, side, side_name, index, folder, plan.run_arguments, plan.cpus, label
                )
                if failure is not None:
                    for outcome in outcomes.values():
                        outcome.failure = failure
                        outcome.stop = f"{label} process {index} failed"
                        kept(outcome)
                    return outcomes
                for outcome in sharing:
                    outcome.finished.append(request)
                    outcome.seconds.append(seconds)
            if number < 2 and len(blocks) > 1:
                continue
            for name in list(open_heads):
                judge(outcomes[name], rules, number)
                if not outcomes[name].looks[-1].undecided:
                    outcomes[name].stop = f"every gated signal decided after block {number}"
                    open_heads.remove(name)
            say(f"look after block {number}: " + (f"open: {', '.join(open_heads)}" if open_heads else "decided"))
            if not open_heads:
                break
        for name in open_heads:
            outcomes[name].stop = f"all {plan.pairs} pairs measured"
        return outcomes
    except KeyboardInterrupt as interrupt:
        for outcome in outcomes.values():
            outcome.interrupted = exit_status(interrupt)
            outcome.stop = "interrupted"
            kept(outcome)
        return outcomes
