"""The quality budget's options: ``compare`` gates on them, ``tune`` rejects a candidate under them.

Each limit applies to every variant whose images were compared with the baseline's; a lossy variant
on random weights is not judged (``analysis.quality.QualityBudget.check`` says why). The parsers are
``analysis.quality.parse_limit``'s, imported when an option is given, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_sdxl.analysis.quality import QualityBudget

RANDOM_WEIGHTS_HELP = "lossy variants on random weights are not held to it"


def limit_argument(option: str) -> Callable[[str], float]:
    """An argparse type for one budget option: what ``parse_limit`` refuses becomes a usage error."""

    def parsed(text: str) -> float:
        from pytest_sdxl.analysis.quality import parse_limit

        try:
            return parse_limit(option, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parsed


def add_quality_budget_options(parser: argparse.ArgumentParser, min_psnr: float | None = None) -> None:
    """--min-psnr (default ``min_psnr``: none unless given), --min-ssim and --max-lpips."""
    default = "none" if min_psnr is None else f"{min_psnr:g}"
    parser.add_argument(
        "--min-psnr",
        type=limit_argument("--min-psnr"),
        default=min_psnr,
        metavar="DB",
        help=f"Least PSNR against the baseline's images, in dB; {RANDOM_WEIGHTS_HELP} (default: {default})",
    )
    parser.add_argument(
        "--min-ssim",
        type=limit_argument("--min-ssim"),
        default=None,
        metavar="SSIM",
        help=f"Least mean SSIM against the baseline's images, up to 1; {RANDOM_WEIGHTS_HELP} (default: none)",
    )
    parser.add_argument(
        "--max-lpips",
        type=limit_argument("--max-lpips"),
        default=None,
        metavar="LPIPS",
        help="Largest LPIPS against the baseline's images, from 0; needs the LPIPS weights on disk where the "
        f"images were measured (--lpips-weights), else it is not checked; {RANDOM_WEIGHTS_HELP} (default: none)",
    )


def budget_from(arguments: argparse.Namespace) -> QualityBudget:
    from pytest_sdxl.analysis.quality import QualityBudget

    return QualityBudget(min_psnr=arguments.min_psnr, min_ssim=arguments.min_ssim, max_lpips=arguments.max_lpips)
