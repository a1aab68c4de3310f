"""The GPU's state while it is measured: clocks, temperature, power and why NVML says the clocks are held back.

A timing is only as steady as the clocks it ran at: a card held at its power cap or slowed by heat
gives slower, bimodal results that fail changes which did nothing. NVML (``pynvml`` from the
``nvidia-ml-py`` package, the ``gpu`` extra) reads per device: the SM and memory clocks, the
temperature, the power draw and the enforced power cap, and the clocks-event ("throttle") reasons
as a bit mask, decoded here to names. A reading is one instant: read after a timed round (the
device synchronized), it shows the clocks the round's work ran at, since clocks fall back to idle
only after some hundreds of milliseconds without work.

A run's readings are summarized (``GpuStateSummary``): the clock range and mean, the highest
temperature, the mean power, the reasons seen and whether any of them held the clocks back.
Readings flagged idle show idle clocks, not those the work ran at, so they stay out of the clock
figures. Summaries merge exactly (sums and counts), so a side of a comparison is every run of it.

Where there is nothing to read (a CPU, no ``pynvml``, NVML failing) the summary says "n/a" with the
reason instead of holding zeros. NVML is opened through ``machine.nvml`` (``pynvml`` imported only
then), which also finds the NVML device that is torch's ``cuda:i``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_sdxl.machine.nvml import NvmlDevice, NvmlUnavailable, open_nvml_device

NO_CUDA_DEVICE = "no CUDA device"
NOT_RECORDED = "not recorded (these results predate GPU state readings)"

# The clocks-event reasons by the suffix of NVML's constant (nvmlClocksEventReason<suffix>, or the
# older nvmlClocksThrottleReason<suffix>), with the bit NVML documents, used when pynvml lacks the name.
REASONS = (
    ("GpuIdle", 0x001, "idle"),
    ("ApplicationsClocksSetting", 0x002, "applications clocks setting"),
    ("SwPowerCap", 0x004, "power cap"),
    ("HwSlowdown", 0x008, "HW slowdown"),
    ("SyncBoost", 0x010, "sync boost"),
    ("SwThermalSlowdown", 0x020, "thermal slowdown (SW)"),
    ("HwThermalSlowdown", 0x040, "thermal slowdown (HW)"),
    ("HwPowerBrakeSlowdown", 0x080, "power brake (HW)"),
    ("DisplayClockSetting", 0x100, "display clock setting"),
    ("BoardLimit", 0x200, "board limit"),
    ("Reliability", 0x400, "reliability"),
)
# Reasons that are settings, not a slowdown: clocks someone set (locked clocks, the usual advice for
# benchmarking, show as the applications clocks setting), or a card with nothing to do.
NOT_THROTTLING = frozenset({"idle", "applications clocks setting", "display clock setting"})
# Kernel time moves with the SM clock, and the kernel-time gate is 2 %: clocks further apart than
# that can explain a verdict on their own.
DEFAULT_CLOCK_TOLERANCE = 0.02


@dataclass(frozen=True)
class GpuStateSample:
    """One reading of the GPU's state; a field NVML does not support on this card is None."""

    sm_clock_mhz: float | None
    memory_clock_mhz: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    reasons: tuple[str, ...] = ()

    @property
    def idle(self) -> bool:
        return "idle" in self.reasons

    @property
    def throttle_reasons(self) -> tuple[str, ...]:
        """The reasons that held the clocks back (not a setting, not idleness)."""
        return tuple(reason for reason in self.reasons if reason not in NOT_THROTTLING)


def decode_reasons(nvml: Any, mask: int) -> tuple[str, ...]:
    """The names of the reasons set in a clocks-event mask; a bit no name is known for is shown in hex."""
    names = []
    for suffix, documented_bit, name in REASONS:
        bit = getattr(nvml, f"nvmlClocksEventReason{suffix}", getattr(nvml, f"nvmlClocksThrottleReason{suffix}", None))
        bit = documented_bit if bit is None else int(bit)
        if mask & bit:
            names.append(name)
            mask &= ~bit
    if mask:
        names.append(f"reason bits {mask:#x}")
    return tuple(names)


