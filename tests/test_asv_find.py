"""``asv find``: bisecting a history to the commit that made a benchmark slower, on a scratch repository.

The scratch repository (``tests/scratch_repository.py``, shared with ``tests/test_asv_continuous.py``)
holds the project as it is now in a first commit on ``main``; the branch ``history`` adds three commits
on top: one that touches only the README, one that makes only the batch path slower (a sleep per batch),
and one more README edit after it. ``asv find main..history`` then searches those three commits on one
ratio benchmark through the batch path. It builds and runs only the commits its bisection visits (here
three of three: the ends, then the middle); the commits asv continuous built already are not built
again. Three commits are the fewest with a step inside the range and unchanged commits on both sides
of it, and each commit more costs the test a build and a measurement.

The command, as a user runs it (README, "Performance history with asv")::

    asv find --show-stderr GOOD..BAD "VariantOverBaseline.track_variant_over_baseline"

GOOD..BAD is a git range (``git log`` syntax): the commits after GOOD up to BAD. The benchmark
name must match one benchmark (a parameterized one runs all its parameters; asv follows the
largest change among them). ``asv find`` looks for the largest increase, ``--invert`` for the
largest decrease, and assumes the change is mostly monotonic over the range.
"""

from __future__ import annotations

import re

import pytest
from scratch_repository import ScratchRepository, continuous_runs

pytestmark = pytest.mark.slow

# One ratio benchmark with one parameter: the batch variant over the baseline, which the slower batch
# path moves by about the slowdown (the batch variant's own calls take 1 + SLOWDOWN times as long).
VARIANTS = "baseline,batch"
BENCHMARK = "VariantOverBaseline.track_variant_over_baseline"


def test_asv_find_names_the_commit_that_slowed_the_batch_path(asv_scratch: ScratchRepository) -> None:
    # The continuous runs come first, whichever test asks for them first: they list what they built
    # before asv find builds more, and asv find then reuses their builds of unchanged and slower-batch.
    continuous_runs(asv_scratch)
    commits = asv_scratch.history()
    assert len(commits) == 3 and asv_scratch.git("rev-parse", "slower-batch") == commits[1]
    with asv_scratch.exclusive():
        found = asv_scratch.asv("find", "--show-stderr", "main..history", BENCHMARK, variants=VARIANTS)
    output = found.output
    assert found.returncode == 0, found.describe()
    match = re.search(r"Greatest regression found: ([0-9a-f]{8})", output)
    assert match is not None, output[-6000:]
    assert match[1] == commits[1][:8], f"found {match[1]}; the slower commit is {commits[1][:8]}\n{output[-6000:]}"
    # It measured each commit it visited (all three: the last one only asv find measures) and kept the results.
    results = list((asv_scratch.root / ".asv" / "results" / "scratch").glob("*.json"))
    measured = {path.name[:8] for path in results if path.name != "machine.json"}
    assert {commit[:8] for commit in commits} <= measured, sorted(measured)
