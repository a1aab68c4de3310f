"""``graph_pipeline``: the whole generation captured in one CUDA graph per batch size, replayed with static inputs.

What runs on the host each call stays outside the graph: tokenizing the prompts and drawing the
initial noise from the caller's CPU generators (exactly as the pipeline does, so the images match the
baseline's). Inside the graph: both text encoders, the scheduler's input scaling, one UNet step, the
scheduler step and the VAE decode. A call that brings its prompt embeddings instead of text
(``cached_embeds``) gets a graph without the text encoders, fed the embeddings as static inputs. Each
batch size, image size and kind of input gets its own graph, captured on its first call after two
warm-up runs on a side stream; all graphs share one memory pool, safe because each call's image is
copied out before another graph replays.

The tensor work mirrors ``StableDiffusionXLPipeline.__call__`` of diffusers 0.42 for one step without
guidance; the CPU tests run it uncaptured against the pipeline itself, so a drift in diffusers shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.variants.definition import Context

# The pipeline call arguments this replacement understands; anything else is refused with its name.
SUPPORTED = {
    "prompt",
    "prompt_embeds",
    "pooled_prompt_embeds",
    "generator",
    "num_inference_steps",
    "guidance_scale",
    "height",
    "width",
    "output_type",
}


def graph_the_generation(pipe: Any, context: Context) -> None:
    replace_call(pipe, capture=True)


def replace_call(pipe: Any, capture: bool) -> GenerationGraphs:
    """Make ``pipe(...)`` run through captured generations; ``capture=False`` runs the same work uncaptured (tests)."""
    import torch

    if pipe.text_encoder is None or pipe.text_encoder_2 is None:
        raise VariantUnavailable("graph_pipeline needs both SDXL text encoders in the pipeline")
    upcast = pipe.vae.dtype == torch.float16 and bool(getattr(pipe.vae.config, "force_upcast", False))
    if upcast:
        # diffusers casts the VAE up and back around every decode; a capture cannot hold that cast, so the
        # private copy stays in float32: the same weights, the same float32 decode.
        from pytest_sdxl.machine.devices import cast

        pipe.vae = cast(pipe.vae, torch.float32)
    graphs = GenerationGraphs(pipe=pipe, capture=capture, upcast_latents=upcast)
    pipe.generation_graphs = graphs
    # Python looks __call__ up on the type: a subclass of the pipeline's own class, for this object only.
    base = type(pipe)
    pipe.__class__ = type(f"GraphedGeneration{base.__name__}", (base,), {"__call__": graphed_call})
    return graphs


def graphed_call(pipe: Any, prompt: Any = None, **arguments: Any) -> Any:
    unsupported = sorted(name for name, value in arguments.items() if name not in SUPPORTED and value is not None)
    if unsupported:
        raise VariantUnavailable(f"graph_pipeline replays a plain text-to-image call; it cannot take {unsupported}")
    steps = arguments.get("num_inference_steps", 50)
    guidance = arguments.get("guidance_scale", 5.0)
    if steps != 1:
        raise VariantUnavailable(f"graph_pipeline captures exactly one denoising step; {steps} steps were asked for")
    if guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None:
        raise VariantUnavailable(f"graph_pipeline captures no classifier-free guidance; guidance_scale is {guidance}")
    conditioning = prompt_conditioning(prompt, arguments.get("prompt_embeds"), arguments.get("pooled_prompt_embeds"))
    height = arguments.get("height") or pipe.default_sample_size * pipe.vae_scale_factor
    width = arguments.get("width") or pipe.default_sample_size * pipe.vae_scale_factor
    graphs: GenerationGraphs = pipe.generation_graphs
    image = graphs.generate(conditioning, arguments.get("generator"), int(height), int(width))
    output_type = arguments.get("output_type", "pil")
    from diffusers.pipelines.stable_diffusion_xl.pipeline_output import StableDiffusionXLPipelineOutput

    return StableDiffusionXLPipelineOutput(images=pipe.image_processor.postprocess(image, output_type=output_type))


@dataclass(frozen=True)
class PromptEmbeddings:
    """A call's prompts as embeddings already made (``cached_embeds``): per token, and pooled."""

    per_token: Any
    pooled: Any

    @property
    def batch(self) -> int:
        return int(self.per_token.shape[0])


