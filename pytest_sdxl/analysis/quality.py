"""Image quality beside speed: a variant's images against the baseline's, and the budget they must meet.

SSIM and PSNR always, computed by torchmetrics (``structural_similarity_index_measure`` with its
11-pixel Gaussian window, ``peak_signal_noise_ratio`` over the whole set, so one bad image weighs in
as its pixels do). LPIPS (AlexNet features, the LPIPS authors' recommendation for a forward metric)
only where its weights are on disk: torchmetrics ships LPIPS's own linear layers, but the AlexNet
backbone is torchvision's ImageNet checkpoint, which pytest-sdxl never downloads. Without torchvision
or the checkpoint the LPIPS figure is n/a with the reason and how to provide them.

Images are what ``pipelines.images`` hands out: float arrays in [0, 1] of shape (N, H, W, C) or
(H, W, C), or uint8 arrays in 0-255. torch and torchmetrics are imported only when a figure is
computed, so reading or checking stored scores stays cheap.

A budget (``--min-psnr``, ``--min-ssim``, ``--max-lpips``) applies to every variant whose images
are compared. On random weights (``random:`` sources) a lossy variant's images are noise against
noise, so the check says its quality is not meaningful instead of failing it; an exact variant
promises the baseline's images whatever the weights, so it is judged.

A results file keeps each run's scores (``RunRecord.psnr_db``, ``ssim``, ``lpips``); a variant's are
its worst run's (``variant_scores``), and ``budget_findings`` judges every variant of a result set.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, decode_float, encode_float

if TYPE_CHECKING:
    from torch import Tensor

LPIPS_WEIGHTS_ENV = "PYTEST_SDXL_LPIPS_WEIGHTS"
LPIPS_WEIGHTS_OPTION = "--lpips-weights"
LPIPS_HOW_TO = (
    "LPIPS needs torchvision and its AlexNet ImageNet checkpoint on disk (pytest-sdxl never downloads it): "
    'on a machine with network access, run python -c "import torchvision; torchvision.models.alexnet(weights='
    "'IMAGENET1K_V1')\" once, then give the checkpoint (in ~/.cache/torch/hub/checkpoints) or its folder with "
    f"{LPIPS_WEIGHTS_OPTION} PATH or {LPIPS_WEIGHTS_ENV}=PATH"
)
RANDOM_WEIGHTS_NOTE = "lossy on random weights: its images are noise against noise, so their quality is not meaningful"
# torchmetrics' SSIM window: an image must be at least this wide and high.
SSIM_WINDOW = 11


@dataclass(frozen=True)
class QualityScores:
    """A variant's images against the baseline's: PSNR (inf when identical), mean SSIM, LPIPS or why not."""

    psnr_db: float
    ssim: float
    images: int
    lpips: float | None = None
    lpips_not_applicable: str = ""

    def describe(self, lpips_reason: bool = True) -> str:
        """'PSNR 27.1 dB, SSIM 0.9012, LPIPS n/a (why) over 4 images'; the count only where known, the why if asked."""
        psnr = "identical" if self.psnr_db == math.inf else f"PSNR {self.psnr_db:.1f} dB"
        ssim = "SSIM n/a" if math.isnan(self.ssim) else f"SSIM {self.ssim:.4f}"
        if self.lpips is not None:
            lpips = f"LPIPS {self.lpips:.3f}"
        else:
            lpips = f"LPIPS n/a ({self.lpips_not_applicable})" if lpips_reason else "LPIPS n/a"
        return f"{psnr}, {ssim}, {lpips}" + (f" over {self.images} images" if self.images else "")

    def as_dict(self) -> dict[str, Any]:
        """For results.json: an infinite PSNR is written as the string "inf", as the schema does."""
        return {
            "psnr_db": encode_float(self.psnr_db),
            "ssim": self.ssim,
            "images": self.images,
            "lpips": self.lpips,
            "lpips_not_applicable": self.lpips_not_applicable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityScores:
        return cls(
            psnr_db=float(decode_float(data["psnr_db"])),
            ssim=float(data["ssim"]),
            images=int(data["images"]),
            lpips=None if data.get("lpips") is None else float(data["lpips"]),
            lpips_not_applicable=str(data.get("lpips_not_applicable", "")),
        )


def image_batch(images: Any) -> np.ndarray:
    """Images as float64 of shape (N, H, W, C) in [0, 1]; ValueError saying what is accepted otherwise."""
    if isinstance(images, (list, tuple)):
        images = np.stack([np.asarray(image) for image in images])
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"images of shape {array.shape} not accepted; give (N, H, W, C) or (H, W, C)")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"images of dtype {array.dtype} not accepted; give uint8 in 0-255 or floats in [0, 1]")
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
        raise ValueError("float images must hold finite values in [0, 1] (uint8 images: 0-255)")
    return array


def image_pair(reference: Any, candidate: Any) -> tuple[Any, Any]:
    """Both sets as float64 torch tensors of shape (N, C, H, W), checked to be comparable."""
    import torch

    first, second = image_batch(reference), image_batch(candidate)
    if first.shape != second.shape:
        raise ValueError(f"cannot compare images of shapes {first.shape} and {second.shape}")
    return torch.from_numpy(channels_first(first)), torch.from_numpy(channels_first(second))


def channels_first(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def three_channels(images: Any) -> Any:
    """RGB for LPIPS's backbone: an alpha channel dropped, a grey channel repeated; float32 as its weights are."""
    images = images.float()
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images[:, :3]


