"""``compare --format markdown``: the comparison as GitHub-flavoured markdown, sized for a job summary or a comment.

What a reviewer reads where the change is reviewed: the verdict in one line, the GPU state of both
sides (clocks apart or throttling qualify any verdict), the head's image quality against its
baseline's images (``reports.quality``), the verdict table with each side's value, and for each
flagged variant the kernel groups whose launches or time per image changed.

GitHub takes at most 1 MiB of job summary per step and 65,536 characters per comment, and a comment
holds every card's comparison, so the output is capped well below both (``DEFAULT_MAX_BYTES``):
the flagged rows come first, and what does not fit is counted and said, never cut mid-row.
"""

from __future__ import annotations

import html
import math
import re
import statistics
from collections.abc import Sequence

from pytest_sdxl.analysis.comparison import SIGNALS_BY_NAME, MetricComparison, Rules
from pytest_sdxl.analysis.kernels import KernelChange, change_wording, kernel_diff
from pytest_sdxl.analysis.stats import run_statistic
from pytest_sdxl.machine.gpu_state import GpuStateSummary, compare_gpu_states
from pytest_sdxl.machine.host_state import HostStateSummary, compare_host_states
from pytest_sdxl.reports.comparison import KERNEL_SIGNALS, kernel_table_of
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

# Two cards' comparisons in one pull-request comment (65,536 characters at most), with room to spare.
DEFAULT_MAX_BYTES = 30_000
DEFAULT_MAX_ROWS = 80
KERNEL_ROWS = 10
NOTE_LENGTH = 160
# Room kept for the lines that say what was left out.
FOOTER_BYTES = 400
UNITS = {
    "wall_ratio": "×",
    "avg_gen_s": " s",
    "kernel_ms": " ms",
    "kernels": "",
    "init_gen_s": " s",
    "load_s": " s",
    "total_s": " s",
    "peak_gpu_mem_gb": " GB",
}
MOVED = ("regressed", "improved", "changed")
# The wall ratio's own ratio column is the host-adjusted estimate, which a plain quotient of the sides is not.
WALL_RATIO_NOTE = (
    "_wall_ratio: each side's median over its blocks of variant / reference time; the ratio is the "
    "host-adjusted estimate at equal reference speed, not their quotient._"
)


def cell(text: str) -> str:
    """Plain text safe in a table cell: a pipe would end the cell, a tag-like name would vanish as HTML."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def code(text: str, in_table: bool = True) -> str:
    """A code span, whatever backticks the text holds; in a table cell its pipes are escaped (GFM reads them first)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded.replace('|', chr(92) + '|') if in_table else padded}{fence}"


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def side_value(record: VariantRecord | None, metric: str, rules: Rules) -> float | None:
    """One side's figure for a signal, the statistic its comparison rests on, or None where there is none.

    Threshold signals: the geometric mean of each run's statistic (their ratio is the comparison's);
    launches: the median over every profiled call; the wall ratio: the median of its blocks' ratios.
    """
    signal = SIGNALS_BY_NAME.get(metric)
    if record is None or signal is None:
        return None
    runs = record.run_samples(signal.samples)
    if not runs:
        return None
    if signal.rule == "exact":
        return float(statistics.median(value for run in runs for value in run))
    if signal.rule == "host-adjusted":
        ratios = [pair[0] / pair[1] for pair in runs if len(pair) == 2 and pair[1] > 0]
        return float(statistics.median(ratios)) if ratios else None
    values = [run_statistic(run, rules.statistic_of(metric)) for run in runs]
    if min(values) <= 0:
        return None
    return math.exp(statistics.fmean(math.log(value) for value in values))


def figure(value: float | None, metric: str) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}{UNITS.get(metric, '')}"


def ratio_cell(item: MetricComparison) -> str:
    if math.isnan(item.ratio):
        return "-"
    if math.isnan(item.low):
        return f"{item.ratio:.3f}"
    return f"{item.ratio:.3f} ({item.low:.3f}–{item.high:.3f})"


def verdict_cell(item: MetricComparison) -> str:
    verdict = f"**{item.verdict}**" if item.regressed else item.verdict
    if not item.gated and item.metric != "-":
        verdict += " (not gated)"
    if item.note:
        note = item.note if len(item.note) <= NOTE_LENGTH else item.note[: NOTE_LENGTH - 1] + "…"
        verdict += f": {cell(note)}"
    return verdict


