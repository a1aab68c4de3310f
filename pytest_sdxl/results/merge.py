"""Several results files of one measurement setup joined into one: the lanes of a multi-GPU run, one report.

A machine with several GPUs measures the variant matrix fastest as parallel lanes, one
``python -m pytest_sdxl run`` per GPU, each writing its own results.json (and keeping every variant
it finished when a time limit stops it). ``merge`` joins them into one results file, markdown and
chart, after checking that they measured the same thing on the same kind of card with the same
software (``results.compatibility.MERGE``). A figure from another model, precision, image size, card
or software would make the joined tables lie, so any difference in those is refused with the files
and values named. So is a session held by two of the files (``results.sessions``): the joined
document lists every session it holds, and a session joined twice would count its runs twice. A
variant measured in two files is refused too (none lost, none twice) unless the caller keeps the
first file's record, and the merge says so.
``--pool-runs`` joins the other way: sessions of the same variants, each a process of its own, as one set
whose variants hold every session's runs, each run keeping the process that measured it, so that
``compare`` sees several processes a side and judges the drift between them.
Each lane's PSNR is against the baseline images that lane made itself: the same weights, prompts and
seeds give the same images on every card of a kind, so the joined column reads as one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.results.compatibility import MERGE, POOL, refuse_differences, unchecked
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, load_results
from pytest_sdxl.results.sessions import joined_ids, repeated_sessions
from pytest_sdxl.variants.registry import BASELINE

if TYPE_CHECKING:
    from pytest_sdxl.results.compatibility import Check

# The process name given to a pooled session's runs that predate process ids.
SESSION_PROCESS_PREFIX = "session-"
REFUSED_ADVICE = (
    "join only results of one model, image size, steps, dtype, prompts and seed, measured on one kind of card with "
    "one software stack (and, without --pool-runs, one number of runs)"
)


@dataclasses.dataclass
class Merged:
    result_set: ResultSet
    # What a reader must know about the join: which file's record of a doubly measured variant was kept.
    notes: list[str]


def merge_files(paths: Sequence[str | Path], keep_first: bool = False, pool_runs: bool = False) -> Merged:
    """The results files at paths as one result set; raises ResultsFileError on anything not joinable."""
    if len(paths) < 2:
        raise ResultsFileError(f"merge needs two results files or more, got {len(paths)}")
    named = [(str(path), load_results(path)) for path in paths]
    return pool_result_sets(named) if pool_runs else merge_result_sets(named, keep_first)


def refuse_joining(named: Sequence[tuple[str, ResultSet]], checks: Sequence[Check]) -> list[str]:
    """ResultsFileError where the sets measured different things, or where one session is in two of them.

    Returns what could not be checked (a file of an older writer lacking a key), for the merge's notes.
    """
    refuse_differences(named, checks, REFUSED_ADVICE)
    repeated = repeated_sessions([(name, result_set.session_ids) for name, result_set in named])
    if repeated:
        raise ResultsFileError(
            "the same session is in more than one file: "
            + "; ".join(repeated)
            + "; give each session's results once (a copy of a file holds the same session)"
        )
    return unchecked(named, checks)


def pool_result_sets(named: Sequence[tuple[str, ResultSet]]) -> Merged:
    """Sessions of the same variants as one set, each variant holding every session's runs, renumbered in order.

    Each run keeps its process (``RunRecord.process``; a session's runs that predate it get one named after
    the session): runs of one process share its level, so ``compare`` takes the processes as its samples.
    Refused where the sessions measured different variants, or a variant in one but not
    another (pooling would give it runs from some sessions only); the sessions may differ in runs a session.
    """
    not_checked = refuse_joining(named, POOL)
    first_name, first = named[0]
    sessions = [{record.variant: record for record in result_set.variants} for _, result_set in named]
    expected = {variant: record.ok for variant, record in sessions[0].items()}
    for (name, _), session in zip(named[1:], sessions[1:], strict=True):
        found = {variant: record.ok for variant, record in session.items()}
        if found != expected:
            raise ResultsFileError(
                f"--pool-runs joins sessions of the same variants, all measured in each: {first_name} has "
                f"{describe_outcomes(expected)}, {name} has {describe_outcomes(found)}"
            )
    pooled: list[VariantRecord] = []
    for record in first.variants:
        if not record.ok:
            pooled.append(record)  # skipped in every session: the first session's reason stands for all
            continue
        records = [session[record.variant] for session in sessions]
        own_runs = [
            with_process(run, result_set)
            for (_, result_set), other in zip(named, records, strict=True)
            for run in other.runs
        ]
        runs = [dataclasses.replace(run, run=index) for index, run in enumerate(own_runs, start=1)]
        # The pooled variant's measuring time is every session's, known only where each session recorded it.
        seconds = [other.measure_s for other in records if other.measure_s is not None]
        measure_s = sum(seconds) if len(seconds) == len(records) else None
        pooled.append(dataclasses.replace(record, runs=runs, measure_s=measure_s))
    settings = dict(first.settings)
    settings["runs"] = sum(int(result_set.settings.get("runs") or 0) for _, result_set in named)
    settings["report"] = None
    settings["pooled_from"] = [name for name, _ in named]
    partial = next((result_set.partial for _, result_set in named if result_set.partial), "")
    missing = sorted({variant for _, result_set in named for variant in result_set.not_measured})
    ids = joined_ids([result_set.session_ids for _, result_set in named])
    joined = ResultSet(settings, dict(first.machine), pooled, partial=partial, not_measured=missing, session_ids=ids)
    note = f"pooled the runs of {len(named)} sessions: each variant's runs in session order, renumbered"
    return Merged(joined, [*not_checked, note])


def with_process(run: RunRecord, result_set: ResultSet) -> RunRecord:
    """The run, named after its session's first id where it predates process ids (``RunRecord.process``).

    One id a session is right for a variant's runs: a variant is measured in one process, pytest-xdist's
    workers included (a test runs on one worker, and the plugin measures a variant in one test), while
    different variants of one session may come from different workers, which the comparison, variant by
    variant, never mixes. Sessions joined here have different ids (``refuse_joining``), so the names differ.
    """
    if run.process:
        return run
    return dataclasses.replace(run, process=f"{SESSION_PROCESS_PREFIX}{result_set.session_ids[0]}")


def describe_outcomes(outcomes: dict[str, bool]) -> str:
    return (
        ", ".join(f"{variant} ({'measured' if ok else 'not measured'})" for variant, ok in outcomes.items()) or "none"
    )


def merge_result_sets(named: Sequence[tuple[str, ResultSet]], keep_first: bool = False) -> Merged:
    """Result sets (each with the name of its file) as one, variants in file order, the baseline first."""
    first = named[0][1]
    notes = refuse_joining(named, MERGE)
    kept: dict[str, tuple[str, VariantRecord]] = {}
    doubles: list[str] = []
    for name, result_set in named:
        for record in result_set.variants:
            if record.variant not in kept:
                kept[record.variant] = (name, record)
            elif keep_first:
                notes.append(f"{record.variant}: measured in {kept[record.variant][0]} and {name}; kept the first")
            else:
                doubles.append(f"{record.variant} (in {kept[record.variant][0]} and {name})")
    if doubles:
        raise ResultsFileError(
            "a variant was measured in more than one file: "
            + ", ".join(doubles)
            + "; drop it from all lanes but one, or pass --first to keep each variant's first record"
        )
    records = [record for _, record in kept.values()]
    records.sort(key=lambda record: record.variant != BASELINE)  # stable: file order otherwise
    settings = dict(first.settings)
    settings["variants"] = [record.variant for record in records]
    settings["report"] = None
    settings["merged_from"] = [name for name, _ in named]
    # A lane stopped by its time limit leaves the joined report partial too, naming what no lane measured.
    partial = next((result_set.partial for _, result_set in named if result_set.partial), "")
    missing = {variant for _, result_set in named for variant in result_set.not_measured} - set(kept)
    joined = ResultSet(
        settings=settings,
        machine=dict(first.machine),
        variants=records,
        partial=partial,
        not_measured=sorted(missing),
        session_ids=joined_ids([result_set.session_ids for _, result_set in named]),
    )
    return Merged(joined, notes)
