"""The result schema: one versioned JSON document per measurement, written atomically.

A ``ResultSet`` holds the settings, the machine and every raw sample of every run of every
variant (``VariantRecord`` -> ``RunRecord`` -> ``DeviceSignals``). The record classes live in
``results.records``; the measurement core fills them. Version 1 files (before
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

import errno
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.errors import SdxlError
from pytest_sdxl.machine.gpu_state import GpuStateSummary
from pytest_sdxl.machine.host_state import HostStateSummary
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
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
STATUSES = ("ok", "skipped", "failed")
# Why a result set is partial: the session was interrupted (SIGINT, pytest.exit), stopped early
# (-x, --maxfail), or was still running when the file was written (what a killed session leaves).
PARTIAL_REASONS = ("interrupted", "stopped", "running")


class ResultsFileError(SdxlError):
    """A results file cannot be read: missing, not JSON, or of another schema or version."""


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


def refuse_repeated_variants(variants: list[VariantRecord]) -> None:
    """Every writer gives a variant one record; a second one would be read as if it were not there."""
    seen: set[str] = set()
    for index, record in enumerate(variants):
        if record.variant in seen:
            raise MalformedDocument(
                f"variants[{index}]", f"a second record of {record.variant!r}; each variant has one record"
            )
        seen.add(record.variant)


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
        variants = [variant_from_node(item) for item in root["variants"].items()]
        refuse_repeated_variants(variants)
        return ResultSet(
            settings=open_block(root.get("settings", {}), RECORDED_SETTINGS),
            machine=open_block(root.get("machine", {}), RECORDED_MACHINE),
            variants=variants,
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
    """Write a file through a temporary file in the same folder and ``os.replace``: never half written.

    A link is followed: its target is replaced and the link kept. A stream is written in place, as a shell's
    ``>`` writes it, since a replace would swap it for a regular file that its reader never sees: one of this
    process's descriptors (``/dev/stdout``), or an existing file that is neither regular nor a folder (a FIFO,
    a device); a failed write there is the OSError it raised. A folder is an IsADirectoryError.
    """
    given = Path(path)
    data = text.encode("utf-8") if isinstance(text, str) else text
    descriptor = open_descriptor(given)
    if descriptor is not None:
        write_descriptor(descriptor, data)
        return given
    mode = file_mode(given)
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(given))
    if mode is not None and not stat.S_ISREG(mode):
        with open(given, "wb") as handle:
            handle.write(data)
        return given
    target = Path(os.path.realpath(given))
    target.parent.mkdir(parents=True, exist_ok=True)
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
    return given


def written_in_place(path: str | os.PathLike[str]) -> bool:
    """Whether ``write_atomically`` writes ``path`` in place (a descriptor, a FIFO, a device), not by a replace."""
    mode = file_mode(Path(path))
    in_place = mode is not None and not stat.S_ISDIR(mode) and not stat.S_ISREG(mode)
    return in_place or open_descriptor(Path(path)) is not None


def file_mode(path: Path) -> int | None:
    """The mode of the file ``path`` leads to through any links; None where there is none (yet) or it is hidden."""
    try:
        return path.stat().st_mode
    except OSError:
        return None


def open_descriptor(path: Path) -> int | None:
    """N where ``path`` leads, through any links, to /dev/fd/N or /proc/self/fd/N: this process's descriptor N.

    That descriptor is written itself, at its offset (at the end where opened to append): opening the name
    again would truncate a file the shell sent stdout to (``>> $GITHUB_STEP_SUMMARY``), and a replace would
    unlink that file from under the descriptor, losing what was printed and what earlier steps wrote.
    """
    own = {os.path.realpath(f"/proc/{os.getpid()}/fd"), os.path.realpath("/dev/fd")}
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on the links of one path
        folder = os.path.realpath(os.path.dirname(current))
        name = os.path.basename(current)
        if folder in own and name.isdigit():
            return int(name)
        if not os.path.islink(current):
            return None
        current = os.path.join(folder, os.readlink(current))
    return None


def write_descriptor(descriptor: int, data: bytes) -> None:
    # What Python holds for the same stream goes first, so that the two keep the order they were written in.
    for number, stream in ((1, sys.stdout), (2, sys.stderr)):
        if descriptor == number and stream is not None:
            stream.flush()
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


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
