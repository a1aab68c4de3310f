"""mkdocs hook: tables built from the code at build time, so the guide cannot drift from it.

A page asks for a table with a placeholder line such as ``<!-- generated: compare-rules -->``; the
hook replaces it with markdown built from the objects the package itself uses:

- ``compare-rules``: the signals ``compare`` judges (``pytest_sdxl.analysis.comparison.SIGNALS``), each
  rule, default threshold, the share of it past which a change is flagged, and whether it gates;
- ``options``: every setting (``pytest_sdxl.options.OPTIONS``) with its flag, ini key, environment
  variable and default;
- ``builtin-variants``: every built-in variant (``pytest_sdxl.variants.builtin.BUILTIN``) with its kind,
  what it does, what it needs and what it cannot be combined with;
- ``schema-fields``: the fields of each record of a results file (``pytest_sdxl.results.schema`` and
  ``pytest_sdxl.results.records``), with their types and defaults;
- ``variant-fields``: the fields of ``pytest_sdxl.variants.Variant``, with their types and defaults.

An unknown placeholder, or a rule the hook has no wording for, stops the build: a table that would be
wrong is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PLACEHOLDER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# How each comparison rule judges, in words. A new rule in the code must get its wording here.
RULE_WORDING = {
    "exact": "exact: any increase of the median over all runs regresses, a decrease is reported as a change",
    "threshold": "Welch's t on the logarithms of one statistic per run (runs are the units)",
    "host-adjusted": (
        "host-adjusted fit over blocks of rounds: the variant's block minimum at equal reference speed, "
        "Student's t on n − 3 degrees of freedom"
    ),
}
ORIGIN_WORDING = {
    "write-up": "one of the write-up's eight settings",
    "write-up-tried": "tried in the write-up",
    "write-up-untried": "the write-up could not try it",
    "beyond": "beyond the write-up",
    "plugin": "plugin",
}


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def compare_rules() -> str:
    from pytest_sdxl.analysis.comparison import DEFAULT_ALPHA, DEFAULT_GATE, FLAG_SHARE, SIGNALS, Rules

    rules = Rules()
    lines = [
        "| signal | what it is | rule | statistic per unit | default threshold | flagged past | gates by default |",
        "|---|---|---|---|---|---|---|",
    ]
    for signal in SIGNALS:
        if signal.rule not in RULE_WORDING:
            raise ValueError(f"comparison rule {signal.rule!r} of {signal.name} has no wording in {__file__}")
        if signal.rule == "exact":
            statistic, threshold, flagged = "launches per image", "exact", "any increase"
        else:
            if signal.rule == "host-adjusted":
                statistic = "minimum of each block, both sides"
            else:
                statistic = f"{rules.statistic_of(signal.name)} of each run"
            threshold = percent(rules.threshold_of(signal.name))
            flagged = percent(rules.threshold_of(signal.name) * FLAG_SHARE)
        gated = "yes" if signal.name in DEFAULT_GATE else "no: shown only"
        lines.append(
            f"| `{signal.name}` | {cell(signal.description)} | {cell(RULE_WORDING[signal.rule])} | {statistic} "
            f"| {threshold} | {flagged} | {gated} |"
        )
    lines += [
        "",
        f"Significance level: α = {DEFAULT_ALPHA:g} after Holm's adjustment, the gated signals one family and the "
        f"shown-only ones another. A change is flagged once it is significant and its estimate passes "
        f"{FLAG_SHARE:g} of its threshold. Default gate: {', '.join(f'`{name}`' for name in DEFAULT_GATE)}.",
    ]
    return "\n".join(lines)


def options() -> str:
    from pytest_sdxl.options import OPTIONS
    from pytest_sdxl.plugin import PYTEST_MEANING

    lines = [
        "| pytest option | command-line option | ini key | environment variable | default | what it sets |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        default = f"`{option.default}`" if option.default else "none"
        # Where a setting means something else in a pytest session (a run is a block of calls there), say so.
        meaning_under_pytest = f"; {PYTEST_MEANING[option.name]}" if option.name in PYTEST_MEANING else ""
        lines.append(
            f"| `{option.plugin_flag} {option.metavar}` | `{option.flag}` | `{option.ini_key}` "
            f"| `{option.environment_variable}` | {default} | {cell(option.help + meaning_under_pytest)} |"
        )
    return "\n".join(lines)


def needs_of(variant: Any) -> str:
    needs = []
    if variant.needs_cuda:
        needs.append("a CUDA GPU")
    if variant.needs_compute_capability is not None:
        needs.append("compute capability " + ".".join(map(str, variant.needs_compute_capability)) + "+")
    if variant.needs_half_precision:
        needs.append("half precision")
    needs += [f"`{package}`" for package in variant.needs_packages]
    return ", ".join(needs) or "-"


def builtin_variants() -> str:
    from pytest_sdxl.variants.builtin import BUILTIN

    lines = [
        "| variant | kind | what it does | needs | cannot be combined with | warm-up calls | origin |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in BUILTIN:
        summary = variant.description
        if variant.idle_without:
            partners = " or ".join(f"`{name}`" for name in variant.idle_without)
            summary += f"; no effect without {partners} ({variant.idle_because})"
        # A conflict is declared by either side; composing checks both, so the table shows both.
        conflicting = [
            other.name for other in BUILTIN if other.name in variant.conflicts or variant.name in other.conflicts
        ]
        conflicts = ", ".join(f"`{name}`" for name in conflicting) or "-"
        lines.append(
            f"| `{variant.name}` | {variant.kind} | {cell(summary)} | {needs_of(variant)} | {conflicts} "
            f"| {variant.warmup_calls} | {ORIGIN_WORDING[variant.origin]} |"
        )
    return "\n".join(lines)


def default_of(field: Any) -> str:
    import dataclasses

    if callable(field.default):
        return f"`{field.default.__name__}`"
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:
        return f"`{field.default_factory()!r}`" if field.name != "created" else "the time of writing"
    return "required"


def fields_table(record: type) -> list[str]:
    """A dataclass's fields as a markdown table: name, type, default."""
    import dataclasses

    lines = ["| field | type | default |", "|---|---|---|"]
    lines += [
        # Python-Markdown's tables leave pipes inside code spans alone: the type needs no escaping there.
        f"| `{field.name}` | `{field.type}` | {cell(default_of(field))} |"
        for field in dataclasses.fields(record)
    ]
    return lines


def schema_fields() -> str:
    from pytest_sdxl.results import records, schema

    lines: list[str] = []
    for record in (schema.ResultSet, records.VariantRecord, records.RunRecord, records.DeviceSignals):
        lines += [f"**`{record.__name__}`**", "", *fields_table(record), ""]
    return "\n".join(lines)


def variant_fields() -> str:
    from pytest_sdxl.variants import Variant

    return "\n".join(fields_table(Variant))


TABLES: dict[str, Callable[[], str]] = {
    "compare-rules": compare_rules,
    "options": options,
    "builtin-variants": builtin_variants,
    "schema-fields": schema_fields,
    "variant-fields": variant_fields,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"{page.file.src_uri}: unknown generated table {name!r}; known: {', '.join(TABLES)}")
        return TABLES[name]()

    return PLACEHOLDER.sub(table, markdown)
