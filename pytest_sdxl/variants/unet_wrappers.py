"""Stand-ins for the UNet (or another model) that run a faster callable: a trace, a CUDA graph, a compile.

A stand-in looks like the UNet to the pipeline (config, dtype, add_embedding and the rest come
from the wrapped UNet) and builds its fast path lazily, on the first call with each set of input
shapes, because only then are the shapes known.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

ShapeKey = tuple[tuple[tuple[int, ...], torch.dtype], ...]


class SdxlUNetAdapter(torch.nn.Module):
    """The SDXL UNet call with plain tensor inputs and a tensor output, as tracing needs."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_embeds: torch.Tensor,
        time_ids: torch.Tensor,
    ) -> torch.Tensor:
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        output: torch.Tensor = self.unet(
            sample, timestep, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added, return_dict=False
        )[0]
        return output


class ForwardingModule(torch.nn.Module):
    """Wraps a module (``self.unet``) whose attributes, dtype and device the pipeline keeps reading."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["unet"], name)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device


class UNetStandIn(ForwardingModule):
    """Base class: forwards attribute look-ups to the wrapped UNet and dispatches calls by shape."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__(unet)
        self.adapter = SdxlUNetAdapter(unet)
        self.fast_paths: dict[ShapeKey, Any] = {}
        self.fast_calls = 0

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        timestep_cond: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        return_dict: bool = True,
        **extra: Any,
    ) -> Any:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        simple_call = timestep_cond is None and not cross_attention_kwargs and not extra and added_cond_kwargs
        if not simple_call:
            # Anything beyond the plain SDXL call (LoRA scales, guidance embeddings) runs eagerly.
            return self.unet(
                sample,
                timestep,
                encoder_hidden_states=encoder_hidden_states,
                timestep_cond=timestep_cond,
                cross_attention_kwargs=cross_attention_kwargs,
                added_cond_kwargs=added_cond_kwargs,
                return_dict=return_dict,
                **extra,
            )
        assert added_cond_kwargs is not None
        if not isinstance(timestep, torch.Tensor):
            timestep = torch.tensor(timestep, device=sample.device)
        inputs = (
            sample,
            timestep.to(sample.device),
            encoder_hidden_states,
            added_cond_kwargs["text_embeds"],
            added_cond_kwargs["time_ids"],
        )
        key: ShapeKey = tuple((tuple(tensor.shape), tensor.dtype) for tensor in inputs)
        if key not in self.fast_paths:
            self.fast_paths[key] = self.build_fast_path(inputs)
        self.fast_calls += 1
        output = self.run_fast_path(self.fast_paths[key], inputs)
        return UNet2DConditionOutput(sample=output) if return_dict else (output,)

    def build_fast_path(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        raise NotImplementedError

    def run_fast_path(self, fast_path: Any, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError


class TracedUNet(UNetStandIn):
    """The UNet traced with torch.jit.trace, one trace per input shape."""

    def build_fast_path(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        with warnings.catch_warnings(), torch.no_grad():
            # Tracing warns about every Python branch on tensor values; the SDXL call takes one path.
            warnings.simplefilter("ignore")
            return torch.jit.trace(self.adapter, inputs, check_trace=False)

    def run_fast_path(self, fast_path: Any, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with torch.no_grad():
            output: torch.Tensor = fast_path(*inputs)
        return output


class CapturedGraph:
    """One CUDA graph of the UNet with its static input and output buffers."""

    def __init__(self, adapter: torch.nn.Module, inputs: tuple[torch.Tensor, ...], warmup_calls: int = 3) -> None:
        self.static_inputs = tuple(tensor.clone() for tensor in inputs)
        side_stream = torch.cuda.Stream()
        side_stream.wait_stream(torch.cuda.current_stream())
        # Warm-up on a side stream, as capture requires: lazy initialisations must not be captured.
        with torch.cuda.stream(side_stream), torch.no_grad():
            for _ in range(warmup_calls):
                adapter(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side_stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_output: torch.Tensor = adapter(*self.static_inputs)

    def replay(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        for static, tensor in zip(self.static_inputs, inputs, strict=True):
            static.copy_(tensor)
        self.graph.replay()
        # A copy, so that the next replay cannot overwrite what the scheduler still holds.
        return self.static_output.clone()


class GraphedUNet(UNetStandIn):
    """The UNet step captured in a CUDA graph and replayed, one graph per input shape."""

    def build_fast_path(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        return CapturedGraph(self.adapter, inputs)

    def run_fast_path(self, fast_path: Any, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        graph: CapturedGraph = fast_path
        return graph.replay(inputs)


class CallReplacedUNet(ForwardingModule):
    """The UNet with its call replaced by another callable (a budgeted compile); every attribute stays the UNet's."""

    def __init__(self, unet: torch.nn.Module, call: Any) -> None:
        super().__init__(unet)
        self.replacement = call

    def forward(self, *arguments: Any, **keywords: Any) -> Any:
        return self.replacement(*arguments, **keywords)


def clone_tensors(value: Any) -> Any:
    """The value with every tensor in it cloned (tensors, tuples, lists and ModelOutput-like dictionaries)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(clone_tensors(item) for item in value)
    if isinstance(value, dict):
        # transformers' ModelOutput keeps items and attributes in step through __setitem__.
        for key in list(value.keys()):
            value[key] = clone_tensors(value[key])
    return value
