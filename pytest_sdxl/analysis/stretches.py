"""Wall blocks held back by a stretch of interference on one side only, left out of the wall test.

A wall block keeps the fastest call of the variant and of its side-by-side reference over a dozen rounds
(``measure.records.wall_blocks``), so a call slowed now and then leaves it alone. A stretch that slows every
call of one side for the whole block does not: its minimum then sits far above the process's other blocks
while the other side's does not move. The host-adjusted test (``host_adjusted``, ``processes``) expects the
two sides to move together, by the slope it fits, and reads such a block as a point far off the line: on
2026-12-07 two of 48 blocks of ``tiny_vae`` on one H100 (the variant 63 % above its fastest block, the
reference unmoved; the reference 33 % above, the variant 6 %) widened an unchanged comparison's interval to
0.71-1.62 and moved its estimate to 1.074, where the processes' plain ratios said 0.99 (the user guide's
method page, "Stretches of interference on one side").

So a block whose two sides moved apart, each measured from the fastest block of its own process on that
side, by more than ``STRETCH_SPLIT`` is left out. A slowdown of the code moves every block of a process
alike, so it moves none apart; a host that slows both sides moves them together, which the fitted slope
takes in. A process keeps its least split block, and a side keeps ``MIN_BLOCKS``, whatever their split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# How far apart the two sides of a block may move before it is left out: the log of each side's minimum
# over its process's fastest block on that side, differenced. Six times the wall gate's flag line (2.5 %),
# and past the 95th percentile (13 %) of 962 blocks in the GPU records of the user guide's results pages,
# most of them processes of several runs over minutes (the method page, "Stretches of interference").
STRETCH_SPLIT = math.log(1.15)
# Blocks a side keeps at least: the host-adjusted test needs two a side.
MIN_BLOCKS = 2


@dataclass(frozen=True)
class KeptBlocks:
    """A side's blocks ([variant minimum, reference minimum]) and their processes, the stretches left out."""

    blocks: list[list[float]]
    processes: list[str]
    left_out: int


def split(block: Sequence[float], fastest: tuple[float, float]) -> float:
    """How far the block's two sides moved apart, each from its process's fastest block (a log ratio)."""
    return abs(math.log(block[0] / fastest[0]) - math.log(block[1] / fastest[1]))


def without_stretches(blocks: Sequence[Sequence[float]], processes: Sequence[str] = ()) -> KeptBlocks:
    """``blocks`` less those split past ``STRETCH_SPLIT``; ``processes`` name each block's process (none: one).

    Non-positive minima are left for the test to refuse, untouched here.
    """
    owners = list(processes) if processes else [""] * len(blocks)
    if len(owners) != len(blocks) or any(min(block) <= 0 for block in blocks):
        return KeptBlocks([list(block) for block in blocks], list(processes), 0)
    fastest: dict[str, tuple[float, float]] = {}
    for block, owner in zip(blocks, owners, strict=True):
        own, reference = fastest.get(owner, (math.inf, math.inf))
        fastest[owner] = (min(own, block[0]), min(reference, block[1]))
    splits = [split(block, fastest[owner]) for block, owner in zip(blocks, owners, strict=True)]
    left = {owner: owners.count(owner) for owner in fastest}
    dropped: set[int] = set()
    # The most split first, so that where a guard stops the dropping, the least split blocks are the ones kept.
    for index in sorted(range(len(blocks)), key=lambda item: splits[item], reverse=True):
        if splits[index] <= STRETCH_SPLIT or len(blocks) - len(dropped) <= MIN_BLOCKS:
            break
        if left[owners[index]] > 1:
            dropped.add(index)
            left[owners[index]] -= 1
    kept = [index for index in range(len(blocks)) if index not in dropped]
    return KeptBlocks(
        [list(blocks[index]) for index in kept],
        [processes[index] for index in kept] if processes else [],
        len(dropped),
    )


def left_out_note(base: int, new: int) -> str:
    """What the test says of the blocks it left out; "" where none was."""
    if not base and not new:
        return ""
    return (
        f"; left out as stretches of interference on one side (variant and reference minima more than "
        f"{math.exp(STRETCH_SPLIT) - 1:.0%} apart): {base} base and {new} new block{'' if base + new == 1 else 's'}"
    )
