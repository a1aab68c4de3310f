"""What ``pytest-sdxl variants`` prints: each variant's name, kind, whether it runs here and what it does.

The listing fits ``layout.WIDTH`` columns: a cell too long for its column (a plugin's long summary,
several unmet needs) continues on the next line in the same column. ``verbose`` adds, under each
variant, how it works, what it needs and what it cannot be combined with, where it has any.
"""

from __future__ import annotations

import textwrap

from pytest_sdxl.reports.layout import WIDTH, wrapped
from pytest_sdxl.variants.registry import REGISTRY, Variant, compose

GAP = "  "
# The reason a variant cannot run is shortened to what is missing; more than this wraps.
RUNS_HERE_WIDTH = 28


def requirement_text(variant: Variant) -> str:
    needs = []
    if variant.needs_cuda:
        needs.append("CUDA GPU")
    if variant.needs_compute_capability is not None:
        needs.append("compute capability " + ".".join(map(str, variant.needs_compute_capability)) + " or more")
    needs.extend(f"package {package}" for package in variant.needs_packages)
    if variant.needs_half_precision:
        needs.append("float16/bfloat16")
    return ", ".join(needs)


def what_it_does(variant: Variant) -> str:
    """The one-line summary; a plugin's variant without one shows its details, else '-'."""
    return variant.summary or variant.details or "-"


def runs_here(variant: Variant, device_type: str, dtype_name: str) -> str:
    unmet = variant.unmet_needs(device_type, dtype_name)
    return "yes" if not unmet else "no: " + "; ".join(need.short for need in unmet)


def cell_lines(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def aligned_rows(rows: list[tuple[str, ...]], widths: list[int]) -> list[str]:
    """Rows of cells in columns of these widths; a longer cell continues on the following lines."""
    lines = []
    for row in rows:
        cells = [cell_lines(cell, width) for cell, width in zip(row, widths, strict=True)]
        for index in range(max(len(cell) for cell in cells)):
            parts = [
                (cell[index] if index < len(cell) else "").ljust(width)
                for cell, width in zip(cells, widths, strict=True)
            ]
            lines.append(GAP.join(parts).rstrip())
    return lines


def details_lines(variant: Variant) -> list[str]:
    """The verbose form's lines under a variant: how it works, needs and conflicts, each where present."""
    found = [
        ("how", variant.details),
        ("needs", requirement_text(variant)),
        ("conflicts with", ", ".join(conflicting_names(variant))),
    ]
    return wrapped([f"    {label}: {text}" for label, text in found if text])


def variant_table(device: str = "auto", dtype: str = "auto", verbose: bool = False) -> str:
    """The listing: 'yes' or what is missing for each variant to run on this device and precision."""
    from pytest_sdxl.machine.devices import resolve_device, resolve_dtype

    resolved_device = resolve_device(device)
    resolved_dtype = str(resolve_dtype(dtype, resolved_device)).removeprefix("torch.")
    header = ("variant", "kind", f"runs here ({resolved_device}, {resolved_dtype})", "what it does")
    rows = [
        (variant.name, variant.kind, runs_here(variant, resolved_device.type, resolved_dtype), what_it_does(variant))
        for variant in REGISTRY.values()
    ]
    name_width = max(len(row[0]) for row in [header, *rows])
    kind_width = max(len(row[1]) for row in [header, *rows])
    runs_width = max(len(header[2]), min(RUNS_HERE_WIDTH, max(len(row[2]) for row in rows)))
    summary_width = WIDTH - name_width - kind_width - runs_width - 3 * len(GAP)
    widths = [name_width, kind_width, runs_width, summary_width]
    lines = [GAP.join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    lines.append(GAP.join("-" * width for width in widths[:3]) + GAP + "-" * min(summary_width, 60))
    for variant, row in zip(REGISTRY.values(), rows, strict=True):
        lines += aligned_rows([row], widths)
        if verbose:
            lines += details_lines(variant)
    lines.append("")
    lines += wrapped([f"Note: {note}." for note in no_effect_notes()])
    lines.append("Compose variants with '+', e.g. tiny_vae+compile_unet+cached_embeds; list them with ','.")
    if not verbose:
        lines.append("Each variant's details, needs and conflicts: pytest-sdxl variants --verbose")
    return "\n".join(lines)


def no_effect_notes() -> list[str]:
    """Why a variant on its own changes nothing, for each variant that needs a partner."""
    notes = (compose([name]).no_effect_reason() for name in REGISTRY)
    return [note for note in notes if note]


def conflicting_names(variant: Variant) -> list[str]:
    """Conflicts are declared on one side; list them on both."""
    names = set(variant.conflicts)
    names.update(other.name for other in REGISTRY.values() if variant.name in other.conflicts)
    return [name for name in REGISTRY if name in names]
