#!/usr/bin/env bash
# The reference benchmark suite (tests/benchmarks) on this GPU through the pytest plugin: every
# variant timed by pytest-benchmark on warmed pipelines, the notes' tables, and the JSON files.
#
# Run from the repository root on a GPU machine with the wheels installed (torch with CUDA,
# diffusers, pytest-benchmark, this package). Writes under "$OUT" (default ./gpu-out):
#   docs/results/<card>-<date>-plugin.{md,json,png}    the plugin's --sdxl-report (notes' tables, summary)
#   docs/results/<card>-<date>-plugin-benchmark.json   pytest-benchmark's JSON (extra_info, machine_info)
#   docs/results/<card>-<date>-plugin.txt              the terminal output: header, tables, benchmark table
# and copies them into the working tree's docs/results/ too.
#
# Budget: about 5 minutes on an H100, 8 at most: the full SDXL-Turbo architecture with random fp16
# weights is built once (shared by every variant), each variant is built and warmed once, then
# timed over 3 rounds of 4 prompts at 512x512, 1 step. compile_unet (~90 s to compile) comes last,
# under a time limit that keeps the total in budget: if it is cut off, pytest still writes both
# JSON files with the variants measured so far (pytest stops on the interrupt and saves).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu-out}"
BUDGET_SECONDS="${BUDGET_SECONDS:-480}"
# MODEL may be overridden for a dry run of the script on a CPU (random:tiny).
MODEL="${MODEL:-random:sdxl-turbo}"
VARIANTS="${VARIANTS:-baseline,batch,upcast_vae,fp16_vae,tiny_vae,vae_slicing,vae_tiling,cpu_offload,cached_embeds,\
channels_last,fused_qkv,xformers,tome,trace_unet,cuda_graph,tiny_vae+batch,tiny_vae+cached_embeds,compile_unet}"
mkdir -p "$OUT/docs/results" docs/results

CARD=$(python -c "
import torch
from pytest_sdxl.machine.probes import card_slug
print(card_slug(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None))")
STEM="$CARD-$(date -u +%Y-%m-%d)-plugin"
echo "card $CARD, output $OUT, stem $STEM"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

started=$SECONDS
timeout --signal=INT --kill-after=60 "$BUDGET_SECONDS" python -m pytest tests/benchmarks --benchmark-only -p no:cacheprovider -rs \
    --sdxl-model "$MODEL" --sdxl-variants "$VARIANTS" --sdxl-report "$OUT/report" \
    --benchmark-json "$OUT/docs/results/$STEM-benchmark.json" \
    --benchmark-columns=min,median,mean,stddev,iqr,rounds --benchmark-sort=mean \
    > "$OUT/docs/results/$STEM.txt" 2>&1
status=$?
echo "pytest exit status $status after $((SECONDS - started)) s (1 = a variant failed; 2 or 124 = cut off)"
tail -n 40 "$OUT/docs/results/$STEM.txt"

for extension in json md png; do
    [ -f "$OUT/report/results.$extension" ] && cp "$OUT/report/results.$extension" "$OUT/docs/results/$STEM.$extension"
done
cp "$OUT/docs/results/$STEM"* docs/results/ 2>/dev/null || true
ls -l "$OUT/docs/results/"
