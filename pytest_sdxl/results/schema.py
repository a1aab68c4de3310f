"""The result schema: one versioned JSON document per measurement, written atomically.

A ``ResultSet`` holds the settings, the machine and every raw sample of every run of every
variant (``VariantRecord`` -> ``RunRecord`` -> ``DeviceSignals``). The record classes live here,
beside the schema that stores them; the measurement core fills them. Version 1 files (before
device signals) are still read: their runs have no device signals. Fields added since within a
version are optional: a file without them reads with their defaults (no energy, no FLOPs per stage,
no matrix peak, no GPU state, no SSIM or LPIPS, not partial), and the reports say "n/a" with the
reason. Blocks derived from a variant's records (results.json's ``serving``) are written beside
them for readers without this package, and ignored when read: the figures are computed again from
the samples. The layer that computes them hands them to ``to_dict``/``save_results``
(``derived``); the schema computes none. Non-finite floats (PSNR of identical images is infinite)
are stored as the strings ``"inf"``/``"-inf"``/``"nan"`` so the file stays strict JSON. Reading checks
each value against its field (``results.validation``): one of another type, at any depth, is a
``ResultsFileError`` naming the file, the value's JSON path and what the field holds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.errors import SdxlError
from pytest_sdxl.machine.gpu_state import GpuStateSummary
from pytest_sdxl.machine.host_state import HostStateSummary
from pytest_sdxl.results.sessions import new_session_id, session_ids_from_node
from pytest_sdxl.results.validation import (
    RECORDED_MACHINE,
    RECORDED_SETTINGS,
    MalformedDocument,
    Node,
    open_block,
    read_json_file,
)

if TYPE_CHECKING:
    from pytest_sdxl.results.settings_fields import RecordedSettings

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SCHEMA_NAME = "pytest-sdxl-results"
# The per-image stage keys that add up to one generation; reports and charts stack these.
STAGE_KEYS = ("text_encode_ms", "unet_ms", "vae_decode_ms", "other_ms")
METRICS = ("total_s", "load_s", "init_gen_s", "avg_gen_s")
STATUSES = ("ok", "skipped", "failed")
# Why a result set is partial: the session was interrupted (SIGINT, pytest.exit), stopped early
# (-x, --maxfail), or was still running when the file was written (what a killed session leaves).
PARTIAL_REASONS = ("interrupted", "stopped", "running")


class ResultsFileError(SdxlError):
    """A results file cannot be read: missing, not JSON, or of another schema or version."""


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


# Blocks derived from one variant's records, by key, written beside them (results.json's "serving").
DerivedBlocks = Callable[[VariantRecord], Mapping[str, Any]]


@dataclass
class ResultSet:
    """One measurement: settings, machine and every variant's records."""

    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    variants: list[VariantRecord] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    # Why the set lacks requested variants, one of PARTIAL_REASONS ("" when complete), and which ones:
    # a session stopped early keeps every variant it finished and names those it never reached.
    partial: str = ""
    not_measured: list[str] = field(default_factory=list)
    # The measuring sessions whose records the set holds: its own session's id, or every joined session's
    # (results.merge), so that no session is pooled twice.
    session_ids: list[str] = field(default_factory=lambda: [new_session_id()])

    def variant(self, variant_id: str) -> VariantRecord | None:
        return next((record for record in self.variants if record.variant == variant_id), None)

    def to_dict(self, derived: DerivedBlocks | None = None) -> dict[str, Any]:
        return to_dict(self, derived)

    @classmethod
    def from_dict(cls, data: Any) -> ResultSet:
        return from_dict(data)


def settings_as_dict(settings: RecordedSettings) -> dict[str, Any]:
    """A Settings object as plain JSON values (compositions as their ids, paths as strings)."""
    return {
        "model": settings.model,
        "device": settings.device,
        "dtype": settings.dtype,
        "size": settings.size,
        "steps": settings.steps,
        "prompts": list(settings.prompts),
        "runs": settings.runs,
        "variants": None if settings.variants is None else [item.id for item in settings.variants],
        "report": None if settings.report is None else str(settings.report),
        "trace": None if settings.trace is None else str(settings.trace),
        "seed": settings.seed,
        "tiny_vae": settings.tiny_vae,
        "fp16_vae": settings.fp16_vae,
        "compile_cache": None if settings.compile_cache is None else str(settings.compile_cache),
    }


