#!/usr/bin/env bash
# The plugin's matrix on one GPU against N GPUs, on a machine with N GPUs (pytest-xdist).
#
# Both sessions run through xdist (`-n 1`, then `-n N`), so both take the same path: each worker
# pinned to its own GPU, pytest-benchmark switched off, the plugin's own timings merged by the
# controller. What differs is only how many GPUs share the variants. Installs the carried wheels
# as tools/gpu_signals.sh does. Writes <card>-<date>-workers[-part<k>]-<n>.{json,md,txt} to $OUT and
# prints each session's wall time.
#
# PART=k measures part k of the whole matrix (tools/matrix_parts.sh) instead of VARIANTS (PART=1,2: parts 1
# and 2 in one session); the whole matrix's wall time on n GPUs is the sum of its parts'. RUNS sets the runs a
# variant (PYTEST_SDXL_RUNS).
# COLD_CACHE=1 (the default) gives each session an empty compile cache of its own, so a later session
# never reads what an earlier one compiled: both pay the same compiles.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
MODEL="${MODEL:-random:sdxl-turbo}"
VARIANTS="${VARIANTS:-baseline,batch,fp16_vae,tiny_vae,cached_embeds,tiny_vae+batch}"
SUFFIX=""
if [ -n "${PART:-}" ]; then
    # shellcheck source=tools/matrix_parts.sh
    source tools/matrix_parts.sh
    require_part "$PART"
    VARIANTS=$(part_variants "$PART")
    SUFFIX="-part${PART//,/-}"
fi
[ -n "${RUNS:-}" ] && export PYTEST_SDXL_RUNS="$RUNS"
mkdir -p "$OUT"
STEPS=none OUT="$OUT/install" bash tools/gpu_signals.sh > /dev/null 2>&1 || { echo "install failed"; exit 1; }
export PYTHONPATH="$PWD:/tmp/site-project:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
CARD=$(python3 -c "import torch; from pytest_sdxl.machine.probes import card_slug; print(card_slug(torch.cuda.get_device_name(0)))")
STEM="$OUT/$CARD-$(date -u +%Y-%m-%d)-workers$SUFFIX"
# WORKERS: the sessions to run, in order (default "1 N"); two calls on one warm machine can run one each.
for workers in ${WORKERS:-1 $GPUS}; do
    if [ "${COLD_CACHE:-1}" = 1 ]; then
        PYTEST_SDXL_COMPILE_CACHE=$(mktemp -d)
        export PYTEST_SDXL_COMPILE_CACHE
    fi
    started=$SECONDS
    python3 -m pytest -p xdist -n "$workers" tests/benchmarks -p no:cacheprovider -q -rs \
        --sdxl-model "$MODEL" --sdxl-variants "$VARIANTS" --sdxl-report "$OUT/n$workers" > "$STEM-$workers.txt" 2>&1
    status=$?
    echo "== $workers worker(s) on $GPUS GPU(s): exit status $status, wall $((SECONDS - started)) s"
    grep -A 12 "sdxl: summary" "$STEM-$workers.txt" | head -n 12
    cp "$OUT/n$workers/results.json" "$STEM-$workers.json" && cp "$OUT/n$workers/results.md" "$STEM-$workers.md"
done
rm -rf "$OUT/install" "$OUT"/n*/