def row(item: MetricComparison, base: ResultSet, new: ResultSet, rules: Rules) -> str:
    values = [side_value(results.variant(item.variant), item.metric, rules) for results in (base, new)]
    cells = [
        code(item.variant),
        cell(item.metric),
        figure(values[0], item.metric),
        figure(values[1], item.metric),
        ratio_cell(item),
        verdict_cell(item),
    ]
    return "| " + " | ".join(cells) + " |"


def importance(item: MetricComparison) -> int:
    """Rows in the order kept when space runs out: what fails the gate, what moved, what could not be judged."""
    if item.regressed:
        return 0
    if item.verdict in MOVED:
        return 1
    return 3 if item.verdict == "unchanged" else 2


def flagged_variants(comparisons: Sequence[MetricComparison]) -> list[str]:
    """Variants that regressed, or whose kernel signals did not stay unchanged (the terminal's kernel diffs too)."""
    moved = {item.variant for item in comparisons if item.metric in KERNEL_SIGNALS and item.verdict != "unchanged"}
    return sorted(moved | {item.variant for item in comparisons if item.regressed})


def verdict_line(
    comparisons: Sequence[MetricComparison], over_budget: Sequence[str] = (), undecided: Sequence[str] = ()
) -> str:
    """'**Regressed:** ...', '**Over the quality budget:** ...', '**Undecided:** ...', or '**No regression.**'.

    ``undecided``: the gated signals (``"variant signal"``) a measurement that stops itself left open, where
    no regression was found and none was ruled out either (``ab``); named so that a reader does not take
    them for a pass.
    """
    regressed = list(
        dict.fromkeys(
            f"{code(item.variant, in_table=False)} {item.verdict if item.metric == '-' else item.metric}"
            for item in comparisons
            if item.regressed
        )
    )
    parts = []
    if regressed:
        shown = ", ".join(regressed[:10]) + (f" and {len(regressed) - 10} more" if len(regressed) > 10 else "")
        parts.append(f"**Regressed:** {shown}.")
    if over_budget:
        parts.append(f"**Over the quality budget:** {', '.join(code(name, in_table=False) for name in over_budget)}.")
    if undecided:
        named = ", ".join(
            f"{code(variant, in_table=False)} {signal}"
            for variant, _, signal in (item.partition(" ") for item in undecided)
        )
        parts.append(f"{'**Undecided:**' if parts else '**No regression found; undecided:**'} {named}.")
    return " ".join(parts) or "**No regression.**"


def rules_line(rules: Rules) -> str:
    return (
        f"Gate: {', '.join(rules.gate)}; thresholds: wall {rules.threshold:.0%} (per-run {rules.wall_statistic}), "
        f"kernel time {rules.kernel_threshold:.0%}, kernel launches exact; a change is flagged past half a "
        f"threshold at Holm-adjusted p < {rules.alpha:g}."
    )


def gpu_state_block(states: tuple[GpuStateSummary, GpuStateSummary]) -> list[str]:
    base, head = states
    lines = ["**GPU state**", "", f"- base: {cell(base.describe())}", f"- head: {cell(head.describe())}"]
    lines += [f"- {cell(sentence)}" for sentence in compare_gpu_states(base, head)]
    return [*lines, ""]


def host_state_block(states: tuple[HostStateSummary, HostStateSummary]) -> list[str]:
    """Both sides' host readings and what differs; nothing where neither side read its host."""
    base, head = states
    if not base.rounds and not head.rounds:
        return []
    lines = ["**Host**", "", f"- base: {cell(base.describe())}", f"- head: {cell(head.describe())}"]
    lines += [f"- {cell(sentence)}" for sentence in compare_host_states(base, head)]
    return [*lines, ""]


def quality_block(lines: Sequence[str]) -> list[str]:
    """``reports.quality.budget_lines``: its title line, then its items as a list."""
    if not lines:
        return []
    title, *items = lines
    return ["**Image quality**", "", cell(title), "", *(f"- {cell(item.removeprefix('- '))}" for item in items), ""]


def kernel_rows(changes: Sequence[KernelChange]) -> list[str]:
    lines = ["| kernel group | launches/image base → head | µs/image base → head | change |", "|---|---:|---:|---|"]
    for change in changes:
        what = change_wording(change, "µs")
        lines.append(
            f"| {code(change.group)} | {change.base_count:g} → {change.new_count:g} "
            f"| {change.base_us:.1f} → {change.new_us:.1f} | {what} |"
        )
    return lines


