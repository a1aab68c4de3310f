#!/usr/bin/env bash
# The notes' eight variants measured on this GPU, plus the harness's own cost.
#
# Run from the repository root on a GPU machine with the wheels installed (torch with CUDA,
# diffusers, this package). Writes under "$OUT" (default: a new temporary folder):
#   docs/results/<card>-<date>.{md,json,png}   the notes' protocol over the eight variants
#   docs/results/<card>-<date>-overhead.{txt,json}   protocol vs raw loop, stage timer on vs off
#   logs, nvidia-smi and the GPU timing tests' output
# and copies docs/results/* into the working tree's docs/results/ too.
#
# Budget: about 8 minutes on an H100. Seven variants x 3 runs (each a fresh build of the full
# SDXL-Turbo architecture, random fp16 weights, 512x512, 1 step, 1 + 4 prompts) come first, then
# the overhead measurement and the GPU timing tests, and compile_unet last (3 runs, each compiling
# afresh: ~90 s cold, less once inductor's on-disk cache is warm) under a timeout that keeps the
# total in budget. If compile_unet is cut off, the report holds the other seven and says so.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$(mktemp -d -t pytest-sdxl-gpu.XXXXXX)}"
BUDGET_SECONDS="${BUDGET_SECONDS:-480}"
# MODEL and SIZE may be overridden for a dry run of the script on a CPU (random:tiny, 64).
MODEL="${MODEL:-random:sdxl-turbo}"
SIZE="${SIZE:-512}"
COMMON=(--model "$MODEL" --size "$SIZE" --steps 1 --runs 3)
mkdir -p "$OUT/docs/results" docs/results
started=$SECONDS

CARD=$(python -c "
import torch
from pytest_sdxl.machine.probes import card_slug
print(card_slug(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None))")
DATE=$(date -u +%Y-%m-%d)
STEM="$CARD-$DATE"
echo "card $CARD, date $DATE, output $OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python -c "import json; from pytest_sdxl.machine.probes import machine_info; print(json.dumps(machine_info(), indent=1))" \
    > "$OUT/machine.json"

echo "== 1. seven variants, 3 runs each ($((SECONDS - started)) s)"
python -m pytest_sdxl run "${COMMON[@]}" \
    --variants baseline,batch,upcast_vae,fp16_vae,tiny_vae,cpu_offload,vae_slicing \
    --report "$OUT/main" > "$OUT/run-main.log" 2>&1
echo "run exit status $? (1 = a variant failed; see the log)"
tail -n 60 "$OUT/run-main.log"

echo "== 2. harness overhead with tiny_vae ($((SECONDS - started)) s)"
python -m pytest_sdxl overhead --model "$MODEL" --size "$SIZE" --variant tiny_vae --rounds 20 \
    --json "$OUT/docs/results/$STEM-overhead.json" 2>"$OUT/overhead.log" | tee "$OUT/docs/results/$STEM-overhead.txt"

echo "== 3. GPU timing tests: clock waits for CUDA work, stage timer costs < 2% ($((SECONDS - started)) s)"
python -m pytest -q -p no:cacheprovider tests/test_timing.py -k "cuda or gpu" -rs 2>&1 | tee "$OUT/test-timing-gpu.log"

remaining=$((BUDGET_SECONDS - (SECONDS - started)))
limit=$((remaining > 150 ? remaining : 150))
echo "== 4. compile_unet, 3 runs, at most $limit s ($((SECONDS - started)) s)"
timeout --signal=INT "$limit" python -m pytest_sdxl run "${COMMON[@]}" --variants compile_unet \
    --report "$OUT/compile" > "$OUT/run-compile.log" 2>&1
echo "compile run exit status $? (124 or 130 = cut off by the time limit)"
tail -n 20 "$OUT/run-compile.log"

echo "== 5. one report over all eight ($((SECONDS - started)) s)"
python - "$OUT" <<'PYTHON'
import sys
from pathlib import Path

from pytest_sdxl.results.schema import VariantRecord, load_results, save_results

out = Path(sys.argv[1])
merged = load_results(out / "main" / "results.json")
compiled = out / "compile" / "results.json"
if compiled.is_file():
    merged.variants += load_results(compiled).variants
else:
    merged.variants.append(
        VariantRecord("compile_unet", "exact", "failed", "not measured: cut off by the script's time budget")
    )
merged.settings["variants"] = [record.variant for record in merged.variants]
save_results(merged, out / "merged" / "results.json")
PYTHON
python -m pytest_sdxl report "$OUT/merged/results.json"
for extension in json md png; do
    cp "$OUT/merged/results.$extension" "$OUT/docs/results/$STEM.$extension"
done
cp "$OUT/docs/results/"* docs/results/ 2>/dev/null || true
echo "done in $((SECONDS - started)) s: $OUT/docs/results/$STEM.{md,json,png} and $STEM-overhead.{txt,json}"
