"""Where a compiled variant's first generation spends its time, cold or warm: one fresh process per call.

Usage: python lab/compile_breakdown.py --variant tiny_vae+compile_unet --cache DIR --out FILE.json
       (run it two or three times over the same --cache: the first call is cold, the next ones warm)

A compiled variant's first generation stays long even when every compiled graph comes from the
cache (``tiny_vae+compile_unet`` on an H100: tens of seconds warm). This splits that time so the next
lever is chosen by measurement: dynamo's tracing and inductor's loading (torch's own
``compile_times``), the cache hits and misses, and the first three calls (call 1 compiles, call 2
records the CUDA graph trees, call 3 replays). Writes FILE.json atomically and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_sdxl.machine import compile_cache  # noqa: E402
from pytest_sdxl.results.schema import write_atomically  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="random:sdxl-turbo")
    parser.add_argument("--variant", default="tiny_vae+compile_unet")
    parser.add_argument("--cache", required=True, help="compile cache folder shared by the calls")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    compile_cache.activate(Path(arguments.cache))

    import torch
    import torch._dynamo.utils as dynamo_utils

    from pytest_sdxl.machine.devices import synchronize
    from pytest_sdxl.options import DEFAULT_PROMPTS
    from pytest_sdxl.pipelines.sources import image_size_for, load_components
    from pytest_sdxl.variants.assembly import VariantPipeline
    from pytest_sdxl.variants.registry import parse

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    entries_before = compile_cache.entries(Path(arguments.cache))
    started = time.perf_counter()
    components = load_components(arguments.model, device, dtype, "random", "random")
    load_s = time.perf_counter() - started
    composition = parse(arguments.variant)
    started = time.perf_counter()
    pipeline = VariantPipeline(components, composition, image_size_for(argparse.Namespace(size=None), components))
    build_s = time.perf_counter() - started
    calls_s = []
    for _ in range(arguments.calls):
        synchronize(pipeline.device)
        started = time.perf_counter()
        pipeline.generate(list(DEFAULT_PROMPTS[:1]), [0])
        synchronize(pipeline.device)
        calls_s.append(time.perf_counter() - started)
    hits, misses = compile_cache.counter_totals()
    record = {
        "variant": composition.id,
        "model": arguments.model,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cache_entries_before": entries_before,
        "cache": {"hits": hits, "misses": misses, "state": "cold" if entries_before == 0 else "warm"},
        "load_s": load_s,
        "build_s": build_s,
        "calls_s": calls_s,
        # torch's own split of compile time by phase (dynamo tracing, AOT, inductor, cache loading).
        "compile_times": dynamo_utils.compile_times(repr="str", aggregate=True),
    }
    text = json.dumps(record, indent=2, default=str)
    write_atomically(Path(arguments.out), text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