def prompt_conditioning(prompt: Any, prompt_embeds: Any, pooled_prompt_embeds: Any) -> list[str] | PromptEmbeddings:
    """The call's prompts as text, or as embeddings with their pooled part; VariantUnavailable for anything else."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
    if prompt_embeds is None:
        if not prompts:
            raise VariantUnavailable("graph_pipeline needs prompts as text, or prompt_embeds with pooled_prompt_embeds")
        return prompts
    if prompts:
        raise VariantUnavailable("graph_pipeline takes prompts as text or as prompt_embeds, not both")
    if pooled_prompt_embeds is None:
        raise VariantUnavailable(
            "graph_pipeline needs pooled_prompt_embeds beside prompt_embeds (SDXL's added text condition)"
        )
    return PromptEmbeddings(prompt_embeds, pooled_prompt_embeds)


@contextmanager
def run_uncaptured(pipe: Any) -> Iterator[None]:
    """Calls run the generation's work directly for the duration, not the captured graph.

    A FLOP counter sees a graph replay as no work at all; the same work run directly is what it can
    count. A pipeline without ``graph_pipeline`` is left as it is.
    """
    graphs: GenerationGraphs | None = getattr(pipe, "generation_graphs", None)
    if graphs is None:
        yield
        return
    graphs.uncaptured = True
    try:
        yield
    finally:
        graphs.uncaptured = False


@dataclass
class GenerationGraphs:
    """One captured generation per (batch size, height, width, input), built on first use.

    The input is ``"text"`` (token ids: the graph runs both text encoders) or ``"embeddings"``.
    """

    pipe: Any
    capture: bool
    upcast_latents: bool
    graphs: dict[tuple[int, int, int, str], CapturedGeneration] = field(default_factory=dict)
    pool: Any = None
    replays: int = 0
    # Set by run_uncaptured: a call runs its graph's work directly instead of replaying it.
    uncaptured: bool = False

    def generate(self, conditioning: list[str] | PromptEmbeddings, generator: Any, height: int, width: int) -> Any:
        from diffusers.utils.torch_utils import randn_tensor

        embedded, prompts = (conditioning, []) if isinstance(conditioning, PromptEmbeddings) else (None, conditioning)
        batch = embedded.batch if embedded is not None else len(prompts)
        key = (batch, height, width, "text" if embedded is None else "embeddings")
        if key not in self.graphs:
            if self.capture and self.pool is None:
                import torch

                self.pool = torch.cuda.graph_pool_handle()
            static_generation = StaticGeneration(self.pipe, batch, height, width, self.upcast_latents, embedded)
            self.graphs[key] = CapturedGeneration(static_generation)
            self.graphs[key].build(self.capture, self.pool)
        captured = self.graphs[key]
        static = captured.static
        if embedded is not None:
            static.fill_embeddings(embedded)
        else:
            static.fill_token_ids(prompts)
        # The same draw as prepare_latents: one CPU generator per image, in the text encoders' precision.
        noise = randn_tensor(static.noise.shape, generator=generator, device=static.device, dtype=static.noise.dtype)
        static.noise.copy_(noise)
        if self.uncaptured:
            # Running directly rebinds the output to a fresh tensor; later replays write the captured one.
            graph_output = static.image
            static.run()
            image, static.image = static.image, graph_output
            return image
        captured.replay()
        self.replays += 1
        return static.image


class CapturedGeneration:
    """A CUDA graph of one StaticGeneration, or the same work run directly when not capturing."""

    def __init__(self, static: StaticGeneration) -> None:
        self.static = static
        self.graph: Any = None

    def build(self, capture: bool, pool: Any) -> None:
        if not capture:
            return
        import torch

        side_stream = torch.cuda.Stream()
        side_stream.wait_stream(torch.cuda.current_stream())
        # Lazy initialisations (cuBLAS handles, attention workspaces) must happen before the capture.
        with torch.cuda.stream(side_stream):
            for _ in range(2):
                self.static.run()
        torch.cuda.current_stream().wait_stream(side_stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.static.run()

    def replay(self) -> None:
        if self.graph is None:
            self.static.run()
        else:
            self.graph.replay()


class StaticGeneration:
    """Static inputs of one batch and image size, and the tensor work of one generation on them."""

    def __init__(
        self,
        pipe: Any,
        batch: int,
        height: int,
        width: int,
        upcast_latents: bool,
        example_embeddings: PromptEmbeddings | None = None,
    ) -> None:
        import torch

        self.pipe = pipe
        self.upcast_latents = upcast_latents
        self.device = pipe._execution_device
        encoder_2 = pipe.text_encoder_2
        self.embeds_dtype = encoder_2.dtype
        # Token ids when the graph runs the text encoders; the embeddings themselves when the call brings them.
        self.input_ids: tuple[Any, ...] = ()
        self.embeddings: PromptEmbeddings | None = None
        if example_embeddings is None:
            self.input_ids = tuple(
                torch.zeros(batch, tokenizer.model_max_length, dtype=torch.long, device=self.device)
                for tokenizer in (pipe.tokenizer, pipe.tokenizer_2)
            )
        else:
            self.embeddings = PromptEmbeddings(
                *(
                    torch.zeros_like(tensor, dtype=self.embeds_dtype, device=self.device)
                    for tensor in (example_embeddings.per_token, example_embeddings.pooled)
                )
            )
        scale = pipe.vae_scale_factor
        shape = (batch, pipe.unet.config.in_channels, height // scale, width // scale)
        self.noise = torch.zeros(shape, dtype=self.embeds_dtype, device=self.device)
        # A scheduler of its own: the graph holds its timestep tensor, which no later set_timesteps may replace.
        self.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        self.scheduler.set_timesteps(1, device=self.device)
        self.timestep = self.scheduler.timesteps[0]
        time_ids = pipe._get_add_time_ids(
            (height, width),
            (0, 0),
            (height, width),
            dtype=self.embeds_dtype,
            text_encoder_projection_dim=encoder_2.config.projection_dim,
        )
        self.time_ids = time_ids.to(self.device).repeat(batch, 1)
        self.image: Any = None
        self.latents_statistics: tuple[Any, ...] | None = None

    def fill_token_ids(self, prompts: list[str]) -> None:
        for buffer, tokenizer in zip(self.input_ids, (self.pipe.tokenizer, self.pipe.tokenizer_2), strict=True):
            ids = tokenizer(
                prompts,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            buffer.copy_(ids)

    def fill_embeddings(self, embeddings: PromptEmbeddings) -> None:
        if self.embeddings is None:
            raise ValueError("this generation was built for token ids, not for prompt embeddings")
        self.embeddings.per_token.copy_(embeddings.per_token)
        self.embeddings.pooled.copy_(embeddings.pooled)

    def encode(self) -> tuple[Any, Any]:
        """Per-token and pooled prompt embeddings, as the pipeline's encode_prompt makes them for one step."""
        import torch

        if self.embeddings is not None:
            return self.embeddings.per_token, self.embeddings.pooled
        pipe = self.pipe
        hidden_states, pooled = [], None
        for ids, encoder in zip(self.input_ids, (pipe.text_encoder, pipe.text_encoder_2), strict=True):
            output = encoder(ids, output_hidden_states=True)
            if pooled is None and output[0].ndim == 2:
                pooled = output[0]
            hidden_states.append(output.hidden_states[-2])
        return torch.concat(hidden_states, dim=-1).to(dtype=self.embeds_dtype, device=self.device), pooled

    def run(self) -> None:
        pipe = self.pipe
        # Host-side state only: step() would otherwise look the timestep up with a synchronizing nonzero().
        self.scheduler._step_index = None
        self.scheduler.set_begin_index(0)
        prompt_embeds, pooled = self.encode()
        latents = self.noise * self.scheduler.init_noise_sigma
        model_input = self.scheduler.scale_model_input(latents, self.timestep)
        noise_prediction = pipe.unet(
            model_input,
            self.timestep,
            encoder_hidden_states=prompt_embeds,
            timestep_cond=None,
            cross_attention_kwargs=None,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": self.time_ids},
            return_dict=False,
        )[0]
        latents = self.scheduler.step(noise_prediction, self.timestep, latents, return_dict=False)[0]
        self.image = self.decode(latents)

    def decode(self, latents: Any) -> Any:
        import torch

        vae = self.pipe.vae
        if self.upcast_latents:
            latents = latents.to(torch.float32)
        config = vae.config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is not None and std is not None:
            if self.latents_statistics is None:
                # Made on the first (uncaptured warm-up) run: a host-to-device copy cannot be captured.
                self.latents_statistics = tuple(
                    torch.tensor(values).view(1, 4, 1, 1).to(latents.device, latents.dtype) for values in (mean, std)
                )
            mean_tensor, std_tensor = self.latents_statistics
            latents = latents * std_tensor / config.scaling_factor + mean_tensor
        else:
            latents = latents / config.scaling_factor
        return vae.decode(latents, return_dict=False)[0]
