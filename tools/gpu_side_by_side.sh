#!/usr/bin/env bash
# One GPU against two, side by side on one four-GPU host: part PART of the whole matrix (tools/matrix_parts.sh)
# through tools/gpu_workers.sh with `-n 1` on GPU ONE_GPU (default 0) and with `-n 2` on GPUS TWO_GPUS
# (default 1,2), both at once.
#
# Why at once: the one-GPU session is the long pole (about 1600 s for the whole matrix, cold), and running
# the two-GPU session beside it costs no extra device time. Each session is pinned to its own CPUs, 16 per
# GPU as a one-GPU machine has (ONE_CPUS default 0-15, TWO_CPUS default 16-47), so neither borrows the other's
# cores, and both see the same host at the same time. Each compiles from an empty cache of its own
# (gpu_workers.sh's COLD_CACHE). The figures say "side by side on one host", not two machines.
#
# EXTRA, when set, is a command run at the same time on GPU EXTRA_GPU (default 3) pinned to EXTRA_CPUS
# (default 48-63), its output in $OUT/extra.log: the fourth GPU's lane, for example issue 8's unchanged reruns.
# SIDE_SECONDS (default 540) bounds every lane (SIGINT first, to the lane's whole process group), so that a
# slow part still leaves the report of what it measured (marked partial) inside a device call's 600 s.
# Writes $OUT/one/, $OUT/two/ (gpu_workers.sh's files), and their logs; prints each session's wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
export OUT  # the EXTRA lane's command may write under it: EXTRA='OUT=$OUT/reruns bash tools/gpu_reruns.sh'
# shellcheck source=tools/matrix_parts.sh
source tools/matrix_parts.sh
require_part "${PART:-}"
if ! command -v taskset > /dev/null; then
    echo "taskset (util-linux) is needed to pin each session to its CPUs"
    exit 2
fi
mkdir -p "$OUT"
# One install before the sessions start: two installs at once would race on /tmp/site.
STEPS=none OUT="$OUT/install" bash tools/gpu_signals.sh > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
rm -rf "$OUT/install"

bound=(timeout --signal=INT --kill-after=30 "${SIDE_SECONDS:-540}")
CUDA_VISIBLE_DEVICES="${ONE_GPU:-0}" PART="$PART" WORKERS=1 OUT="$OUT/one" \
    "${bound[@]}" taskset -c "${ONE_CPUS:-0-15}" bash tools/gpu_workers.sh > "$OUT/one.log" 2>&1 &
one=$!
CUDA_VISIBLE_DEVICES="${TWO_GPUS:-1,2}" PART="$PART" WORKERS=2 OUT="$OUT/two" \
    "${bound[@]}" taskset -c "${TWO_CPUS:-16-47}" bash tools/gpu_workers.sh > "$OUT/two.log" 2>&1 &
two=$!
extra=""
if [ -n "${EXTRA:-}" ]; then
    CUDA_VISIBLE_DEVICES="${EXTRA_GPU:-3}" "${bound[@]}" taskset -c "${EXTRA_CPUS:-48-63}" bash -c "$EXTRA" > "$OUT/extra.log" 2>&1 &
    extra=$!
fi
wait "$one"
echo "-- one GPU (GPU ${ONE_GPU:-0}, CPUs ${ONE_CPUS:-0-15}), part $PART:"
cat "$OUT/one.log"
wait "$two"
echo "-- two GPUs (GPUs ${TWO_GPUS:-1,2}, CPUs ${TWO_CPUS:-16-47}), part $PART:"
cat "$OUT/two.log"
if [ -n "$extra" ]; then
    wait "$extra"
    echo "-- extra lane exit status $?"
fi
