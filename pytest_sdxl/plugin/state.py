"""What the pytest plugin remembers during one session, kept in ``config.stash``: state only.

The resolved settings, how each variant's pipeline was built and warmed (load and first
generation times), what each variant's benchmark measured, how each variant ended (ok,
skipped, failed), why benchmark tests were skipped and which variants the session planned.
After each test and at the end of the session this becomes a ``ResultSet``; the tables and
files made of it belong to ``reports`` and ``plugin.report``. Standard library only at import time.
Its place in ``config.stash``, and when it is created, belong to ``plugin.session``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_sdxl.measure.session_budget import SessionDeadline
    from pytest_sdxl.results.records import RunRecord, VariantRecord
    from pytest_sdxl.results.schema import ResultSet
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.registry import Composition


@dataclass(frozen=True)
class WarmUp:
    """How one variant's pipeline was built and warmed, once per session.

    ``components_load_s`` is the shared components' load (once per source, counted for every
    variant as the reference protocol's load time counts it); ``build_s`` assembles this variant's pipeline.
    """

    variant: str
    components_load_s: float
    build_s: float
    init_gen_s: float
    # What the first generation found in the persistent compile cache ("" when it compiled nothing).
    compile_cache: str = ""

    @property
    def load_s(self) -> float:
        return self.components_load_s + self.build_s


@dataclass
class SessionState:
    """Everything the plugin's fixtures and hooks share within one pytest session."""

    settings: Settings
    warm_ups: dict[str, WarmUp] = field(default_factory=dict)
    # Variant id -> its record (results.records.VariantRecord), in the order variants first ended.
    records: dict[str, VariantRecord] = field(default_factory=dict)
    # The baseline's images of the timed prompts, for every other variant's PSNR.
    reference_images: Any = None
    image_size: int | None = None
    # The device and precision the components were loaded on (settings may say 'auto').
    resolved: dict[str, object] = field(default_factory=dict)
    machine_details: dict[str, Any] | None = None
    report_line: str = ""
    # Why each skipped sdxl benchmark test was skipped, by variant (by test name where it has none),
    # and whether any passed: a session whose benchmarks were all skipped measured nothing.
    benchmark_skips: dict[str, str] = field(default_factory=dict)
    benchmark_passed: bool = False
    nothing_measured_line: str = ""
    # The variants the session's collected benchmark tests measure, in order (under xdist, the
    # workers' collection): those without a record when the session stops were never reached.
    planned: list[str] = field(default_factory=list)
    # The machine the --sdxl-report files name, looked up once: results.json is rewritten after every test.
    report_machine: dict[str, Any] | None = None
    # Which planned variants a session that stopped early never reached, for the terminal ("" otherwise).
    partial_line: str = ""
    # The variants a test without a marker runs when none are named (``Settings.default_variants``, worked out
    # at collection) and those that choice leaves out on this device.
    default_variants: list[Composition] | None = None
    left_out: list[Composition] = field(default_factory=list)
    # The session budget's deadline (``--sdxl-session-budget``), from when the state is made: the plugin's
    # configure, where a given setting is resolved, so every variant's load and warm-up count. None without one.
    deadline: SessionDeadline | None = None

    def __post_init__(self) -> None:
        if self.settings.session_budget is not None and self.deadline is None:
            from pytest_sdxl.measure.session_budget import SessionDeadline

            self.deadline = SessionDeadline(self.settings.session_budget)

    def record_for(self, variant: str, kind: str) -> VariantRecord:
        from pytest_sdxl.results.records import VariantRecord

        if variant not in self.records:
            self.records[variant] = VariantRecord(variant=variant, kind=kind)
        return self.records[variant]

    def record_runs(
        self,
        variant: str,
        kind: str,
        runs: list[RunRecord],
        note: str = "",
        measure_s: float | None = None,
        budget_s: float | None = None,
    ) -> None:
        """The runs of a variant's first benchmark; a second benchmark of the same variant keeps its own stats only."""
        record = self.record_for(variant, kind)
        if not record.runs:
            record.runs = list(runs)
            record.note = note
            record.measure_s = None if measure_s is None else round(measure_s, 1)
            record.budget_s = None if budget_s is None else round(budget_s, 3)
            warm_up = self.warm_ups.get(variant)
            record.compile_cache = warm_up.compile_cache if warm_up is not None else ""

    def record_outcome(self, variant: str, kind: str, status: str, reason: str) -> None:
        """A skip or failure of a test of this variant; the first failure's reason is kept."""
        record = self.record_for(variant, kind)
        if record.status == "failed":
            return
        if status == "skipped" and record.runs:
            return
        record.status, record.reason = status, reason

    def nothing_measured(self) -> str | None:
        """The line saying why nothing was measured when every sdxl benchmark that ran was skipped, else None."""
        if not self.benchmark_skips or self.benchmark_passed or any(record.runs for record in self.records.values()):
            return None
        reasons = "; ".join(f"{test}: {reason}" for test, reason in self.benchmark_skips.items())
        return f"sdxl: nothing was measured: every variant was skipped ({reasons})"

    def variants_left(self, variant: str) -> int:
        """The variants this session's sdxl benchmarks will still measure, ``variant`` included (at least 1).

        Under pytest-xdist a worker cannot know which variants it will be given: it takes an equal part of
        those collected (every worker collects them all), over ``PYTEST_XDIST_WORKER_COUNT``, less the
        variants it has measured, skipped or failed so far. A worker given more than its part then shares
        out less than is left, one given fewer finishes early; neither changes a figure's validity.
        """
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or "1")
        if workers > 1:
            done = sum(1 for name in self.records if name != variant)
            return max(1, math.ceil(len(self.planned) / workers) - done)
        unreached = self.unreached_variants()
        return max(1, len(unreached) + (0 if variant in unreached else 1))

    def measuring_settings(self, variant: str, device_type: str) -> Settings:
        """The settings a variant's benchmark measures under: under a session budget, its budget is its share."""
        from pytest_sdxl.measure.profiles import variant_settings

        return variant_settings(self.settings, self.deadline, device_type, self.variants_left(variant))

    def session_share_s(self, variant: str) -> float:
        """What the session budget leaves a variant, everything counted (``SessionDeadline.equal_part_s``); inf
        without one. A compile that can give up (``compile_max_autotune``) gives up there."""
        return math.inf if self.deadline is None else self.deadline.equal_part_s(self.variants_left(variant))

    def unreached_variants(self) -> list[str]:
        """The planned variants without a record: no test has measured, skipped or failed them yet."""
        return [variant for variant in self.planned if variant not in self.records]

    def result_set(self, machine: dict[str, Any], partial: str = "") -> ResultSet:
        """The session's results; ``partial`` (``results.schema.PARTIAL_REASONS``) says why variants may be missing."""
        from pytest_sdxl.measure.profiles import settings_block
        from pytest_sdxl.results.schema import ResultSet, settings_as_dict

        settings = settings_as_dict(self.settings)
        settings.update(settings_block(self.settings))
        if self.deadline is not None:
            settings.update(self.deadline.recorded())
        if self.left_out:
            settings["variants_left_out"] = [composition.id for composition in self.left_out]
        if self.image_size is not None:
            settings["image_size"] = self.image_size
        settings.update(self.resolved)
        settings["harness"] = (
            "pytest plugin: each variant's pipeline is loaded and warmed once (Run 1's Load, Init Gen and Total); "
            "each run is a block of benchmark rounds over the timed prompts on that warm pipeline"
        )
        missing = self.unreached_variants() if partial else []
        return ResultSet(
            settings=settings,
            machine=machine,
            variants=list(self.records.values()),
            partial=partial if missing else "",
            not_measured=missing,
        )
