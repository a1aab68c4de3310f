"""The records a results file holds: every run of every variant, and what the GPU did in each run.

``VariantRecord`` -> ``RunRecord`` -> ``DeviceSignals``: the measurement core fills them (``measure.records``),
``results.schema`` stores them in its versioned document and reads them back, and the analysis and reports read
their samples (``VariantRecord.samples``, ``VariantRecord.run_samples``). They are apart from the schema so that a
run's fields and samples read without the document's versions, JSON encoding and files; the schema imports them,
never the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pytest_sdxl.machine.gpu_state import GpuStateSummary
from pytest_sdxl.machine.host_state import HostStateSummary

# The per-image stage keys that add up to one generation; reports and charts stack these.
STAGE_KEYS = ("text_encode_ms", "unet_ms", "vae_decode_ms", "other_ms")
METRICS = ("total_s", "load_s", "init_gen_s", "avg_gen_s")


@dataclass
class DeviceSignals:
    """What the GPU itself did during one run's untimed profiled pass (never a timed pass).

    Per image: ``kernel_ms`` and ``kernels`` hold one value per profiled call (kernel time summed
    over the call's CUDA kernels, and how many kernels it launched); ``stage_kernel_ms`` splits the
    kernel time by stage; ``flops`` counts the matrix FLOPs of one image; ``kernel_table`` maps a
    kernel group to [launches per image, microseconds per image]. Where kernels cannot be seen (a
    CPU), ``not_applicable`` says why and the kernel fields stay empty instead of holding zeros.
    """

    kernel_ms: list[float] = field(default_factory=list)
    kernels: list[float] = field(default_factory=list)
    stage_kernel_ms: dict[str, float] = field(default_factory=dict)
    flops: float | None = None
    kernel_table: dict[str, list[float]] = field(default_factory=dict)
    not_applicable: str = ""
    # Matrix FLOPs of one image by stage (text_encode, unet, vae_decode; other when any falls outside).
    stage_flops: dict[str, float] = field(default_factory=dict)
    # The card's measured matrix peak (measure.matrix_peak) in the run's dtype, or why there is none.
    matrix_peak_tflops: float | None = None
    matrix_peak_not_applicable: str = ""

    @property
    def has_kernels(self) -> bool:
        return bool(self.kernel_ms)


@dataclass
class RunRecord:
    """One run of the reference protocol: a fresh load, a first generation, then the timed ones.

    Times in seconds; ``gen_s`` holds seconds per image of each timed generation after the first
    (a batch call gives one sample: its time divided by its images). ``stages`` holds milliseconds
    per image: ``text_encode_ms + unet_ms + vae_decode_ms + other_ms == total_ms`` (``unet_ms`` is
    every UNet step of one image; ``unet_step_ms`` is one UNet call).
    """

    run: int
    load_s: float
    init_gen_s: float
    gen_s: list[float]
    avg_gen_s: float
    median_gen_s: float
    total_s: float
    stages: dict[str, float] = field(default_factory=dict)
    peak_gpu_mem_gb: float | None = None
    psnr_db: float | None = None
    # Untimed calls made before the timed ones, so every shape they use was seen (and captured) first.
    warmup_calls: int = 0
    device: DeviceSignals | None = None
    # The side-by-side reference (measure.core.side_by_side_reference) and its per-image samples,
    # timed in rounds alternating with this run's own: their ratio cancels what the machine does.
    reference: str = ""
    reference_gen_s: list[float] = field(default_factory=list)
    # [variant minimum, reference minimum] of each block of consecutive rounds in this run
    # (measure.records.WALL_BLOCK_SAMPLES): the units of the host-adjusted wall comparison.
    wall_blocks: list[list[float]] = field(default_factory=list)
    # Joules the GPU drew per image over this run's own timed calls (measure.energy), or why there is no figure.
    energy_j_per_image: float | None = None
    energy_not_applicable: str = ""
    # What this run's first generation found in the compile cache (machine.compile_cache.CacheUse.describe): the
    # protocol compiles afresh in every run, so its runs can go from cold to warm; "" where nothing compiled.
    compile_cache: str = ""
    # Mean SSIM and LPIPS of the run's images against the baseline's, beside ``psnr_db`` (analysis.quality);
    # None where not compared. LPIPS only from local weights: where there is none, lpips_not_applicable says why.
    ssim: float | None = None
    lpips: float | None = None
    lpips_not_applicable: str = ""
    # The GPU's clocks, temperature, power and throttle reasons read after each timed round of this run
    # (machine.gpu_state), or why there are none; None where not recorded (files written before them).
    gpu_state: GpuStateSummary | None = None
    # How much of this run's timed rounds the host kept the timing thread from a CPU (run-queue wait,
    # preemptions, steal: machine.host_state); None where not recorded (files written before them).
    host_state: HostStateSummary | None = None
    # Each timed call's wait for a CPU (run-queue wait of the timing thread, seconds per image), beside ``gen_s``
    # and ``reference_gen_s``; empty where the host gives no such counter, or in files written before them.
    gen_waited_s: list[float] = field(default_factory=list)
    reference_waited_s: list[float] = field(default_factory=list)
    # The operating-system process that measured this run (machine.process_identity: random, unique across
    # machines and time). Runs of one process share its level, so ``compare`` takes processes, not runs, as
    # its independent samples where a side holds several. "" in files written before it: a results file's
    # variant was measured in one process, and ``results.merge`` names each pooled session's runs after it.
    process: str = ""
    # Seconds from the measuring process's start (interpreter start-up and imports included) to its first
    # timed round (pipelines.process_age); None in a run that was not the process's first, or off Linux.
    process_start_s: float | None = None

    @property
    def wall_ratio(self) -> float:
        """min(gen_s) / min(reference_gen_s): this run's wall time over its reference's; NaN without one."""
        if not self.gen_s or not self.reference_gen_s:
            return math.nan
        return min(self.gen_s) / min(self.reference_gen_s)

    def metric(self, name: str) -> float:
        """A metric by its name in the tables (``total_s``, ``load_s``, ``init_gen_s``, ``avg_gen_s``, a stage key)."""
        if name in STAGE_KEYS or name in self.stages:
            return float(self.stages.get(name, math.nan))
        value = getattr(self, name)
        return math.nan if value is None else float(value)


@dataclass
class VariantRecord:
    """Every run of one variant (a composition id), or why it was skipped or failed."""

    variant: str
    kind: str
    status: str = "ok"
    reason: str = ""
    runs: list[RunRecord] = field(default_factory=list)
    # What a reader must know to read the figures (no effect at batch 1, cache hits on repeated prompts).
    note: str = ""
    # For a compiled variant, what its first generation found in the persistent compile cache
    # (machine.compile_cache.CacheUse.describe: cold, warm or partly warm); "" where nothing compiled.
    compile_cache: str = ""
    # Seconds the harness spent on the variant, every run from build to profiled pass: its share of a
    # matrix's wall time, added up the same way over lanes and over resumed runs. None where not timed.
    measure_s: float | None = None
    # Seconds of timed rounds the variant was given, all its runs together, under the gate and full profiles:
    # its variant budget, or less, its share of a session budget. None with fixed rounds (the reference
    # profile) and in files written before it.
    budget_s: float | None = None
    # Why the variant has fewer runs than asked (PARTIAL_REASONS: "running" while it is measured, "interrupted"):
    # results are saved after every run, so a stopped session keeps the runs it finished. "" when it ran them all.
    partial: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.runs)

    def samples(self, metric: str) -> list[float]:
        """The raw samples of a metric over all runs: every ``gen_s`` for ``gen_s``, one per run otherwise."""
        if metric == "gen_s":
            return [sample for run in self.runs for sample in run.gen_s]
        values = [run.metric(metric) for run in self.runs]
        return [value for value in values if not math.isnan(value)]

    def run_samples(self, metric: str) -> list[list[float]]:
        """The samples of a metric run by run: the unit a run-aware comparison treats as independent.

        ``gen_s`` gives each run's timed generations; ``kernel_ms`` and ``kernels`` each run's profiled
        calls; any other metric one value per run. Runs without the metric are left out.

        ``wall_pair`` is the exception: one [variant minimum, reference minimum] per block of rounds
        (``RunRecord.wall_blocks``; a whole run where a file predates them), since the host-adjusted
        wall comparison takes blocks, not runs, as its units (``host_adjusted``).
        """
        if metric == "wall_pair":
            return [list(pair) for run in self.runs for pair in run_wall_blocks(run)]
        runs = [run_values(run, metric) for run in self.runs]
        return [values for values in runs if values]

    def run_processes(self, metric: str) -> list[str]:
        """The process of each entry ``run_samples(metric)`` gives, in the same order (a block's is its run's)."""
        if metric == "wall_pair":
            return [run.process for run in self.runs for _ in run_wall_blocks(run)]
        return [run.process for run in self.runs if run_values(run, metric)]

    def device_signals(self) -> list[DeviceSignals]:
        return [run.device for run in self.runs if run.device is not None]


def run_values(run: RunRecord, metric: str) -> list[float]:
    """One run's samples of a metric (``VariantRecord.run_samples``), NaN left out."""
    if metric == "gen_s":
        values = list(run.gen_s)
    elif metric in ("kernel_ms", "kernels"):
        values = list(getattr(run.device, metric)) if run.device is not None else []
    else:
        values = [run.metric(metric)]
    return [value for value in values if not math.isnan(value)]


def run_wall_blocks(run: RunRecord) -> list[list[float]]:
    """The run's wall blocks; a file written before blocks existed gives its whole run as one."""
    if run.wall_blocks:
        return run.wall_blocks
    return [[min(run.gen_s), min(run.reference_gen_s)]] if run.gen_s and run.reference_gen_s else []