def read_sample(device: NvmlDevice) -> GpuStateSample:
    """One reading; a query the card does not support gives None, any other NVML error is raised."""
    nvml, handle = device.nvml, device.handle
    not_supported = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", object())

    def query(function: str, *arguments: Any) -> Any:
        try:
            return getattr(nvml, function)(handle, *arguments)
        except nvml.NVMLError as error:
            if getattr(error, "value", None) == not_supported:
                return None
            raise

    def scaled(value: Any, factor: float) -> float | None:
        return None if value is None else float(value) * factor

    # nvidia-ml-py renamed the reasons' query with the driver's "clocks event" wording; older ones have the first.
    reasons_function = (
        "nvmlDeviceGetCurrentClocksEventReasons"
        if hasattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons")
        else "nvmlDeviceGetCurrentClocksThrottleReasons"
    )
    sm_clock = query("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM)
    mask = query(reasons_function)  # right after the clock it explains
    return GpuStateSample(
        sm_clock_mhz=scaled(sm_clock, 1.0),
        memory_clock_mhz=scaled(query("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM), 1.0),
        temperature_c=scaled(query("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU), 1.0),
        power_w=scaled(query("nvmlDeviceGetPowerUsage"), 1e-3),  # NVML gives milliwatts
        power_limit_w=scaled(query("nvmlDeviceGetEnforcedPowerLimit"), 1e-3),
        reasons=() if mask is None else decode_reasons(nvml, int(mask)),
    )


class GpuStateReader:
    """Reads one device's state on demand; without a device, or once a read failed, it reads None and says why."""

    def __init__(self, device: NvmlDevice | None, not_applicable: str = "") -> None:
        self.device = device
        self.not_applicable = not_applicable if device is None else ""

    def sample(self) -> GpuStateSample | None:
        if self.device is None or self.not_applicable:
            return None
        try:
            return read_sample(self.device)
        except self.device.nvml.NVMLError as error:
            self.not_applicable = f"NVML: reading the state of {self.device.name} failed ({error})"
            return None


def open_gpu_state(device: Any, uuid: str | None = None) -> GpuStateReader:
    """A reader for a torch device (or a CUDA index); never raises: on a CPU or without NVML it reads n/a."""
    if isinstance(device, int):
        index: int = device
    elif getattr(device, "type", "cpu") == "cuda":
        index = device.index if device.index is not None else 0
    else:
        return GpuStateReader(None, NO_CUDA_DEVICE)
    try:
        return GpuStateReader(open_nvml_device(index, uuid))
    except NvmlUnavailable as error:
        return GpuStateReader(None, str(error))


@dataclass(frozen=True)
class Range:
    """How many readings of one figure, and their lowest, highest and mean value."""

    count: int
    low: float
    high: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Range | None:
        return cls(len(values), min(values), max(values), sum(values) / len(values)) if values else None

    def merged(self, other: Range | None) -> Range:
        if other is None:
            return self
        count = self.count + other.count
        mean = (self.mean * self.count + other.mean * other.count) / count
        return Range(count, min(self.low, other.low), max(self.high, other.high), mean)

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "min": self.low, "max": self.high, "mean": self.mean}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Range | None:
        if not data:
            return None
        return cls(int(data["count"]), float(data["min"]), float(data["max"]), float(data["mean"]))


FIGURES = ("sm_clock_mhz", "memory_clock_mhz", "temperature_c", "power_w", "power_limit_w")
CLOCKS = ("sm_clock_mhz", "memory_clock_mhz")


@dataclass(frozen=True)
class GpuStateSummary:
    """A run's (or a side's) readings: each figure's range, the reasons seen, and how many readings were throttled.

    The clocks come from readings not flagged idle; the other figures from every reading. Without
    readings, ``not_applicable`` says why.
    """

    readings: int = 0
    sm_clock_mhz: Range | None = None
    memory_clock_mhz: Range | None = None
    temperature_c: Range | None = None
    power_w: Range | None = None
    power_limit_w: Range | None = None
    reasons: tuple[str, ...] = ()
    throttled_readings: int = 0
    not_applicable: str = ""

    @property
    def throttled(self) -> bool:
        return self.throttled_readings > 0

    @property
    def throttle_reasons(self) -> tuple[str, ...]:
        return tuple(reason for reason in self.reasons if reason not in NOT_THROTTLING)

    def describe(self) -> str:
        """One line: 'SM 1755–1980 MHz (mean 1932), memory 2619 MHz, up to 67 °C, ...' or 'n/a: <reason>'."""
        if not self.readings:
            return f"n/a: {self.not_applicable or 'no readings'}"
        parts = []
        for label, figure in (("SM", self.sm_clock_mhz), ("memory", self.memory_clock_mhz)):
            if figure is not None:
                span = f"{figure.low:.0f}" if figure.low == figure.high else f"{figure.low:.0f}–{figure.high:.0f}"
                parts.append(
                    f"{label} {span} MHz" + ("" if figure.low == figure.high else f" (mean {figure.mean:.0f})")
                )
        if self.temperature_c is not None:
            parts.append(f"up to {self.temperature_c.high:.0f} °C")
        if self.power_w is not None:
            cap = "" if self.power_limit_w is None else f" of a {self.power_limit_w.low:.0f} W cap"
            parts.append(f"{self.power_w.mean:.0f} W mean{cap}")
        if self.throttled:
            parts.append(
                f"throttled in {self.throttled_readings} of {self.readings} readings: "
                f"{', '.join(self.throttle_reasons)}"
            )
        else:
            parts.append(f"not throttled in {readings(self.readings)}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """For results.json: JSON types only, None for a figure the card did not give."""
        data: dict[str, Any] = {"readings": self.readings}
        for name in FIGURES:
            figure = getattr(self, name)
            data[name] = None if figure is None else figure.as_dict()
        data.update(
            reasons=list(self.reasons),
            throttled_readings=self.throttled_readings,
            throttled=self.throttled,
            not_applicable=self.not_applicable,
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GpuStateSummary:
        """The summary ``as_dict`` wrote; a run recorded without one reads as n/a, not recorded."""
        if not data:
            return cls(not_applicable=NOT_RECORDED)
        figures: dict[str, Any] = {name: Range.from_dict(data.get(name)) for name in FIGURES}
        return cls(
            readings=int(data.get("readings", 0)),
            reasons=tuple(str(reason) for reason in data.get("reasons", [])),
            throttled_readings=int(data.get("throttled_readings", 0)),
            not_applicable=str(data.get("not_applicable", "")),
            **figures,
        )


def summarize(samples: Iterable[GpuStateSample | None], not_applicable: str = "") -> GpuStateSummary:
    """The summary of a run's readings (None for a reading that failed); n/a with the reason when none."""
    taken = [sample for sample in samples if sample is not None]
    if not taken:
        return GpuStateSummary(not_applicable=not_applicable or "no readings")
    working = [sample for sample in taken if not sample.idle] or taken

    def values(name: str) -> list[float]:
        chosen = working if name in CLOCKS else taken
        return [value for value in (getattr(sample, name) for sample in chosen) if value is not None]

    seen = {reason for sample in taken for reason in sample.reasons}
    figures: dict[str, Any] = {name: Range.of(values(name)) for name in FIGURES}
    return GpuStateSummary(
        readings=len(taken),
        reasons=tuple(sorted(seen)),
        throttled_readings=sum(1 for sample in taken if sample.throttle_reasons),
        **figures,
    )


def merge(summaries: Iterable[GpuStateSummary]) -> GpuStateSummary:
    """Several runs' summaries as one (a side of a comparison); n/a with every reason when none has readings."""
    every = list(summaries)
    measured = [summary for summary in every if summary.readings]
    if not measured:
        reasons = dict.fromkeys(summary.not_applicable for summary in every if summary.not_applicable)
        return GpuStateSummary(not_applicable="; ".join(reasons) or "no readings")
    figures: dict[str, Any] = {}
    for name in FIGURES:
        ranges = [figure for figure in (getattr(summary, name) for summary in measured) if figure is not None]
        figures[name] = None
        for figure in ranges:
            figures[name] = figure if figures[name] is None else figure.merged(figures[name])
    return GpuStateSummary(
        readings=sum(summary.readings for summary in measured),
        reasons=tuple(sorted({reason for summary in measured for reason in summary.reasons})),
        throttled_readings=sum(summary.throttled_readings for summary in measured),
        **figures,
    )


def read_gpu_state(device: Any) -> GpuStateSummary:
    """One reading of a torch device (or a CUDA index) now, summarized; n/a with the reason where none."""
    reader = open_gpu_state(device)
    return summarize([reader.sample()], reader.not_applicable)


def compare_gpu_states(
    base: GpuStateSummary,
    head: GpuStateSummary,
    tolerance: float = DEFAULT_CLOCK_TOLERANCE,
    sides: tuple[str, str] = ("base", "head"),
) -> list[str]:
    """What a reader must know before a verdict: clocks or power caps apart beyond ``tolerance``, throttling.

    Empty when both sides ran alike and unthrottled.
    """
    first, second = sides
    if not base.readings and not head.readings:
        if base.not_applicable == head.not_applicable:
            return [f"GPU state n/a on both sides: {base.not_applicable or 'no readings'}."]
        return [f"GPU state n/a: the {first} {base.not_applicable}; the {second} {head.not_applicable}."]
    sentences = []
    for side, summary, other in ((first, base, second), (second, head, first)):
        if not summary.readings:
            sentences.append(
                f"GPU state n/a on the {side} ({summary.not_applicable or 'no readings'}): "
                f"its clocks cannot be compared with the {other}'s."
            )
    if base.readings and head.readings:
        for label, name in (("SM clock", "sm_clock_mhz"), ("memory clock", "memory_clock_mhz")):
            sentence = clock_difference(label, getattr(base, name), getattr(head, name), tolerance, sides)
            if sentence:
                sentences.append(sentence)
        if base.power_limit_w is not None and head.power_limit_w is not None:
            low, high = base.power_limit_w.low, head.power_limit_w.low
            if abs(high - low) > tolerance * max(low, high):
                sentences.append(f"The power caps differ: {first} {low:.0f} W, {second} {high:.0f} W.")
    for side, summary in ((first, base), (second, head)):
        if summary.throttled:
            sentences.append(
                f"The {side} was throttled in {summary.throttled_readings} of {summary.readings} readings "
                f"({', '.join(summary.throttle_reasons)}): its timings are slower than its card's unthrottled speed."
            )
    return sentences


def clock_difference(
    label: str, base: Range | None, head: Range | None, tolerance: float, sides: tuple[str, str]
) -> str:
    """A sentence when the two sides' mean clocks are further apart than ``tolerance``, else ""."""
    if base is None or head is None or base.mean <= 0:
        return ""
    change = head.mean / base.mean - 1
    if abs(change) <= tolerance:
        return ""
    first, second = sides
    direction = "higher" if change > 0 else "lower"
    return (
        f"The {label} differs: the {first} ran at {base.mean:.0f} MHz on average{spread(base)}, "
        f"the {second} at {head.mean:.0f} MHz{spread(head)}, {abs(change):.1%} {direction}; "
        "times move with the clocks, so a verdict may reflect them rather than the change."
    )


def spread(figure: Range) -> str:
    return "" if figure.low == figure.high else f" ({figure.low:.0f}–{figure.high:.0f})"


def readings(count: int) -> str:
    return f"{count} reading" if count == 1 else f"{count} readings"
