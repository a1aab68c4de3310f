#!/usr/bin/env bash
# One two-GPU machine, two calls back to back (the machine stays warm between them), nothing idle:
#   PART=1  the matrix on both GPUs (tools/gpu_workers.sh, -n 2); then one lane per GPU for the compiled
#           variants of the frontier issue: compile_pipeline on GPU 0, torchao quantization composed
#           with compile_unet on GPU 1 (each lane a `run` bounded by LANE_SECONDS, default 220: the two-worker
#           matrix took 315 s on 2026-11-27 and a device call stops at 600 s, results archived or not)
#   PART=2  the matrix on one GPU (-n 1, GPU 0) while `tune` searches on GPU 1 (TUNE_* as in
#           tools/gpu_signals.sh); the two share the host, as the two workers of part 1 did
# Everything lands in $OUT/results.tar.gz (the device tool brings back few files), the summaries on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
WORK=$(mktemp -d)
mkdir -p "$OUT"
STEPS=none OUT="$WORK/install" bash tools/gpu_signals.sh > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
started=$SECONDS
# Archived after each stage: a call stopped at its limit still brings back what finished before it.
pack() { tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude install --exclude 'n[0-9]*' --exclude trace .; }
case "${PART:-1}" in
1)
    WORKERS=2 OUT="$WORK" bash tools/gpu_workers.sh
    pack
    echo "== lanes from $((SECONDS - started)) s"
    GPU=0 STEPS=serving SERVING_RUNS=2 SERVING_SECONDS="${LANE_SECONDS:-220}" OUT="$WORK/gpu0" \
        SERVING_VARIANTS="${LANE0_VARIANTS:-baseline,tiny_vae+compile_pipeline,tiny_vae+compile_pipeline+batch}" \
        bash tools/gpu_signals.sh > "$WORK/gpu0.log" 2>&1 &
    GPU=1 STEPS=serving SERVING_RUNS=2 SERVING_SECONDS="${LANE_SECONDS:-220}" OUT="$WORK/gpu1" \
        SERVING_VARIANTS="${LANE1_VARIANTS:-baseline,quant_int8+compile_unet,quant_fp8+compile_unet}" \
        bash tools/gpu_signals.sh > "$WORK/gpu1.log" 2>&1 &
    wait
    ;;
2)
    WORKERS=1 OUT="$WORK" bash tools/gpu_workers.sh > "$WORK/workers-1.log" 2>&1 &
    GPU=1 STEPS=tune OUT="$WORK/gpu1" bash tools/gpu_signals.sh > "$WORK/gpu1.log" 2>&1 &
    wait
    cat "$WORK/workers-1.log"
    ;;
esac
for log in "$WORK"/gpu*.log; do echo "== $log"; tail -n 60 "$log"; done
echo "== done in $((SECONDS - started)) s"
pack
