"""GPU memory that belongs to a variant: unused shared components, and private copies made on their device.

No GPU here: the accounting is checked on the CPU (``unused_bytes_on``), and copies to another
device go to 'meta', where recording every tensor an operation creates shows which device each
allocation lands on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_sdxl.pipelines.sources import Components, load_components
from pytest_sdxl.variants.assembly import VariantPipeline, copy_to, storages_on, unused_bytes
from pytest_sdxl.variants.registry import Composition, parse

CPU = torch.device("cpu")
META = torch.device("meta")
SIZE = 64


def module_bytes(module: Any) -> int:
    return sum(storages_on([module], CPU).values())


def unused_extra_vae_bytes(components: Components, pipeline: VariantPipeline) -> int:
    """Replacement VAEs loaded by earlier tests stay resident; the one the pipeline decodes with is used."""
    return sum(module_bytes(vae) for vae in components.loaded_extra_vaes() if vae is not pipeline.pipe.vae)


@pytest.mark.parametrize("spec", ["baseline", "cached_embeds", "batch", "trace_unet", "compile_unet"])
def test_variants_that_share_every_component_leave_nothing_unused(spec: str, components: Components) -> None:
    """cached_embeds still holds the text encoders; the UNet stand-ins and torch.compile wrap the shared UNet."""
    pipeline = VariantPipeline(components, parse(spec), SIZE)
    assert pipeline.unused_bytes_on(CPU) == unused_extra_vae_bytes(components, pipeline)


@pytest.mark.parametrize(("spec", "replaced"), [("tiny_vae", "vae"), ("fp16_vae", "vae"), ("channels_last", "unet")])
def test_a_replaced_or_copied_component_is_unused(spec: str, replaced: str, components: Components) -> None:
    pipeline = VariantPipeline(components, parse(spec), SIZE)
    expected = module_bytes(components.modules[replaced]) + unused_extra_vae_bytes(components, pipeline)
    assert pipeline.unused_bytes_on(CPU) == expected


def test_upcast_vae_leaves_the_half_precision_original_unused() -> None:
    half = load_components("random:tiny", CPU, torch.bfloat16)
    pipeline = VariantPipeline(half, parse("upcast_vae"), SIZE)
    assert pipeline.unused_bytes_on(CPU) == module_bytes(half.modules["vae"]) > 0


def test_unused_device_bytes_counts_gpu_memory_only(components: Components) -> None:
    assert VariantPipeline(components, parse("tiny_vae"), SIZE).unused_device_bytes() == 0


def test_storages_are_counted_once_and_by_device() -> None:
    first, second, elsewhere = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4, device=META)
    tied = torch.nn.Linear(4, 4)
    tied.weight = second.weight  # the same storage reached through two modules
    wrapper = torch.nn.Sequential(first)  # used through a wrapper, as torch.compile and the stand-ins do
    assert unused_bytes([first, second, tied, elsewhere], [wrapper], CPU) == module_bytes(second) + 4 * 4
    assert unused_bytes([first, second], [first, second], CPU) == 0
    assert unused_bytes([elsewhere], [], META) == 0, "meta tensors have no storage to count"


def test_wrapper_subclass_weights_count_their_inner_tensors() -> None:
    """A quantized weight is a wrapper with no storage of its own (torchao's int8 and float8 tensors)."""
    from torch.testing._internal.two_tensor import TwoTensor

    linear = torch.nn.Linear(4, 4, bias=False)
    inner_a, inner_b = torch.randn(4, 4), torch.randn(4, 4)
    linear.weight = torch.nn.Parameter(TwoTensor(inner_a, inner_b), requires_grad=False)
    with pytest.raises(RuntimeError, match="invalid python storage"):
        linear.weight.untyped_storage().data_ptr()  # why the wrapper cannot be asked directly
    inner_pointers = {inner.untyped_storage().data_ptr() for inner in (inner_a, inner_b)}
    assert set(storages_on([linear], CPU)) == inner_pointers
    assert module_bytes(linear) == 2 * 4 * 4 * 4
    assert unused_bytes([linear], [torch.nn.Sequential(linear)], CPU) == 0


class CreatedDevices(TorchDispatchMode):
    """Records the device of every tensor an operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        outputs = result if isinstance(result, (tuple, list)) else [result]
        self.devices.extend(output.device.type for output in outputs if isinstance(output, torch.Tensor))
        return result


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "text_encoder_2"])
def test_copy_to_allocates_on_the_target_device_only(component: str, components: Components) -> None:
    original = components.modules[component]
    with CreatedDevices() as created:
        copied = copy_to(original, META)
    assert created.devices and set(created.devices) == {"meta"}, "a tensor was created where the original lives"
    assert {tensor.device for tensor in [*copied.parameters(), *copied.buffers()]} == {META}
    assert {tensor.device for tensor in [*original.parameters(), *original.buffers()]} == {CPU}


def test_copy_to_is_equal_and_independent(components: Components) -> None:
    original = components.modules["unet"]
    copied = copy_to(original, CPU)
    assert type(copied) is type(original)
    originals, copies = original.state_dict(), copied.state_dict()
    assert originals.keys() == copies.keys()
    assert all(torch.equal(originals[key], copies[key]) for key in originals)
    assert not set(storages_on([original], CPU)) & set(storages_on([copied], CPU))
    assert [parameter.requires_grad for parameter in copied.parameters()] == [
        parameter.requires_grad for parameter in original.parameters()
    ]
    with torch.no_grad():
        copied.conv_in.weight.add_(1.0)
    assert not torch.equal(original.conv_in.weight, copied.conv_in.weight)


def allow_every_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    """cpu_offload needs CUDA; the assembly's device handling is what these tests check."""
    monkeypatch.setattr(Composition, "unmet_requirements", lambda self, device_type, dtype_name: [])


def test_cpu_offload_copies_land_on_the_cpu_then_offload_to_the_components_device(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import StableDiffusionXLPipeline

    # The components claim to live on another device (meta); their tensors are on the CPU.
    elsewhere = dataclasses.replace(components, device=META)
    allow_every_variant(monkeypatch)
    offloads: list[dict[str, Any]] = []
    monkeypatch.setattr(
        StableDiffusionXLPipeline, "enable_model_cpu_offload", lambda pipe, **keywords: offloads.append(keywords)
    )
    pipe = VariantPipeline(elsewhere, parse("cpu_offload"), SIZE).pipe
    assert offloads == [{"gpu_id": 0, "device": "meta"}]
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module, shared = getattr(pipe, name), components.modules[name]
        assert module is not shared, name
        assert {parameter.device for parameter in module.parameters()} == {CPU}, name
        assert not set(storages_on([module], CPU)) & set(storages_on([shared], CPU)), name


def test_other_private_copies_land_on_the_components_device(components: Components) -> None:
    elsewhere = dataclasses.replace(components, device=META)
    pipe = VariantPipeline(elsewhere, parse("channels_last"), SIZE).pipe
    assert {parameter.device for parameter in pipe.unet.parameters()} == {META}
    assert pipe.vae is components.modules["vae"], "a component the variant does not change stays shared"
