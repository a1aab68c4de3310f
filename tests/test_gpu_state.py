"""GPU state through a fake NVML: readings, throttle reasons, n/a with the reason, the sentences compare says."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pytest_sdxl.machine import gpu_state, nvml
from pytest_sdxl.machine.gpu_state import (
    NO_CUDA_DEVICE,
    NOT_RECORDED,
    GpuStateSample,
    GpuStateSummary,
    compare_gpu_states,
    merge,
    open_gpu_state,
    read_gpu_state,
    summarize,
)
from pytest_sdxl.machine.nvml import NO_PYNVML

NOT_SUPPORTED = 3
GPU_IS_LOST = 15
POWER_CAP = 0x4
THERMAL_SW = 0x20
IDLE = 0x1
APPLICATIONS_CLOCKS = 0x2


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class Card:
    """What the fake NVML answers for one card; ``readings`` feed the SM clock and reasons in turn."""

    readings: Iterator[tuple[int, int]] = field(default_factory=lambda: iter([(1980, 0)] * 100))
    memory_clock: int = 2619
    temperature: int = 55
    power_mw: int | None = 350_500  # None: the card does not support the query
    power_limit_mw: int = 700_000
    fail_after: int | None = None  # readings of the SM clock before the GPU is lost


def fake_pynvml(card: Card, event_names: bool = False, init_error: int | None = None) -> types.ModuleType:
    """A pynvml stand-in with two cards (NVML indexes 0 and 1), the second answering from ``card``.

    ``event_names``: the newer "clocks event" query and constants instead of the "throttle" ones.
    """
    module = types.ModuleType("pynvml")
    uuids = ["GPU-aaaa-1111", "GPU-bbbb-2222"]
    reads = {"count": 0}
    current: dict[str, int] = {}

    def init() -> None:
        if init_error is not None:
            raise FakeNvmlError(init_error)

    def by_uuid(uuid: str) -> int:
        if uuid not in uuids:
            raise FakeNvmlError(13)
        return uuids.index(uuid)

    def clock(handle: int, kind: int) -> int:
        if kind == module.NVML_CLOCK_MEM:  # type: ignore[attr-defined]
            return card.memory_clock
        reads["count"] += 1
        if card.fail_after is not None and reads["count"] > card.fail_after:
            raise FakeNvmlError(GPU_IS_LOST)
        current["sm"], current["mask"] = next(card.readings)
        return current["sm"]

    def power(handle: int) -> int:
        if card.power_mw is None:
            raise FakeNvmlError(NOT_SUPPORTED)
        return card.power_mw

    prefix = "nvmlClocksEventReason" if event_names else "nvmlClocksThrottleReason"
    for suffix, bit in (("GpuIdle", 1), ("ApplicationsClocksSetting", 2), ("SwPowerCap", 4), ("SwThermalSlowdown", 32)):
        setattr(module, prefix + suffix, bit)
    reasons_query = (
        "nvmlDeviceGetCurrentClocksEventReasons" if event_names else "nvmlDeviceGetCurrentClocksThrottleReasons"
    )
    setattr(module, reasons_query, lambda handle: current["mask"])
    attributes = {
        "NVMLError": FakeNvmlError,
        "NVML_ERROR_NOT_SUPPORTED": NOT_SUPPORTED,
        "NVML_CLOCK_SM": 1,
        "NVML_CLOCK_MEM": 2,
        "NVML_TEMPERATURE_GPU": 0,
        "nvmlInit": init,
        "nvmlDeviceGetCount": lambda: len(uuids),
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetHandleByUUID": by_uuid,
        "nvmlDeviceGetUUID": lambda handle: uuids[handle],
        "nvmlDeviceGetName": lambda handle: b"Fake H100",
        "nvmlDeviceGetClockInfo": clock,
        "nvmlDeviceGetTemperature": lambda handle, sensor: card.temperature,
        "nvmlDeviceGetPowerUsage": power,
        "nvmlDeviceGetEnforcedPowerLimit": lambda handle: card.power_limit_mw,
    }
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


CUDA_ZERO = types.SimpleNamespace(type="cuda", index=0)


def install(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType | None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", module)


def sample(sm: float, *reasons: str, power: float = 300.0) -> GpuStateSample:
    return GpuStateSample(sm, 2619.0, 60.0, power, 700.0, tuple(reasons))


def test_a_reading_gives_clocks_temperature_power_and_cap_in_their_units(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, fake_pynvml(Card()))
    reader = open_gpu_state(CUDA_ZERO, uuid="bbbb-2222")
    assert reader.not_applicable == "" and reader.device is not None
    assert reader.device.handle == 1 and reader.device.name == "Fake H100"
    assert reader.sample() == GpuStateSample(
        sm_clock_mhz=1980.0,
        memory_clock_mhz=2619.0,
        temperature_c=55.0,
        power_w=pytest.approx(350.5),  # type: ignore[arg-type]
        power_limit_w=700.0,
        reasons=(),
    )
    summary = summarize([reader.sample(), reader.sample()])
    assert summary.readings == 2 and not summary.throttled
    assert "SM 1980 MHz" in summary.describe() and "not throttled in 2 readings" in summary.describe()


@pytest.mark.parametrize("event_names", [False, True], ids=["throttle-names", "clocks-event-names"])
def test_throttle_reasons_are_decoded_and_mark_the_run_throttled(
    monkeypatch: pytest.MonkeyPatch, event_names: bool
) -> None:
    readings = iter([(1980, 0), (1755, POWER_CAP | THERMAL_SW), (1980, APPLICATIONS_CLOCKS), (345, IDLE)])
    install(monkeypatch, fake_pynvml(Card(readings=readings), event_names=event_names))
    reader = open_gpu_state(1)
    samples = [reader.sample() for _ in range(4)]
    assert [item.reasons for item in samples if item] == [
        (),
        ("power cap", "thermal slowdown (SW)"),
        ("applications clocks setting",),
        ("idle",),
    ]
    summary = summarize(samples)
    assert summary.throttled and summary.throttled_readings == 1
    assert summary.throttle_reasons == ("power cap", "thermal slowdown (SW)")
    # The idle reading's 345 MHz is not a clock the work ran at.
    assert summary.sm_clock_mhz is not None and (summary.sm_clock_mhz.low, summary.sm_clock_mhz.high) == (1755, 1980)
    assert "throttled in 1 of 4 readings: power cap, thermal slowdown (SW)" in summary.describe()


def test_settings_and_idleness_alone_are_not_throttling() -> None:
    summary = summarize([sample(1980, "applications clocks setting"), sample(210, "idle")])
    assert not summary.throttled and summary.reasons == ("applications clocks setting", "idle")


def test_an_unknown_reason_bit_is_named_by_its_value() -> None:
    assert gpu_state.decode_reasons(types.SimpleNamespace(), 0x4 | 0x8000) == ("power cap", "reason bits 0x8000")


def test_without_pynvml_or_a_gpu_the_state_is_na_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, None)  # import pynvml raises ImportError
    assert open_gpu_state(CUDA_ZERO, uuid="GPU-aaaa-1111").not_applicable == NO_PYNVML
    assert read_gpu_state(CUDA_ZERO).describe() == "n/a: nvidia-ml-py is not installed (pip install 'pytest-sdxl[gpu]')"
    cpu = types.SimpleNamespace(type="cpu", index=None)
    assert open_gpu_state(cpu).sample() is None
    assert read_gpu_state(cpu).describe() == f"n/a: {NO_CUDA_DEVICE}"


def test_nvml_errors_give_na_with_the_error_and_unsupported_queries_give_none(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, fake_pynvml(Card(), init_error=9))
    assert open_gpu_state(CUDA_ZERO, uuid="GPU-aaaa-1111").not_applicable == "NVML: NVML error 9"
    install(monkeypatch, fake_pynvml(Card()))
    assert open_gpu_state(CUDA_ZERO, uuid="GPU-none").not_applicable.startswith("NVML: no device found for cuda:0")
    install(monkeypatch, fake_pynvml(Card(power_mw=None, fail_after=1)))
    reader = open_gpu_state(CUDA_ZERO, uuid="GPU-aaaa-1111")
    first = reader.sample()
    assert first is not None and first.power_w is None and first.sm_clock_mhz == 1980
    assert reader.sample() is None  # the GPU is lost from the second reading on
    assert reader.not_applicable == f"NVML: reading the state of Fake H100 failed (NVML error {GPU_IS_LOST})"
    summary = summarize([first, None])
    assert summary.readings == 1 and summary.power_w is None


def test_torch_index_maps_to_the_nvml_card_through_cuda_visible_devices() -> None:
    fake = fake_pynvml(Card())
    assert nvml.nvml_handle(fake, 0, None, {"CUDA_VISIBLE_DEVICES": "1,0"}) == 1
    assert nvml.nvml_handle(fake, 1, None, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb-2222,GPU-aaaa"}) == 0
    with pytest.raises(LookupError):
        nvml.nvml_handle(fake, 2, None, {"CUDA_VISIBLE_DEVICES": "0,1"})


def test_clocks_apart_beyond_the_tolerance_are_said_with_side_and_size() -> None:
    base = summarize([sample(1980), sample(1980)])
    head = summarize([sample(1755), sample(1755)])
    (sentence,) = compare_gpu_states(base, head)
    assert sentence.startswith("The SM clock differs: the base ran at 1980 MHz")
    assert "the head at 1755 MHz" in sentence and "11.4% lower" in sentence
    assert compare_gpu_states(base, summarize([sample(1960)])) == []  # 1 % apart: within 2 %
    assert "higher" in compare_gpu_states(head, base)[0]


def test_a_throttled_side_and_different_power_caps_are_said() -> None:
    base = summarize([sample(1980)])
    throttled = summarize([GpuStateSample(1980.0, 2619.0, 85.0, 500.0, 500.0, ("power cap",)), sample(1980)])
    sentences = compare_gpu_states(base, throttled)
    assert sentences == [
        "The power caps differ: base 700 W, head 500 W.",
        "The head was throttled in 1 of 2 readings (power cap): its timings are slower than its card's "
        "unthrottled speed.",
    ]


def test_na_sides_are_said_once_or_side_by_side() -> None:
    cpu = GpuStateSummary(not_applicable=NO_CUDA_DEVICE)
    assert compare_gpu_states(cpu, cpu) == ["GPU state n/a on both sides: no CUDA device."]
    measured = summarize([sample(1980)])
    (sentence,) = compare_gpu_states(GpuStateSummary.from_dict(None), measured)
    assert sentence.startswith(f"GPU state n/a on the base ({NOT_RECORDED})")


def test_summaries_round_trip_through_json_and_merge_like_one_run() -> None:
    first = [sample(1980, power=300.0), sample(1900, "power cap", power=400.0)]
    second = [sample(1800, power=350.0), sample(200, "idle", power=60.0)]
    summary = summarize(first)
    assert GpuStateSummary.from_dict(json.loads(json.dumps(summary.as_dict()))) == summary
    assert summary.as_dict()["throttled"] is True
    na = GpuStateSummary(not_applicable=NO_PYNVML)
    assert GpuStateSummary.from_dict(json.loads(json.dumps(na.as_dict()))) == na
    merged, whole = merge([summarize(first), summarize(second), na]), summarize(first + second)
    assert merged.readings == whole.readings == 4 and merged.reasons == whole.reasons
    assert merged.throttled_readings == whole.throttled_readings == 1
    assert merged.sm_clock_mhz is not None and whole.sm_clock_mhz is not None
    assert merged.sm_clock_mhz.mean == pytest.approx(whole.sm_clock_mhz.mean)
    assert merged.power_w is not None and merged.power_w.mean == pytest.approx(1110.0 / 4)
    assert (
        merge([na, GpuStateSummary(not_applicable=NO_CUDA_DEVICE)]).not_applicable == f"{NO_PYNVML}; {NO_CUDA_DEVICE}"
    )
