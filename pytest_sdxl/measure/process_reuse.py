"""A trial's processes kept across commands: each finished process recorded, reused by a later command, and
no process started that would end past a budget.

A command limited to ten minutes (a CI job's step, a machine with a per-command time limit) holds about ten of
``power``'s fresh processes, and a cross-process trial with two injections takes twelve. Where a trial may be
cut between processes, nothing measured is lost: the runner records each finished process beside its results
(``outcome.json``: its exit status, seconds and what it ran), a later command over the same work folder takes a
recorded process for run instead of starting it again, and under a budget a process is not started where it
would end past it (``ProcessBudgetSpent``).

The interleaved order and the looks between blocks depend only on the processes' results files, so a trial
taken up again reaches the same processes, in the same order, as one measured in a single command would.
A process is reused only where it ran the same thing on the same card: the same command line but for the
interpreter's path and the folder (another machine may put them elsewhere), the same added environment (the
injection and its size), and the card the caller names (a work folder carried to a machine of another GPU
holds nothing for it). Anything else in its folder (a process cut by a time limit, one that failed) is cleared
and the process run again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

from pytest_sdxl.errors import SdxlError
from pytest_sdxl.measure.interleave import ProcessOutcome, ProcessRequest, ProcessRunner

OUTCOME_FILE = "outcome.json"


class ProcessBudgetSpent(SdxlError):
    """The next process would end past the budget: the command stops between processes, nothing lost."""

    def __init__(self, request: ProcessRequest, spent: float, pace: float, budget_s: float) -> None:
        folder = request.folder
        super().__init__(
            f"{folder.parent.parent.name}/{folder.parent.name}/{folder.name} not started: at {pace:.0f} s a process "
            f"it would pass --budget-s {budget_s:g} ({spent:.0f} s spent)"
        )
        self.request = request


def what_ran(request: ProcessRequest, card: str) -> dict[str, object]:
    """The request as two machines would both write it: no interpreter path, the folder as "{folder}"; the card."""
    folder = str(request.folder)
    return {
        "arguments": ["{folder}" if part == folder else part for part in request.command[1:]],
        "environment": dict(sorted(request.environment.items())),
        "card": card,
    }


def recorded_outcome(request: ProcessRequest, card: str) -> ProcessOutcome | None:
    """The outcome an earlier command recorded for this very process on ``card``, where it finished with its
    results written."""
    path = request.folder / OUTCOME_FILE
    if not path.is_file() or not (request.folder / "results.json").is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("ran") != what_ran(request, card) or recorded.get("status") != 0:
        return None
    seconds = recorded.get("seconds")
    return ProcessOutcome(0, float(seconds) if isinstance(seconds, int | float) else 0.0, reused=True)


def recording_and_reusing(runner: ProcessRunner, card: str) -> ProcessRunner:
    """``runner``, taking a process an earlier command finished on ``card`` for run, and recording each one it runs.

    ``outcome.json`` is written atomically after the process ends, so a process cut mid-way has none and is
    run again, from an emptied folder.
    """
    from pytest_sdxl.results.schema import write_atomically

    def run(request: ProcessRequest) -> ProcessOutcome:
        earlier = recorded_outcome(request, card)
        if earlier is not None:
            return earlier
        if request.folder.exists():
            shutil.rmtree(request.folder)
        outcome = runner(request)
        record = {"ran": what_ran(request, card), "status": outcome.status, "seconds": round(outcome.seconds, 3)}
        write_atomically(request.folder / OUTCOME_FILE, json.dumps(record, indent=2) + "\n")
        return outcome

    return run


def within_budget(
    runner: ProcessRunner,
    budget_s: float,
    clock: Callable[[], float],
    started: float,
    first_pace: float | None = None,
) -> ProcessRunner:
    """``runner``, refusing to start a process that would end past ``budget_s`` seconds of ``clock`` from ``started``.

    The pace is the slowest process this command ran after its first (a process cut by the command's limit is
    lost; a command's first process also writes the bytecode cache the later ones read, so it is slower than
    they will be); while there is none, the first's seconds, and before any, ``first_pace`` (an earlier process's
    seconds) or nothing: the first process always starts. Wrapped by ``recording_and_reusing``, it hears only of
    the processes that are run, so a reused one costs nothing and is never refused.
    """
    ran: list[float] = []

    def pace() -> float | None:
        if len(ran) > 1:
            return max(ran[1:])
        return ran[0] if ran else first_pace

    def run(request: ProcessRequest) -> ProcessOutcome:
        expected = pace()
        if expected is not None:
            spent = clock() - started
            if spent + expected > budget_s:
                raise ProcessBudgetSpent(request, spent, expected, budget_s)
        outcome = runner(request)
        ran.append(outcome.seconds)
        return outcome

    return run