def psnr_db(reference: Any, candidate: Any) -> float:
    """PSNR in dB of the whole candidate set against the reference set; infinity when identical."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    first, second = image_pair(reference, candidate)
    return float(peak_signal_noise_ratio(second, first, data_range=1.0))


def ssim(reference: Any, candidate: Any) -> float:
    """Mean SSIM of the candidate images against the reference images; 1 when identical."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    first, second = image_pair(reference, candidate)
    if min(first.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(first.shape[-2:])}"
        )
    # One tensor: the full SSIM image is returned only when asked for.
    return float(cast("Tensor", structural_similarity_index_measure(second, first, data_range=1.0)))


def lpips_weights(option: str | os.PathLike[str] | None, environment: Mapping[str, str] = os.environ) -> Path | None:
    """Where the LPIPS backbone was said to be: the option, else the environment variable, else None."""
    chosen = option if option else environment.get(LPIPS_WEIGHTS_ENV)
    return Path(chosen).expanduser() if chosen else None


def lpips_checkpoint(given: Path, file_name: str) -> Path | None:
    """The checkpoint itself, or the file of that name in a folder or in its checkpoints/ (torch's hub folder)."""
    if given.is_file():
        return given
    for candidate in (given / file_name, given / "checkpoints" / file_name):
        if candidate.is_file():
            return candidate
    return None


def lpips(reference: Any, candidate: Any, weights: Path | None) -> tuple[float | None, str]:
    """Mean LPIPS (AlexNet) of the candidate images against the reference, and "", or None and why not."""
    if weights is None:
        return None, f"not measured: {LPIPS_HOW_TO}"
    if importlib.util.find_spec("torchvision") is None:
        return None, f"torchvision is not installed (install the build matching your torch); {LPIPS_HOW_TO}"
    import torch

    # Imported by name: an optional package without type information.
    torchvision = importlib.import_module("torchvision")

    # The file name torchvision looks for in torch's hub folder; read from torchvision, so a renamed
    # checkpoint is looked for under its new name and never fetched.
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    file_name = url.rsplit("/", 1)[-1]
    checkpoint = lpips_checkpoint(weights, file_name)
    if checkpoint is None:
        return None, f"no {file_name} at {weights}; {LPIPS_HOW_TO}"
    from torchmetrics.functional.image import learned_perceptual_image_patch_similarity

    first, second = (three_channels(images) for images in image_pair(reference, candidate))
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="pytest-sdxl-lpips-") as hub:
        # torchvision loads a checkpoint already in <hub>/checkpoints instead of downloading it.
        (Path(hub) / "checkpoints").mkdir()
        (Path(hub) / "checkpoints" / file_name).symlink_to(checkpoint.resolve())
        torch.hub.set_dir(hub)
        try:
            value = learned_perceptual_image_patch_similarity(second, first, net_type="alex", normalize=True)
        finally:
            torch.hub.set_dir(previous)
    return float(value), ""


def measure_quality(reference: Any, candidate: Any, lpips_weights_path: Path | None = None) -> QualityScores:
    """PSNR, SSIM and (where its weights are given) LPIPS of one variant's images against the baseline's.

    Images smaller than SSIM's window have no SSIM (NaN, which a budget check says it did not judge).
    """
    value, why_not = lpips(reference, candidate, lpips_weights_path)
    shape = image_batch(reference).shape
    return QualityScores(
        psnr_db=psnr_db(reference, candidate),
        ssim=math.nan if min(shape[1:3]) < SSIM_WINDOW else ssim(reference, candidate),
        images=shape[0],
        lpips=value,
        lpips_not_applicable=why_not,
    )


