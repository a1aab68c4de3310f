#!/usr/bin/env bash
# One GPU against two, side by side on one four-GPU host: part PART of the whole matrix (tools/matrix_parts.sh)
# through tools/gpu_workers.sh with `-n 1` on GPU 0 and with `-n 2` on GPUs 1 and 2, both at once, as lanes of
# tools/gpu_pinned_lanes.sh (16 CPUs a GPU: 0-15 and 16-47).
#
# Why at once: the one-GPU session is the long pole (an estimated 3800 s for the whole matrix at the plugin's
# defaults, cold; 2026-11-27i), and running the two-GPU session beside it costs no extra device time. Each compiles from an empty cache of its own
# (gpu_workers.sh's COLD_CACHE). The figures say "side by side on one host", not two machines.
#
# EXTRA, when set, is a command run at the same time on GPU 3, CPUs 48-63: the fourth GPU's lane, for example
# issue 8's unchanged reruns (EXTRA='OUT=$OUT/reruns bash tools/gpu_reruns.sh'). SIDE_SECONDS (default 540)
# bounds every lane. Writes $OUT/lanes.tar.gz (one/, two/: gpu_workers.sh's files) and the lanes' logs.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/matrix_parts.sh
source tools/matrix_parts.sh
require_part "${PART:-}"
export LANE_0="0 0-15 PART=$PART WORKERS=1 OUT=\$OUT/one bash tools/gpu_workers.sh"
export LANE_1="1,2 16-47 PART=$PART WORKERS=2 OUT=\$OUT/two bash tools/gpu_workers.sh"
if [ -n "${EXTRA:-}" ]; then export LANE_2="3 48-63 $EXTRA"; fi
LANE_SECONDS="${SIDE_SECONDS:-540}" exec bash tools/gpu_pinned_lanes.sh
