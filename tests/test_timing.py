"""The synchronizing clock and the stage timer.

The clock is checked against a fake asynchronous device with a fake time source (no sleeping,
nothing timed): kernels are queued instantly and finish later, and only a synchronization
brings the host up to their finish. The stage timer is checked on random:tiny on the CPU;
its GPU cost is checked on a GPU.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from pytest_sdxl.measure import timing
from pytest_sdxl.measure.timing import StageTimer, SyncClock
from pytest_sdxl.pipelines.sources import load_components
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import parse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


LAUNCH_SECONDS = 0.001


@dataclass
class FakeAsyncDevice:
    """A device whose kernels run after the host has moved on, on a fake clock."""

    type: str = "cuda"
    host_time: float = 100.0
    busy_until: float = 100.0

    def queue_kernel(self, seconds: float) -> None:
        self.busy_until = max(self.busy_until, self.host_time) + seconds
        self.host_time += LAUNCH_SECONDS

    def synchronize(self) -> None:
        self.host_time = max(self.host_time, self.busy_until)


@pytest.fixture
def fake_device(monkeypatch: pytest.MonkeyPatch) -> FakeAsyncDevice:
    device = FakeAsyncDevice()

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return device.host_time

    monkeypatch.setattr(timing, "time", FakeTime)
    monkeypatch.setattr(timing, "synchronize", lambda which: which.synchronize())
    return device


def test_clock_waits_for_queued_work(fake_device: FakeAsyncDevice) -> None:
    clock = SyncClock(fake_device)
    _, elapsed = clock.time(lambda: fake_device.queue_kernel(2.0))
    assert elapsed == pytest.approx(2.0)


def test_an_unsynchronized_reading_would_miss_the_queued_work(fake_device: FakeAsyncDevice) -> None:
    """The fake device is really asynchronous: without the clock's synchronization the work is missed."""
    started = timing.time.perf_counter()
    fake_device.queue_kernel(2.0)
    assert timing.time.perf_counter() - started == pytest.approx(LAUNCH_SECONDS)


def test_clock_counts_work_queued_before_it_started_only_once(fake_device: FakeAsyncDevice) -> None:
    fake_device.queue_kernel(5.0)  # earlier work, still running when the clock starts
    clock = SyncClock(fake_device)
    _, elapsed = clock.time(lambda: fake_device.queue_kernel(1.0))
    assert elapsed == pytest.approx(1.0)


def test_clock_returns_the_functions_result(fake_device: FakeAsyncDevice) -> None:
    result, _ = SyncClock(fake_device).time(lambda: "images")
    assert result == "images"


@pytest.fixture(scope="module")
def tiny_pipeline() -> VariantPipeline:
    components = load_components("random:tiny", torch.device("cpu"), torch.float32)
    return VariantPipeline(components, parse("baseline"), 64, steps=2)


def test_stages_and_other_account_for_the_whole_generation(tiny_pipeline: VariantPipeline) -> None:
    with StageTimer(tiny_pipeline.pipe, tiny_pipeline.device) as timer:
        for index in range(3):
            with timer.generation():
                tiny_pipeline.generate([f"prompt {index}"], [index])
    times = timer.read()
    parts = times.text_encode_ms + times.unet_total_ms + times.vae_decode_ms + times.other_ms
    assert parts == pytest.approx(times.total_ms)
    assert times.unet_calls == 3 * 2  # three images, two steps each
    assert min(times.text_encode_ms, times.unet_total_ms, times.vae_decode_ms) > 0
    assert times.other_ms >= 0  # the stages nest inside the generation
    assert times.unet_ms == pytest.approx(times.unet_total_ms / 6)


def test_read_starts_afresh(tiny_pipeline: VariantPipeline) -> None:
    with StageTimer(tiny_pipeline.pipe, tiny_pipeline.device) as timer:
        with timer.generation():
            tiny_pipeline.generate(["a prompt"], [0])
        assert timer.read().unet_calls == 2
        assert timer.read().unet_calls == 0


def test_detached_timer_leaves_the_pipeline_as_it_was(tiny_pipeline: VariantPipeline) -> None:
    pipe = tiny_pipeline.pipe
    timer = StageTimer(pipe, tiny_pipeline.device).attach()
    assert "encode_prompt" in vars(pipe) and "decode" in vars(pipe.vae)
    assert pipe.unet._forward_hooks and pipe.unet._forward_pre_hooks
    timer.detach()
    assert "encode_prompt" not in vars(pipe) and "decode" not in vars(pipe.vae)
    assert not pipe.unet._forward_hooks and not pipe.unet._forward_pre_hooks
    tiny_pipeline.generate(["a prompt"], [0])
    assert timer.read().unet_calls == 0  # nothing records once detached


def test_timer_does_not_change_the_images(tiny_pipeline: VariantPipeline) -> None:
    plain = tiny_pipeline.generate(["a red cube"], [3])
    with StageTimer(tiny_pipeline.pipe, tiny_pipeline.device):
        timed = tiny_pipeline.generate(["a red cube"], [3])
    assert (plain == timed).all()


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@gpu
def test_clock_waits_for_a_real_cuda_kernel() -> None:
    device = torch.device("cuda")
    clock = SyncClock(device)
    torch.cuda._sleep(1000)  # warm the kernel up
    clock.now()
    # A kernel that spins ~10^8 cycles (tens of ms): queued in microseconds, finished much later.
    _, synchronized = clock.time(lambda: torch.cuda._sleep(100_000_000))
    started = timing.time.perf_counter()
    torch.cuda._sleep(100_000_000)
    unsynchronized = timing.time.perf_counter() - started
    torch.cuda.synchronize()
    assert synchronized > 5 * unsynchronized


@gpu
def test_attaching_the_stage_timer_costs_under_two_percent_on_a_gpu() -> None:
    from pytest_sdxl.pipelines.sources import components_for, forget_loaded, image_size_for
    from pytest_sdxl.settings import resolve

    settings = resolve({"model": "random:sdxl-turbo"}, {}, {}, flag_style="cli")
    components = components_for(settings)
    pipeline = VariantPipeline(components, parse("tiny_vae"), image_size_for(settings, components))
    clock = SyncClock(components.device)
    timer = StageTimer(pipeline.pipe, components.device)

    def whole_generation(attached: bool) -> float:
        if attached:
            timer.attach()
        try:
            _, seconds = clock.time(lambda: pipeline.generate(["a lighthouse"], [0]))
        finally:
            timer.detach()
            timer.read()
        return seconds

    for _ in range(5):
        whole_generation(True), whole_generation(False)
    pairs: list[Any] = [(whole_generation(True), whole_generation(False)) for _ in range(30)]
    ratio = statistics.median(attached / detached for attached, detached in pairs)
    pipeline.close()
    forget_loaded()  # hand the full-size model's GPU memory back to the rest of the session
    assert ratio < 1.02
