"""The table ``pytest-sdxl variants`` prints: every variant, its kind, needs, conflicts and status here."""

from __future__ import annotations

from pytest_sdxl.variants.registry import REGISTRY, Variant, compose


def requirement_text(variant: Variant) -> str:
    needs = []
    if variant.needs_cuda:
        needs.append("CUDA GPU")
    needs.extend(f"package {package}" for package in variant.needs_packages)
    if variant.needs_half_precision:
        needs.append("float16/bfloat16")
    return ", ".join(needs) or "-"


def variant_table(device: str = "auto", dtype: str = "auto") -> str:
    """A plain-text table; the last column says 'yes' or why the variant cannot run here."""
    from pytest_sdxl.machine.devices import resolve_device, resolve_dtype

    resolved_device = resolve_device(device)
    resolved_dtype = str(resolve_dtype(dtype, resolved_device)).removeprefix("torch.")
    header = (
        "variant",
        "kind",
        "origin",
        "needs",
        "conflicts with",
        f"runs here ({resolved_device}, {resolved_dtype})",
    )
    rows = [header]
    for variant in REGISTRY.values():
        unmet = variant.unmet_requirements(resolved_device.type, resolved_dtype)
        rows.append(
            (
                variant.name,
                variant.kind,
                variant.origin,
                requirement_text(variant),
                ", ".join(conflicting_names(variant)) or "-",
                "yes" if not unmet else "no: " + "; ".join(unmet),
            )
        )
    widths = [max(len(row[column]) for row in rows[:]) for column in range(len(header) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in [*widths, len(row[-1])]))
    lines.append("")
    lines.extend(f"Note: {note}." for note in no_effect_notes())
    lines.append("Compose variants with '+', e.g. tiny_vae+compile_unet+cached_embeds; list them with ','.")
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
