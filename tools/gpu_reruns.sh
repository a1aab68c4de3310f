#!/usr/bin/env bash
# Unchanged reruns (issue 8): two sessions of `python -m pytest_sdxl run --runs RUNS` over VARIANTS, nothing
# changed between them, then `compare` of the two. Every variant should come out clean.
#
# Resumable across device calls: RERUN_FROM=DIR (a folder carried in the tree, holding an earlier call's
# session1/results.json and maybe session2/results.json) goes on where that call stopped (`run --resume`);
# a session already complete is not run again. RERUN_SECONDS bounds the whole script: each session gets what
# is left, and `run` saves results.json after each variant, so a cut session keeps what it finished.
# Writes $OUT/session{1,2}/results.{json,md} and $OUT/compare.md. Run from the repository root on a GPU
# machine, after tools/gpu_signals.sh has installed the wheels (STEPS=none); tools/gpu_side_by_side.sh's
# EXTRA lane is one place to run it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
MODEL="${MODEL:-random:sdxl-turbo}"
VARIANTS="${VARIANTS:-quant_int8,quant_fp8,tiny_vae+batch,cpu_offload,compile_kernels,quant_int8+compile_unet,quant_fp8+compile_unet}"
export PYTHONPATH="$PWD:/tmp/site-project:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
deadline=$((SECONDS + ${RERUN_SECONDS:-540}))

complete() {
    # A results.json that exists and was not cut short: every variant asked for was measured or skipped.
    [ -e "$1" ] && python3 -c "
import json, sys
data = json.load(open(sys.argv[1]))
sys.exit(1 if data.get('partial') or data.get('not_measured') else 0)" "$1"
}

for session in 1 2; do
    report="$OUT/session$session"
    mkdir -p "$report"
    if [ -n "${RERUN_FROM:-}" ] && [ -e "$RERUN_FROM/session$session/results.json" ]; then
        cp "$RERUN_FROM/session$session/results.json" "$report/results.json"
    fi
    if complete "$report/results.json"; then
        echo "== session $session: complete already"
        continue
    fi
    left=$((deadline - SECONDS))
    if [ "$left" -lt 60 ]; then
        echo "== session $session: stopped, ${left} s left (RERUN_FROM=<this call's files> goes on)"
        exit 0
    fi
    resume=()
    [ -e "$report/results.json" ] && resume=(--resume)
    echo "== session $session over $VARIANTS, ${left} s left"
    timeout --signal=INT --kill-after=30 "$left" python3 -m pytest_sdxl run --model "$MODEL" --variants "$VARIANTS" \
        --runs "${RUNS:-2}" --quiet "${resume[@]}" --report "$report" 2>&1 | grep -v "^\[transformers\]" | tail -n 30
done
if complete "$OUT/session1/results.json" && complete "$OUT/session2/results.json"; then
    python3 -m pytest_sdxl compare "$OUT/session1/results.json" "$OUT/session2/results.json" --output "$OUT/compare.md"
    echo "compare exit status $? (0: no regression)"
fi