def encode_float(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: encode_float(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_float(item) for item in value]
    return value


def decode_float(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def to_dict(result_set: ResultSet, derived: DerivedBlocks | None = None) -> dict[str, Any]:
    """The JSON document of a result set (schema name and version first).

    ``derived`` gives each variant's derived blocks (key -> block), added to that variant's entry.
    """
    document = {"schema": SCHEMA_NAME, **asdict(result_set)}
    for item, record in zip(document["variants"], result_set.variants, strict=True):
        for run_item, run in zip(item["runs"], record.runs, strict=True):
            # The summary's own form (ranges as min/max/mean, the throttled flag), which run_from_dict reads back.
            run_item["gpu_state"] = None if run.gpu_state is None else run.gpu_state.as_dict()
            run_item["host_state"] = None if run.host_state is None else run.host_state.as_dict()
    if derived is not None:
        for item, record in zip(document["variants"], result_set.variants, strict=True):
            item.update(derived(record))
    encoded: dict[str, Any] = encode_float(document)
    return encoded


def device_from_node(node: Node) -> DeviceSignals:
    return DeviceSignals(
        kernel_ms=node.get("kernel_ms", []).numbers(),
        kernels=node.get("kernels", []).numbers(),
        stage_kernel_ms=node.get("stage_kernel_ms", {}).number_map(),
        flops=node.get("flops").optional_number(),
        kernel_table={
            key: pair.pair("[launches, microseconds]") for key, pair in node.get("kernel_table", {}).entries()
        },
        not_applicable=node.get("not_applicable", "").text(),
        stage_flops=node.get("stage_flops", {}).number_map(),
        matrix_peak_tflops=node.get("matrix_peak_tflops").optional_number(),
        matrix_peak_not_applicable=node.get("matrix_peak_not_applicable", "").text(),
    )


def run_wall_blocks(run: RunRecord) -> list[list[float]]:
    """The run's wall blocks; a file written before blocks existed gives its whole run as one."""
    if run.wall_blocks:
        return run.wall_blocks
    return [[min(run.gen_s), min(run.reference_gen_s)]] if run.gen_s and run.reference_gen_s else []


def optional_float(value: Any) -> float | None:
    return None if value is None else float(decode_float(value))


def run_from_node(node: Node) -> RunRecord:
    device, gpu_state, host_state = node.get("device"), node.get("gpu_state"), node.get("host_state")
    return RunRecord(
        run=node["run"].integer(),
        load_s=node["load_s"].number(),
        init_gen_s=node["init_gen_s"].number(),
        gen_s=node["gen_s"].numbers(),
        avg_gen_s=node["avg_gen_s"].number(),
        median_gen_s=node["median_gen_s"].number(),
        total_s=node["total_s"].number(),
        stages=node.get("stages", {}).number_map(),
        peak_gpu_mem_gb=node.get("peak_gpu_mem_gb").optional_number(),
        psnr_db=node.get("psnr_db").optional_number(),
        warmup_calls=node.get("warmup_calls", 0).integer(),
        device=None if device.is_null else device_from_node(device),
        reference=node.get("reference", "").text(),
        reference_gen_s=node.get("reference_gen_s", []).numbers(),
        wall_blocks=[pair.pair("[variant minimum, reference minimum]") for pair in node.get("wall_blocks", []).items()],
        energy_j_per_image=node.get("energy_j_per_image").optional_number(),
        energy_not_applicable=node.get("energy_not_applicable", "").text(),
        compile_cache=node.get("compile_cache", "").text(),
        ssim=node.get("ssim").optional_number(),
        lpips=node.get("lpips").optional_number(),
        lpips_not_applicable=node.get("lpips_not_applicable", "").text(),
        gpu_state=None if gpu_state.is_null else gpu_state.read(GpuStateSummary.from_dict, "a GPU state summary"),
        host_state=None if host_state.is_null else host_state.read(HostStateSummary.from_dict, "a host state summary"),
        gen_waited_s=node.get("gen_waited_s", []).numbers(),
        reference_waited_s=node.get("reference_waited_s", []).numbers(),
        process=node.get("process", "").text(),
        process_start_s=node.get("process_start_s").optional_number(),
    )


def variant_from_node(node: Node) -> VariantRecord:
    return VariantRecord(
        variant=node["variant"].text(),
        kind=node["kind"].text(),
        status=node["status"].choice(STATUSES),
        reason=node.get("reason", "").text(),
        runs=[run_from_node(run) for run in node.get("runs", []).items()],
        note=node.get("note", "").text(),
        compile_cache=node.get("compile_cache", "").text(),
        measure_s=node.get("measure_s").optional_number(),
        budget_s=node.get("budget_s").optional_number(),
        partial=node.get("partial", "").choice(("", *PARTIAL_REASONS)),
    )


def from_dict(data: Any, source: str = "the results document") -> ResultSet:
    """A result set from its JSON document (``source`` names it in errors).

    ResultsFileError on another schema or version, or at the first value that is not what its field holds:
    the message gives its JSON path, what was expected and what was found.
    """
    root = Node(data)
    try:
        found = root.object().get("schema", SCHEMA_NAME)
        if found != SCHEMA_NAME:
            raise ResultsFileError(f"{source} is not a {SCHEMA_NAME} document (schema {found!r})")
        version = root["schema_version"].integer()
        if version not in READABLE_VERSIONS:
            readable = ", ".join(str(number) for number in READABLE_VERSIONS)
            raise ResultsFileError(
                f"{source}: results schema version {version} is not supported; this pytest-sdxl reads versions "
                + readable
            )
        return ResultSet(
            settings=open_block(root.get("settings", {}), RECORDED_SETTINGS),
            machine=open_block(root.get("machine", {}), RECORDED_MACHINE),
            variants=[variant_from_node(item) for item in root["variants"].items()],
            created=root.get("created", "").text(),
            # A file read is a file of this version once written again.
            schema_version=SCHEMA_VERSION,
            partial=root.get("partial", "").choice(("", *PARTIAL_REASONS)),
            not_measured=root.get("not_measured", []).texts(),
            session_ids=session_ids_from_node(root),
        )
    except MalformedDocument as error:
        raise ResultsFileError(f"{source} is not a valid {SCHEMA_NAME} document: {error}") from None


def write_atomically(path: str | os.PathLike[str], text: str | bytes) -> Path:
    """Write a file through a temporary file in the same folder and ``os.replace``: never half written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates the file private (0600): give it the mode any other new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def save_results(result_set: ResultSet, path: str | os.PathLike[str], derived: DerivedBlocks | None = None) -> Path:
    """Write the result set as JSON, atomically, with each variant's ``derived`` blocks; returns the path written."""
    return write_atomically(path, json.dumps(to_dict(result_set, derived), indent=2, allow_nan=False) + "\n")


RESULTS_FILE = "results.json"
RESULTS_ACCEPTED = f"give a {RESULTS_FILE} written by run, or the --report folder holding one"


def results_path(path: str | os.PathLike[str]) -> Path:
    """The results file ``path`` names: itself, or the results.json in it where it is a folder (``--report DIR``)."""
    source = Path(path)
    if source.is_dir():
        inside = source / RESULTS_FILE
        if not inside.is_file():
            named = f"results file {str(source)!r}"
            raise ResultsFileError(f"{named} is a folder without a {RESULTS_FILE}; {RESULTS_ACCEPTED}")
        return inside
    if not source.is_file():
        raise ResultsFileError(f"results file {str(source)!r} does not exist; {RESULTS_ACCEPTED}")
    return source


def load_results(path: str | os.PathLike[str]) -> ResultSet:
    """Read a results file written by ``save_results`` (or the one in a report folder); the error names the file
    and says what is wrong with it."""
    source = results_path(path)
    named = f"results file {str(source)!r}"
    return from_dict(read_json_file(source, named, ResultsFileError), named)
