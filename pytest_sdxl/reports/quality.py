"""Image quality in the reports: each variant's worst run against the baseline's images, and what a budget found.

The summary table shows SSIM and LPIPS beside PSNR; ``compare`` lists the head's lossy variants
(and any variant over the budget) with both sides' scores before its verdict. LPIPS's reason for
being n/a (no local weights) is said once, not in every cell or line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_sdxl.analysis.quality import (
    LPIPS_HOW_TO,
    LPIPS_WEIGHTS_ENV,
    LPIPS_WEIGHTS_OPTION,
    RANDOM_WEIGHTS_NOTE,
    QualityBudget,
    QualityScores,
    VariantQuality,
    random_weights,
    variant_scores,
)
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

OVER_BUDGET = "OVER BUDGET"


def ssim_cell(scores: QualityScores | None) -> str:
    if scores is None or math.isnan(scores.ssim):
        return "-"
    return f"{scores.ssim:.4f}"


def lpips_cell(scores: QualityScores | None) -> str:
    if scores is None:
        return "-"
    return "n/a" if scores.lpips is None else f"{scores.lpips:.3f}"


def quality_cells(record: VariantRecord) -> list[str]:
    """SSIM and LPIPS of the variant's worst run against the baseline's images."""
    scores = variant_scores(record)
    return [ssim_cell(scores), lpips_cell(scores)]


def short_lpips_reason(reason: str) -> str:
    """The reason LPIPS is n/a, its long how-to shortened to the option that gives the weights."""
    if reason == f"not measured: {LPIPS_HOW_TO}":
        return (
            f"no LPIPS weights given ({LPIPS_WEIGHTS_OPTION} PATH or {LPIPS_WEIGHTS_ENV}; "
            "the user guide's method page says how to get them)"
        )
    return reason


def lpips_reasons(result_set: ResultSet) -> list[str]:
    """Why LPIPS is n/a, each reason once, shortened (the baseline, the reference itself, left out)."""
    reasons = [
        short_lpips_reason(scores.lpips_not_applicable)
        for record in result_set.variants
        if record.ok and record.variant != "baseline" and (scores := variant_scores(record)) is not None
    ]
    return list(dict.fromkeys(reason for reason in reasons if reason))


def random_weights_notes(result_set: ResultSet) -> list[str]:
    """The one line under the summary naming the lossy variants whose scores compare noise with noise."""
    lossy = [
        record.variant
        for record in result_set.variants
        if record.ok and record.kind == "lossy" and random_weights(result_set.settings, record.variant)
    ]
    if not lossy:
        return []
    return [f"- PSNR, SSIM and LPIPS of {', '.join(lossy)}: {RANDOM_WEIGHTS_NOTE}"]


def side_scores(result_set: ResultSet, variant: str) -> str:
    record = result_set.variant(variant)
    scores = None if record is None else variant_scores(record)
    return "not compared" if scores is None else scores.describe(lpips_reason=False)


def finding_line(item: VariantQuality, budget: QualityBudget, base: ResultSet | None) -> str:
    """'- tiny_vae (lossy): PSNR 27.1 dB, SSIM 0.9012, LPIPS n/a (base: ...); OVER BUDGET: ...'."""
    scores = "not compared" if item.scores is None else item.scores.describe(lpips_reason=False)
    before = "" if base is None else f" (base: {side_scores(base, item.variant)})"
    if item.not_meaningful:
        parts = [RANDOM_WEIGHTS_NOTE]
    elif not item.check.passed:
        parts = [f"{OVER_BUDGET}: {'; '.join(item.check.violations)}", *item.check.notes]
    else:
        parts = ([] if budget.empty else ["within the budget"]) + list(item.check.notes)
    return f"- {item.variant} ({item.kind}): {scores}{before}" + "".join(f"; {part}" for part in parts)


def budget_lines(findings: Sequence[VariantQuality], budget: QualityBudget, base: ResultSet | None = None) -> list[str]:
    """compare's quality block: each lossy variant and each variant over the budget, head (and base) scores.

    Empty where no variant's images were compared.
    """
    if not any(item.scores is not None for item in findings):
        return []
    lines = [f"image quality against each side's baseline images (worst run; budget: {budget.describe()}):"]
    shown = [item for item in findings if item.kind == "lossy" or not item.check.passed]
    lines += [finding_line(item, budget, base) for item in shown]
    exact = [item for item in findings if item.kind != "lossy" and item.check.passed and item.scores is not None]
    if exact and not budget.empty:
        lines.append(f"- {len(exact)} exact variant(s) within the budget")
    missing = [
        short_lpips_reason(item.scores.lpips_not_applicable)
        for item in shown
        if item.scores and item.scores.lpips is None
    ]
    lines += [f"- LPIPS n/a: {reason}" for reason in dict.fromkeys(missing) if reason]
    return lines