@dataclass(frozen=True)
class BudgetCheck:
    """What a budget found: each violated limit as a sentence, and what was not judged and why."""

    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class QualityBudget:
    """The least quality a variant's images may have against the baseline's; None leaves a figure free."""

    min_psnr: float | None = None
    min_ssim: float | None = None
    max_lpips: float | None = None

    @property
    def empty(self) -> bool:
        return self.min_psnr is None and self.min_ssim is None and self.max_lpips is None

    def describe(self) -> str:
        """'PSNR >= 30 dB, SSIM >= 0.95', or 'none' when no limit is set."""
        limits = [
            f"{label} {sign} {value:g}{unit}"
            for label, sign, value, unit in (
                ("PSNR", ">=", self.min_psnr, " dB"),
                ("SSIM", ">=", self.min_ssim, ""),
                ("LPIPS", "<=", self.max_lpips, ""),
            )
            if value is not None
        ]
        return ", ".join(limits) or "none"

    def check(self, scores: QualityScores | None, kind: str = "lossy", random_weights: bool = False) -> BudgetCheck:
        """The limits ``scores`` break; a lossy variant on random weights is not judged, and the check says so."""
        if self.empty:
            return BudgetCheck()
        if kind == "lossy" and random_weights:
            return BudgetCheck(notes=(f"{RANDOM_WEIGHTS_NOTE}; its quality budget is not checked",))
        if scores is None:
            return BudgetCheck(notes=("images not compared with the baseline's; the quality budget is not checked",))
        violations = []
        if self.min_psnr is not None and scores.psnr_db < self.min_psnr:
            violations.append(f"PSNR {scores.psnr_db:.1f} dB is below the {self.min_psnr:g} dB floor (--min-psnr)")
        if self.min_ssim is not None and scores.ssim < self.min_ssim:
            violations.append(f"SSIM {scores.ssim:.4f} is below the {self.min_ssim:g} floor (--min-ssim)")
        notes = []
        if self.min_ssim is not None and math.isnan(scores.ssim):
            notes.append(
                f"--min-ssim not checked: no SSIM (not measured, or images under {SSIM_WINDOW}x{SSIM_WINDOW} pixels)"
            )
        if self.max_lpips is not None:
            if scores.lpips is None:
                notes.append(f"--max-lpips not checked: LPIPS n/a ({scores.lpips_not_applicable})")
            elif scores.lpips > self.max_lpips:
                violations.append(f"LPIPS {scores.lpips:.3f} is above the {self.max_lpips:g} ceiling (--max-lpips)")
        return BudgetCheck(tuple(violations), tuple(notes))


def parse_limit(option: str, text: str) -> float:
    """A budget option's value: --min-psnr in dB, --min-ssim up to 1, --max-lpips from 0; says what is accepted."""
    accepted = {
        "--min-psnr": ("decibels, e.g. 30", lambda value: value >= 0),
        "--min-ssim": ("a similarity up to 1, e.g. 0.95", lambda value: -1 <= value <= 1),
        "--max-lpips": ("a distance from 0, e.g. 0.05", lambda value: value >= 0),
    }
    if option not in accepted:
        raise ValueError(f"no quality budget option {option!r}; the options are {', '.join(accepted)}")
    description, valid = accepted[option]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not valid(value):
        raise ValueError(f"{option} {text!r} is not accepted; give {description}")
    return value


def run_scores(run: RunRecord) -> QualityScores | None:
    """A run's stored scores, or None where its images were not compared (or the file predates SSIM)."""
    if run.psnr_db is None or run.ssim is None:
        return None
    return QualityScores(run.psnr_db, run.ssim, 0, run.lpips, run.lpips_not_applicable)


def variant_scores(record: VariantRecord) -> QualityScores | None:
    """The variant's worst run: lowest PSNR and SSIM, highest LPIPS (its reason kept where no run has one)."""
    scores = [found for run in record.runs if (found := run_scores(run)) is not None]
    if not scores:
        return None
    measured = [item.lpips for item in scores if item.lpips is not None]
    ssims = [item.ssim for item in scores if not math.isnan(item.ssim)]
    return QualityScores(
        psnr_db=min(item.psnr_db for item in scores),
        ssim=min(ssims) if ssims else math.nan,
        images=0,
        lpips=max(measured) if measured else None,
        lpips_not_applicable="" if measured else scores[-1].lpips_not_applicable,
    )


def random_weights(settings: Mapping[str, Any], variant: str) -> bool:
    """Whether a variant ran on random weights: a ``random:`` model, or its own replacement VAE set to random."""
    from pytest_sdxl.pipelines.sources import RANDOM_PREFIX, RANDOM_VAE

    if str(settings.get("model", "")).startswith(RANDOM_PREFIX):
        return True
    names = variant.split("+")
    return any(name in names and settings.get(name) == RANDOM_VAE for name in ("tiny_vae", "fp16_vae"))


@dataclass(frozen=True)
class VariantQuality:
    """One variant's scores against its own baseline's images, and what the budget found."""

    variant: str
    kind: str
    scores: QualityScores | None
    check: BudgetCheck
    random_weights: bool

    @property
    def not_meaningful(self) -> bool:
        return self.kind == "lossy" and self.random_weights


def budget_findings(result_set: ResultSet, budget: QualityBudget) -> list[VariantQuality]:
    """Every measured variant but the baseline (the reference itself), its worst run judged by the budget."""
    found = []
    for record in result_set.variants:
        if not record.ok or record.variant == "baseline":
            continue
        scores = variant_scores(record)
        random = random_weights(result_set.settings, record.variant)
        check = budget.check(scores, record.kind, random)
        found.append(VariantQuality(record.variant, record.kind, scores, check, random))
    return found


def over_budget(findings: Sequence[VariantQuality]) -> list[VariantQuality]:
    return [item for item in findings if not item.check.passed]
