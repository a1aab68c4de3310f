"""A cheap process: random weights written once on the device in the target dtype; the process's age."""

from __future__ import annotations

import collections
import math
import subprocess
import sys
import time
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_sdxl.pipelines import process_age, random_weights
from pytest_sdxl.pipelines.architectures import SDXL_TURBO, TINY, build_module
from pytest_sdxl.pipelines.random_weights import PoolWindow, build_random, fan_in

# What initializes or converts a tensor: each parameter should see exactly one of the first three.
WRITES = {"uniform_", "normal_", "fill_", "zero_", "mul", "copy_", "_to_copy", "mul_"}


class RecordedWrites(TorchDispatchMode):
    """Counts the writing operations on real (not meta) floating-point tensors, by name and dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: collections.Counter[tuple[str, torch.dtype]] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if name in WRITES and isinstance(out, torch.Tensor) and out.device.type != "meta" and out.is_floating_point():
            self.writes[(name, out.dtype)] += 1
        return out


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "tiny_vae"])
def test_each_parameter_is_written_once_in_the_target_dtype(component: str, one_torch_thread: None) -> None:
    """No torch or library init on real memory, no float32 copy cast afterwards: one write per parameter."""
    recorder = RecordedWrites()
    with recorder:
        module = build_module(TINY, component, 0, "cpu", torch.bfloat16)
    parameters = list(module.parameters())
    assert {parameter.dtype for parameter in parameters} == {torch.bfloat16}
    assert {parameter.device.type for parameter in parameters} == {"cpu"}
    writes = dict(recorder.writes)
    pool_draw = writes.pop(("uniform_", torch.float32))
    assert pool_draw == 1, "one pool of draws per component"
    assert writes.pop(("_to_copy", torch.bfloat16)) == 1, "the pool goes to the device and dtype once"
    assert set(writes) <= {("mul", torch.bfloat16), ("fill_", torch.bfloat16), ("zero_", torch.bfloat16)}, writes
    assert sum(writes.values()) == len(parameters)


def test_weights_follow_the_default_bounds_and_norms_start_as_identity(one_torch_thread: None) -> None:
    module = build_module(SDXL_TURBO, "text_encoder", 2, "cpu", torch.float32)
    named = dict(module.named_modules())  # transformers 4 nests them under text_model, 5 does not
    linear = next(sub for name, sub in named.items() if name.endswith("encoder.layers.0.mlp.fc1"))
    bound = SDXL_TURBO.weight_scale / math.sqrt(linear.weight.shape[1])
    assert float(linear.weight.abs().max()) <= bound
    # Uniform in [-b, b): standard deviation b / sqrt(3), within a few percent for 2.4 million draws.
    assert float(linear.weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert float(linear.bias.abs().max()) <= 1 / math.sqrt(linear.weight.shape[1])
    norm = next(sub for name, sub in named.items() if name.endswith("final_layer_norm"))
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    positions = next(buffer for name, buffer in module.named_buffers() if name.endswith("position_ids"))
    assert positions.flatten().tolist() == list(range(77)), "buffers are made on the device as the library makes them"


def test_weights_are_the_same_draws_in_every_dtype(one_torch_thread: None) -> None:
    """The pool is drawn on the CPU from the seed: another dtype (or device) gets the same weights, rounded."""
    full = build_module(TINY, "unet", 0, "cpu", torch.float32)
    half = build_module(TINY, "unet", 0, "cpu", torch.bfloat16)
    other_seed = build_module(TINY, "unet", 1, "cpu", torch.float32)
    for (name, a), (_, b), (_, c) in zip(
        full.named_parameters(), half.named_parameters(), other_seed.named_parameters(), strict=True
    ):
        assert torch.allclose(a.to(torch.bfloat16).float(), b.float(), rtol=1e-2, atol=1e-3), name
        if a.dim() >= 2:
            assert not torch.equal(a, c), f"{name}: another seed draws other weights"


def test_a_component_larger_than_the_pool_wraps_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = torch.arange(7, dtype=torch.float32)
    window = PoolWindow(pool)
    first, second = torch.empty(5), torch.empty(2, 3)
    window.scaled_into(first, 1.0)
    window.scaled_into(second, 2.0)
    assert first.tolist() == [0, 1, 2, 3, 4]
    assert second.flatten().tolist() == [10, 12, 0, 2, 4, 6]
    # A whole module on a pool far smaller than it: every parameter still written, from the seed.
    monkeypatch.setattr(random_weights, "POOL_LENGTH", 101)
    small = build_module(TINY, "vae", 1, "cpu", torch.float32)
    again = build_module(TINY, "vae", 1, "cpu", torch.float32)
    for (name, a), (_, b) in zip(small.named_parameters(), again.named_parameters(), strict=True):
        assert torch.isfinite(a).all() and torch.equal(a, b), name


def test_parameters_go_to_meta_only_inside_the_build() -> None:
    on_meta = build_random(lambda: torch.nn.Linear(3, 4), "meta", torch.float16, seed=0)
    assert on_meta.weight.device.type == "meta" and on_meta.weight.dtype == torch.float16
    assert torch.nn.Linear(3, 4).weight.device.type == "cpu", "the hook acts inside the build only"


def test_another_thread_builds_real_modules_while_one_builds_on_meta() -> None:
    import threading

    from pytest_sdxl.pipelines.random_weights import parameters_on_meta

    built: list[torch.nn.Linear] = []
    with parameters_on_meta():
        inside = torch.nn.Linear(3, 4)
        other = threading.Thread(target=lambda: built.append(torch.nn.Linear(3, 4)))
        other.start()
        other.join()
    assert inside.weight.device.type == "meta"
    assert built[0].weight.device.type == "cpu", "the other thread's parameters were swapped too"


@pytest.mark.slow
def test_sdxl_turbo_text_encoder_and_vae_give_finite_outputs(one_torch_thread: None) -> None:
    """Full-size components, each larger than the pool (it wraps), stay finite: the encoder in bfloat16.

    The VAE decodes in float32: a bfloat16 decode takes minutes on a CPU.
    """
    encoder = build_module(SDXL_TURBO, "text_encoder", 2, "cpu", torch.bfloat16)
    tokens = torch.randint(0, 49408, (1, 77), generator=torch.Generator().manual_seed(0))
    hidden = encoder(tokens).last_hidden_state
    assert torch.isfinite(hidden).all() and float(hidden.std()) > 0
    vae = build_module(SDXL_TURBO, "vae", 1, "cpu", torch.float32)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    image = vae.decode(latents).sample
    assert torch.isfinite(image).all() and float(image.std()) > 0


def test_process_age_counts_from_the_process_start() -> None:
    """A child that sleeps before importing anything reports an age at least that long, and no more than it lived."""
    script = (
        "import time; time.sleep(0.5)\n"
        "from pytest_sdxl.pipelines.process_age import process_age_s\n"
        "print(process_age_s())\n"
    )
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    lived = time.perf_counter() - started
    age = float(output)
    tick = 0.02  # the kernel's start time is in clock ticks
    assert 0.5 - tick <= age <= lived + tick


def test_only_the_first_timed_round_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_age, "_first_timed_round_s", [])
    assert process_age.first_timed_round_s() is None
    ages = iter([3.0, 9.0])
    monkeypatch.setattr(process_age, "process_age_s", lambda: next(ages))
    process_age.mark_first_timed_round()
    process_age.mark_first_timed_round()
    assert process_age.first_timed_round_s() == 3.0


def test_fan_in_of_linear_conv_and_embedding_weights() -> None:
    assert fan_in(torch.Size([64, 32])) == 32
    assert fan_in(torch.Size([64, 32, 3, 3])) == 288
    assert fan_in(torch.Size([5])) == 1
