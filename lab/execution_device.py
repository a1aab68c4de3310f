"""What diffusers' ``_execution_device`` costs each SDXL pipeline call, and the call with it pinned.

``StableDiffusionXLPipeline.__call__`` reads ``self._execution_device`` once a call; the property walks
every submodule of every component (about 2,700 on SDXL) looking for offloading hooks, then
``self.device`` walks them again. This script times one access, then pipeline calls on
``random:sdxl-turbo`` (512x512, one step) in alternating blocks: the property as diffusers has it, and
pinned to the pipeline's device (a class-level property returning it). Usage:

  python lab/execution_device.py [--device cuda] [--blocks 6] [--calls 10] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import timeit
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--blocks", type=int, default=6, help="blocks of each kind, alternating")
    parser.add_argument("--calls", type=int, default=10, help="pipeline calls a block")
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args()

    import torch
    from diffusers import StableDiffusionXLPipeline

    from pytest_sdxl.machine.devices import synchronize
    from pytest_sdxl.pipelines.sources import load_components

    device = torch.device(arguments.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    modules = load_components("random:sdxl-turbo", device, dtype).modules
    names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
    pipe = StableDiffusionXLPipeline(**{name: modules[name] for name in names})
    pipe.set_progress_bar_config(disable=True)
    counted = {name: sum(1 for _ in module.modules()) for name, module in modules.items() if hasattr(module, "modules")}

    access_ms = min(timeit.repeat(lambda: pipe._execution_device, number=20, repeat=5)) / 20 * 1000
    original = StableDiffusionXLPipeline._execution_device
    pinned = property(lambda self: device)

    def call() -> float:
        synchronize(device)
        started = time.perf_counter()
        pipe("a photo of a cat", num_inference_steps=1, guidance_scale=0.0, height=512, width=512)
        synchronize(device)
        return time.perf_counter() - started

    for _ in range(3):  # warm-up: cuDNN's choices, the allocator
        call()
    seconds: dict[str, list[float]] = {"diffusers": [], "pinned": []}
    try:
        for block in range(2 * arguments.blocks):
            kind = ("diffusers", "pinned", "pinned", "diffusers")[block % 4]  # ABBA
            StableDiffusionXLPipeline._execution_device = original if kind == "diffusers" else pinned
            seconds[kind] += [call() for _ in range(arguments.calls)]
    finally:
        StableDiffusionXLPipeline._execution_device = original
    medians = {kind: statistics.median(values) * 1000 for kind, values in seconds.items()}
    minima = {kind: min(values) * 1000 for kind, values in seconds.items()}
    summary = {
        "modules": counted,
        "execution_device_access_ms": access_ms,
        "median_call_ms": medians,
        "min_call_ms": minima,
        "pinned_over_diffusers_median": medians["pinned"] / medians["diffusers"],
        "pinned_over_diffusers_min": minima["pinned"] / minima["diffusers"],
        "calls": {kind: len(values) for kind, values in seconds.items()},
        "seconds": seconds,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
    }
    print(json.dumps({key: value for key, value in summary.items() if key != "seconds"}, indent=1))
    if arguments.out is not None:
        arguments.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
