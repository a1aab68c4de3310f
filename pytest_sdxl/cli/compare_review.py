"""What ``compare`` says beside its verdict table: the GPU and host state of both sides, image quality against
a budget, and the markdown written for a pull request (``--format markdown``, ``--summary FILE``).

The GPU state qualifies any verdict (clocks apart or a throttled side can explain a difference on
their own), and the host state any wall-time verdict (a host that kept the timing thread from a CPU
makes calls slower without the code changing), so both are said before the verdict. The quality budget
gates like a regression, but only where the weights are real: on ``random:`` weights a lossy variant's
images are noise against noise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_sdxl.cli.quality_options import add_quality_budget_options, budget_from

if TYPE_CHECKING:
    from pytest_sdxl.analysis.comparison import MetricComparison, Rules
    from pytest_sdxl.machine.gpu_state import GpuStateSummary
    from pytest_sdxl.machine.host_state import HostStateSummary
    from pytest_sdxl.results.schema import ResultSet

FORMATS = ("text", "markdown")


def add_review_options(parser: argparse.ArgumentParser) -> None:
    """--format, --summary and the quality budget's limits."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: the verdict table fitted to the terminal; markdown: GitHub markdown sized for a job "
        "summary or a pull-request comment (default: %(default)s)",
    )
    parser.add_argument(
        "--summary",
        metavar="FILE",
        help="Also write the markdown (whatever --format) to this file, atomically (a link's file, the link "
        "kept), or to a stream such as /dev/stdout: for $GITHUB_STEP_SUMMARY or a pull-request comment",
    )
    add_quality_budget_options(parser)


@dataclass
class Review:
    """Both sides' GPU and host state and what they say, the head's image quality, and the variants over the budget."""

    gpu_states: tuple[GpuStateSummary, GpuStateSummary]
    gpu_sentences: list[str]
    quality_lines: list[str] = field(default_factory=list)
    # (variant, the limits it broke) for each variant over the budget on real weights.
    over_budget: list[tuple[str, str]] = field(default_factory=list)
    host_states: tuple[HostStateSummary, HostStateSummary] | None = None
    host_sentences: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        """'over the quality budget: tiny_vae (PSNR 27.1 dB is below ...)', or "" when none is."""
        if not self.over_budget:
            return ""
        return "over the quality budget: " + ", ".join(f"{name} ({broken})" for name, broken in self.over_budget)

    def lines(self) -> list[str]:
        """The text said before the verdict: each side's GPU and host state, what differs, the quality block."""
        base, head = self.gpu_states
        lines = []
        if base.readings or head.readings:
            lines += [f"GPU state of the base: {base.describe()}", f"GPU state of the head: {head.describe()}"]
        lines += self.gpu_sentences
        if self.host_states is not None and any(side.rounds for side in self.host_states):
            base_host, head_host = self.host_states
            lines += [f"Host of the base: {base_host.describe()}", f"Host of the head: {head_host.describe()}"]
        lines += self.host_sentences
        if self.quality_lines:
            lines += ["", *self.quality_lines]
        return lines


def review_of(base: ResultSet, new: ResultSet, arguments: argparse.Namespace) -> Review:
    from pytest_sdxl.analysis.quality import budget_findings, over_budget
    from pytest_sdxl.machine.gpu_state import compare_gpu_states
    from pytest_sdxl.machine.host_state import compare_host_states
    from pytest_sdxl.reports.gpu_state import side_state
    from pytest_sdxl.reports.host_state import side_host_state
    from pytest_sdxl.reports.quality import budget_lines

    states = (side_state(base), side_state(new))
    hosts = (side_host_state(base), side_host_state(new))
    budget = budget_from(arguments)
    findings = budget_findings(new, budget)
    over = [(item.variant, "; ".join(item.check.violations)) for item in over_budget(findings)]
    return Review(
        states,
        compare_gpu_states(*states),
        budget_lines(findings, budget, base),
        over,
        host_states=hosts,
        host_sentences=compare_host_states(*hosts),
    )


def markdown_of(
    base: ResultSet,
    new: ResultSet,
    comparisons: Sequence[MetricComparison],
    rules: Rules,
    review: Review,
    notes: Sequence[str] = (),
    undecided: Sequence[str] = (),
) -> str:
    from pytest_sdxl.reports.markdown import comparison_markdown

    return comparison_markdown(
        base,
        new,
        comparisons,
        rules,
        gpu_states=review.gpu_states,
        host_states=review.host_states,
        notes=notes,
        quality_lines=review.quality_lines,
        over_budget=[name for name, _ in review.over_budget],
        undecided=undecided,
    )


def unwritten(path: str | os.PathLike[str] | None, text: str, what: str) -> str:
    """``text`` written to ``path`` (nothing where None); "" when written, else a line saying what was not and why.

    The path was checked before the work; an OSError now (a disk that filled, a folder made read-only since)
    must not turn a finished comparison into a traceback: the command says it after its verdict.
    """
    from pytest_sdxl.results.schema import write_atomically

    if path is None:
        return ""
    try:
        write_atomically(path, text)
    except OSError as error:
        return f"{what} {str(path)!r} was not written: {error.strerror or error}"
    return ""


def status_with(status: int, failures: Sequence[str], kept: str = "") -> int:
    """The verdict's exit status, each output not written said on stderr, ``kept`` after them where given.

    A regression keeps its 1; a verdict of 0 becomes 2, as a --summary refused before the work would: the job
    must not pass without a file it asked for, nor read a file not written as a regression.
    """
    from pytest_sdxl.cli.options import USAGE_ERROR

    failed = [line for line in failures if line]
    if not failed:
        return status
    print(f"pytest-sdxl: error: {'; '.join(failed)}{f'; {kept}' if kept else ''}", file=sys.stderr)
    return status or USAGE_ERROR
