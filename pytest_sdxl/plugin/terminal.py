"""What the plugin writes to the terminal: the header's lines, the lines after collection, and the summary.

Imported by the hooks only where there is something to write (the header, sdxl tests, records), so
that a session of other tests does not load it. The GPU is named from the driver's /proc files, and
by nvidia-smi only once sdxl tests are collected; no torch here.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_sdxl.plugin.state import SessionState


def header_lines(state: SessionState) -> list[str]:
    """The effective settings, where each that is not a default came from, the compile cache and the GPU."""
    lines = [f"sdxl: {state.settings.describe()}"]
    chosen = [
        f"{name} from {'the command line' if origin == 'command' else origin}"
        for name, origin in state.settings.sources.items()
        if origin != "default"
    ]
    if chosen:
        lines.append("sdxl settings: " + ", ".join(chosen))
    cache = state.settings.compile_cache
    lines.append(f"sdxl compile cache: {cache if cache is not None else 'off (torch defaults)'}")
    lines.append(header_gpu_line())
    return lines


def header_gpu_line() -> str:
    """The GPU from the NVIDIA driver's /proc files: no subprocess and no torch in a session that may not use sdxl."""
    from pytest_sdxl.machine.probes import gpu_summary, gpus_from_driver

    found = gpus_from_driver()
    if found is None:
        if shutil.which("nvidia-smi"):
            return "sdxl gpu: asked of nvidia-smi once sdxl tests are collected"
        return "sdxl gpu: none (no NVIDIA driver)"
    names, driver = found
    return f"sdxl gpu: {gpu_summary(names) or 'none'} (driver {driver or 'unknown'})"


def left_out_line(state: SessionState) -> list[str]:
    """The header's line naming the variants the default selection leaves out here, and how to ask for them."""
    if not state.left_out:
        return []
    from pytest_sdxl.variants.registry import left_out_on_cpu

    return [
        f"sdxl variants left out on this cpu: {left_out_on_cpu(state.left_out)}; "
        "--sdxl-variants all, or their names, times them"
    ]


def gpu_line_from_nvidia_smi() -> list[str]:
    """The GPU as nvidia-smi names it, where the driver has no /proc files (WSL) and the header could not."""
    if not shutil.which("nvidia-smi"):
        return []
    from pytest_sdxl.machine.probes import gpu_summary, gpus_from_driver, gpus_from_nvidia_smi

    if gpus_from_driver() is not None:
        return []  # the header named it already
    found = gpus_from_nvidia_smi()
    if found is None:
        return ["sdxl gpu: nvidia-smi did not answer"]
    names, driver = found
    return [f"sdxl gpu: {gpu_summary(names) or 'none'} (driver {driver or 'unknown'}, from nvidia-smi)"]


def write_summary(terminalreporter: Any, state: SessionState) -> None:
    """The session's summary and the reference protocol's tables, then why nothing was measured, if so."""
    if state.records:
        from pytest_sdxl.machine.probes import machine_details
        from pytest_sdxl.reports.tables import session_summary_lines

        terminalreporter.write_sep("=", "sdxl: summary and the reference protocol's tables")
        for line in session_summary_lines(state.result_set(state.machine_details or machine_details())):
            terminalreporter.write_line(line)
        from pytest_sdxl.machine.compile_cache import summary_line

        uses = {variant: record.compile_cache for variant, record in state.records.items() if record.compile_cache}
        if uses:
            terminalreporter.write_line(summary_line(state.settings.compile_cache, uses))
        if state.report_line:
            terminalreporter.write_line(state.report_line)
        if state.partial_line:
            terminalreporter.write_line(state.partial_line, yellow=True, bold=True)
    if state.nothing_measured_line:
        terminalreporter.write_line(state.nothing_measured_line, red=True, bold=True)
