#!/usr/bin/env bash
# One GPU against two, side by side on one four-GPU host, for parts of the whole matrix (tools/matrix_parts.sh)
# through tools/gpu_workers.sh, as lanes of tools/gpu_pinned_lanes.sh (16 CPUs a GPU):
#   PART=k    part k with `-n 1` on GPU 0 (CPUs 0-15) and with `-n 2` on GPUs 1,2 (CPUs 16-47); EXTRA, when set,
#             is a command for GPU 3 (CPUs 48-63), for example EXTRA='OUT=$OUT/reruns bash tools/gpu_reruns.sh'.
#   PART=j,k  part j with `-n 1` on GPU 0, part k with `-n 1` on GPU 1 (CPUs 16-31), and both parts in one `-n 2`
#             session on GPUs 2,3 (CPUs 32-63): two GPUs take two parts in about one part's time, so one call
#             measures two parts both ways, with no GPU idle.
#
# Why at once: the one-GPU sessions are the long pole (an estimated 3800 s for the whole matrix at the
# plugin's defaults, cold; 2026-11-27i), and running the two-GPU session beside them costs no extra device
# time. Each compiles from an empty cache of its own (gpu_workers.sh's COLD_CACHE). The figures say "side by
# side on one host", not two machines. SIDE_SECONDS (default 540) bounds every lane. Writes
# $OUT/lanes.tar.gz (one*/, two/: gpu_workers.sh's files) and the lanes' logs.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/matrix_parts.sh
source tools/matrix_parts.sh
require_part "${PART:-}"
read -r -a parts <<< "${PART//,/ }"
case "${#parts[@]}" in
    1)
        export LANE_0="0 0-15 PART=$PART WORKERS=1 OUT=\$OUT/one bash tools/gpu_workers.sh"
        export LANE_1="1,2 16-47 PART=$PART WORKERS=2 OUT=\$OUT/two bash tools/gpu_workers.sh"
        if [ -n "${EXTRA:-}" ]; then export LANE_2="3 48-63 $EXTRA"; fi
        ;;
    2)
        if [ -n "${EXTRA:-}" ]; then
            echo "PART=$PART uses all four GPUs: EXTRA goes with a single part (PART=k)"
            exit 2
        fi
        export LANE_0="0 0-15 PART=${parts[0]} WORKERS=1 OUT=\$OUT/one-${parts[0]} bash tools/gpu_workers.sh"
        export LANE_1="1 16-31 PART=${parts[1]} WORKERS=1 OUT=\$OUT/one-${parts[1]} bash tools/gpu_workers.sh"
        export LANE_2="2,3 32-63 PART=$PART WORKERS=2 OUT=\$OUT/two bash tools/gpu_workers.sh"
        ;;
    *)
        echo "PART=$PART: side by side takes one part or two (four GPUs: two one-GPU lanes and one two-GPU lane)"
        exit 2
        ;;
esac
LANE_SECONDS="${SIDE_SECONDS:-540}" exec bash tools/gpu_pinned_lanes.sh
