"""Apply every variant to a model (random:sdxl-turbo on a GPU) and time one generation each.

Usage: python tools/gpu_variants.py --model random:sdxl-turbo --out docs/results/NAME
Writes NAME.json and NAME.md (atomically). Each variant: build time, first generation (for
compile_unet this includes compiling), then the median of three more generations of one image
(batch variants: four prompts in one call, per image), PSNR against the baseline's image for the
same prompt and seed, and its status (ran, skipped with reason, failed with reason).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.machine.devices import free_memory, is_out_of_memory, synchronize
from pytest_sdxl.pipelines.images import psnr
from pytest_sdxl.pipelines.sources import image_size_for, load_components
from pytest_sdxl.results.schema import write_atomically
from pytest_sdxl.settings import DEFAULT_PROMPTS
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import all_single_variants, parse

EXTRA_COMPOSITIONS = (
    "tiny_vae+batch",
    "tiny_vae+cached_embeds",
    "tiny_vae+channels_last",
    "tiny_vae+cuda_graph+cached_embeds",
    "tiny_vae+cuda_graph+cached_embeds+batch",
    "tiny_vae+compile_unet+cached_embeds",
)


def time_generation(pipeline: VariantPipeline, prompts: list[str], seeds: list[int]) -> tuple[float, object]:
    synchronize(pipeline.device)
    started = time.perf_counter()
    images = pipeline.generate(prompts, seeds)
    return time.perf_counter() - started, images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="random:sdxl-turbo")
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", default="", help="comma-separated compositions instead of all")
    arguments = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    started = time.perf_counter()
    components = load_components(arguments.model, device, dtype, "random", "random")
    load_s = time.perf_counter() - started
    size = image_size_for(argparse.Namespace(size=None), components)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    import diffusers
    import transformers

    header = {
        "date": datetime.date.today().isoformat(),
        "card": card,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "model": arguments.model,
        "size": size,
        "components_load_s": round(load_s, 2),
        "command": " ".join(sys.argv),
    }
    print(json.dumps(header), flush=True)
    names = arguments.only.split(",") if arguments.only else [c.id for c in all_single_variants()]
    if not arguments.only:
        names += list(EXTRA_COMPOSITIONS)
    one_prompt, one_seed = [DEFAULT_PROMPTS[0]], [0]
    batch_prompts, batch_seeds = list(DEFAULT_PROMPTS[:4]), [0, 1, 2, 3]
    reference: dict[str, object] = {}
    rows = []
    for name in names:
        composition = parse(name)
        row: dict[str, object] = {"variant": composition.id, "kind": composition.kind}
        pipeline = None
        try:
            build_started = time.perf_counter()
            pipeline = VariantPipeline(components, composition, size)
            row["build_s"] = round(time.perf_counter() - build_started, 3)
            prompts, seeds = (batch_prompts, batch_seeds) if composition.is_batch else (one_prompt, one_seed)
            first_s, images = time_generation(pipeline, prompts, seeds)
            samples = [time_generation(pipeline, prompts, seeds)[0] / len(prompts) for _ in range(3)]
            row.update(
                status="ran",
                first_gen_s=round(first_s, 3),
                gen_ms_per_image=round(1000 * statistics.median(samples), 1),
            )
            row["peak_gpu_mem_gb"] = (
                round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None
            )
            key = ",".join(prompts)
            if composition.id == "baseline" or (composition.id == "batch" and key not in reference):
                reference[key] = images
            if key in reference:
                value = psnr(reference[key], images)
                row["psnr_db"] = "inf" if value == float("inf") else round(value, 1)
        except VariantUnavailable as error:
            row.update(status="skipped", reason=str(error))
        except Exception as error:
            kind = "out of memory" if is_out_of_memory(error) else type(error).__name__
            row.update(
                status="failed",
                reason=f"{kind}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}",
            )
            traceback.print_exc()
        finally:
            if pipeline is not None:
                pipeline.close()
            del pipeline
            free_memory(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
        print(json.dumps(row), flush=True)
        rows.append(row)

    out = Path(arguments.out)
    write_atomically(out.with_suffix(".json"), json.dumps({"machine": header, "variants": rows}, indent=2))
    lines = [
        f"# Every variant on {arguments.model}, {size}x{size}, 1 step, guidance 0",
        "",
        f"Card: {card}; date {header['date']}; torch {header['torch']} (CUDA {header['cuda']}), "
        f"diffusers {header['diffusers']}, transformers {header['transformers']}, Python {header['python']}.",
        f"Command: `{header['command']}`",
        "",
        "| variant | kind | status | build s | first gen s | gen ms/image (median of 3) | PSNR vs baseline dB "
        "| peak GPU GB | reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| {variant} | {kind} | {status} | {build} | {first} | {gen} | {psnr} | {mem} | {reason} |".format(
                variant=row["variant"],
                kind=row["kind"],
                status=row["status"],
                build=row.get("build_s", ""),
                first=row.get("first_gen_s", ""),
                gen=row.get("gen_ms_per_image", ""),
                psnr=row.get("psnr_db", ""),
                mem=row.get("peak_gpu_mem_gb", ""),
                reason=str(row.get("reason", "")).replace("|", "/"),
            )
        )
    write_atomically(out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
