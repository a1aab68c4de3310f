"""``run --resume``: measure only what a report folder's results.json lacks, then report the whole.

A matrix of every variant outlasts a CI job's or a device command's time limit. An interrupted ``run``
keeps every variant it finished (results.json, marked partial); ``--resume`` picks up from there. It
keeps the earlier records as they are and measures the requested variants that have no record yet.
A variant that was skipped or failed has a record too: it is kept, not retried. Earlier records must
come from the same workload on the same kind of card with the same software (the checks ``merge`` and
``compare`` make, ``results.compatibility``). A mismatch, or an earlier results.json that cannot be
read, stops the run before anything is measured and names each difference or the first bad value.
The joined results list both sessions' ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.results.compatibility import RESUME, mismatch_lines
from pytest_sdxl.results.merge import merge_result_sets
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, load_results, settings_as_dict
from pytest_sdxl.variants.registry import Composition

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings

THIS_RUN = "this run"


def earlier_results(report: Path) -> ResultSet | None:
    """The report folder's results.json, or None when there is none yet (a resume then starts from nothing)."""
    path = report / "results.json"
    return load_results(path) if path.exists() else None


def check_resumable(earlier: ResultSet, settings: Settings, report: Path) -> None:
    """ResultsFileError naming every difference between the earlier run's workload, card and software and this one's.

    Checked before measuring, on what is known then (``results.compatibility.RESUME``): the settings as
    given (``size`` rather than the image size it resolves to), the resolved device and precision, and
    this machine. The join afterwards checks the resolved image size as well.
    """
    from pytest_sdxl.machine.probes import machine_info, resolved_precision

    now = settings_as_dict(settings) | resolved_precision(settings)
    this_run = ResultSet(settings=now, machine=machine_info(settings.device))
    found = mismatch_lines([(str(report / "results.json"), earlier), (THIS_RUN, this_run)], RESUME)
    if found:
        raise ResultsFileError(
            "cannot resume: the earlier results measured something else (earlier vs this run):\n- "
            + "\n- ".join(found)
            + "\nresume with the earlier run's settings on the same kind of card, or write to another --report folder"
        )


def still_to_measure(compositions: Sequence[Composition], earlier: ResultSet | None) -> list[Composition]:
    """The compositions without a record in the earlier results, in the order asked for."""
    if earlier is None:
        return list(compositions)
    return [composition for composition in compositions if earlier.variant(composition.id) is None]


def joined(earlier: ResultSet | None, measured: ResultSet, report: Path | None) -> ResultSet:
    """The earlier records and this run's as one result set.

    The settings are the earlier run's: ``check_resumable`` made sure they match this run's in every
    workload key. The report folder is this run's.
    """
    if earlier is None:
        return measured
    if not measured.variants:
        return earlier
    result_set = merge_result_sets([("earlier results", earlier), (THIS_RUN, measured)]).result_set
    result_set.settings.pop("merged_from", None)
    result_set.settings["report"] = None if report is None else str(report)
    # When the earlier run began: its records were measured then, this run's now.
    result_set.settings["resumed_from"] = earlier.settings.get("resumed_from", earlier.created)
    return result_set