def details_section(
    variant: str, base: ResultSet, new: ResultSet, comparisons: Sequence[MetricComparison], top: int
) -> str:
    """One flagged variant: what flagged it, and the kernel groups that changed (or why there is no diff)."""
    reasons = [
        f"{item.metric} {item.verdict}" for item in comparisons if item.variant == variant and item.verdict in MOVED
    ]
    reasons += [f"{item.verdict}" for item in comparisons if item.variant == variant and item.metric == "-"]
    summary = f"<code>{html.escape(variant)}</code>: {html.escape(', '.join(dict.fromkeys(reasons)) or 'flagged')}"
    base_table, new_table = kernel_table_of(base.variant(variant)), kernel_table_of(new.variant(variant))
    if not base_table or not new_table:
        body = ["No kernel tables on both sides to diff (a CPU run, a failed variant or no profiled pass)."]
    else:
        changes = kernel_diff(base_table, new_table, 1, 1, top=top)
        body = kernel_rows(changes) if changes else ["No kernel group changed its launches or time per image."]
    return "\n".join(["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>", ""])


def comparison_markdown(
    base: ResultSet,
    new: ResultSet,
    comparisons: Sequence[MetricComparison],
    rules: Rules | None = None,
    gpu_states: tuple[GpuStateSummary, GpuStateSummary] | None = None,
    host_states: tuple[HostStateSummary, HostStateSummary] | None = None,
    notes: Sequence[str] = (),
    quality_lines: Sequence[str] = (),
    over_budget: Sequence[str] = (),
    undecided: Sequence[str] = (),
    title: str = "Performance comparison",
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    top_kernels: int = KERNEL_ROWS,
) -> str:
    """The comparison as markdown of at most ``max_bytes`` UTF-8 bytes; ``notes`` are sentences shown under the verdict.

    ``gpu_states`` are the two sides' summaries (``gpu_state.merge`` of each side's runs), ``host_states`` their
    hosts' (``host_state.merge``);
    ``quality_lines`` the head's image quality (``reports.quality.budget_lines``) and ``over_budget`` the
    variants it found over the budget, named in the verdict line, as are the ``undecided`` signals.
    """
    chosen = rules or Rules()
    parts = [f"### {cell(title)}", "", verdict_line(comparisons, over_budget, undecided), "", rules_line(chosen), ""]
    parts += [f"- {cell(note)}" for note in notes] + ([""] if notes else [])
    if gpu_states is not None:
        parts += gpu_state_block(gpu_states)
    if host_states is not None:
        parts += host_state_block(host_states)
    parts += quality_block(quality_lines)
    text = "\n".join(parts) + "\n"
    ordered = sorted(comparisons, key=importance)
    table = ["| variant | signal | base | head | ratio head/base (95% CI) | verdict |", "|---|---|---:|---:|---|---|"]
    budget = max_bytes - FOOTER_BYTES - size(text)
    shown = 0
    for item in ordered:
        line = row(item, base, new, chosen)
        if shown >= max_rows or size("\n".join([*table, line])) + 1 > budget:
            break
        table.append(line)
        shown += 1
    text += "\n".join(table) + "\n"
    if any(item.metric == "wall_ratio" for item in ordered[:shown]):
        text += f"\n{WALL_RATIO_NOTE}\n"
    left_out = ordered[shown:]
    if left_out:
        verdicts = ", ".join(f"{count} {verdict}" for verdict, count in count_verdicts(left_out))
        text += f"\n_{len(left_out)} more rows ({verdicts}) left out to fit; `pytest-sdxl compare` prints them all._\n"
    flagged = flagged_variants(comparisons)
    sections_left_out = 0
    if flagged:
        text += "\n#### Kernels of the flagged variants\n\n"
    for variant in flagged:
        section = details_section(variant, base, new, comparisons, top_kernels)
        if size(text) + size(section) + FOOTER_BYTES // 2 > max_bytes:
            sections_left_out += 1
            continue
        text += section
    if sections_left_out:
        text += f"\n_The kernel diffs of {sections_left_out} flagged variants left out to fit._\n"
    return text


def count_verdicts(items: Sequence[MetricComparison]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return sorted(counts.items(), key=lambda pair: -pair[1])
