#!/usr/bin/env bash
# Lanes of commands at once on one host with several GPUs, each lane pinned to its own GPUs and its own CPUs,
# so that a lane runs as it would on a machine of its own size (16 CPUs a GPU, as a one-GPU machine has).
#
# Each lane is LANE_<i> (i from 0 to 7) = "<GPUs> <CPUs> <command>", for example
#   LANE_0='0 0-15 PART=2 WORKERS=1 OUT=$OUT/one-p2 bash tools/gpu_workers.sh'
#   LANE_1='1,2 16-47 PART=2 WORKERS=2 OUT=$OUT/two-p2 bash tools/gpu_workers.sh'
#   LANE_2='3 48-63 OUT=$OUT/reruns VARIANTS=cpu_offload bash tools/gpu_reruns.sh'
# (single quotes: $OUT is this script's, exported to the lanes). The command runs under `bash -c` with
# CUDA_VISIBLE_DEVICES=<GPUs> and `taskset -c <CPUs>`; `a; b` runs a then b in the lane. LANE_SECONDS (default
# 540) bounds every lane, SIGINT first to its whole process group, so a cut lane still writes what it measured.
# One install of the carried wheels before the lanes (two at once would race on /tmp/site); LANES_INSTALL=0
# skips it where they are installed already. LANES_DRY_RUN=1 prints the lanes and runs nothing.
# Writes each lane's log to $OUT/lane<i>.log with its wall time; afterwards everything the lanes wrote goes
# into $OUT/lanes.tar.gz (the device tool brings back at most 8 files), the logs also printed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
export OUT
if ! command -v taskset > /dev/null; then
    echo "taskset (util-linux) is needed to pin each lane to its CPUs"
    exit 2
fi
lanes=() gpus=() cpus=() commands=()  # parsed once: the lane numbers, and each lane's GPUs, CPUs and command
for index in 0 1 2 3 4 5 6 7; do
    variable="LANE_$index"
    [ -n "${!variable:-}" ] || continue
    read -r gpu cpu command <<< "${!variable}"
    if ! [[ "$gpu" =~ ^[0-9]+(,[0-9]+)*$ && "$cpu" =~ ^[0-9,-]+$ && -n "$command" ]]; then
        echo "$variable='${!variable}': give \"<GPUs> <CPUs> <command>\", for example '0 0-15 bash tools/gpu_workers.sh'"
        exit 2
    fi
    lanes+=("$index") gpus+=("$gpu") cpus+=("$cpu") commands+=("$command")
done
if [ "${#lanes[@]}" = 0 ]; then
    echo "no lane: set LANE_0 to LANE_7 to \"<GPUs> <CPUs> <command>\""
    exit 2
fi
if [ "${LANES_DRY_RUN:-0}" = 1 ]; then  # what would run, and nothing else: a plan checked before device time
    for at in "${!lanes[@]}"; do
        echo "lane ${lanes[$at]}: GPUs ${gpus[$at]}, CPUs ${cpus[$at]}: ${commands[$at]}"
    done
    exit 0
fi
mkdir -p "$OUT"
if [ "${LANES_INSTALL:-1}" = 1 ]; then
    STEPS=none OUT="$OUT/install" bash tools/gpu_signals.sh > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
    rm -rf "$OUT/install"
fi

pids=()
for at in "${!lanes[@]}"; do
    (
        started=$SECONDS
        CUDA_VISIBLE_DEVICES="${gpus[$at]}" timeout --signal=INT --kill-after=30 "${LANE_SECONDS:-540}" \
            taskset -c "${cpus[$at]}" bash -c "${commands[$at]}"
        echo "== lane ${lanes[$at]} (GPUs ${gpus[$at]}, CPUs ${cpus[$at]}): exit status $?, wall $((SECONDS - started)) s"
    ) > "$OUT/lane${lanes[$at]}.log" 2>&1 &
    pids+=("$!")
done
for pid in "${pids[@]}"; do wait "$pid"; done
for index in "${lanes[@]}"; do
    echo "-- lane $index: LANE_$index"
    tail -n "${LOG_LINES:-40}" "$OUT/lane$index.log"
done
# Everything but the archive itself, in one file; the logs stay beside it for a quick look.
( cd "$OUT" && find . -mindepth 1 -maxdepth 1 ! -name lanes.tar.gz ! -name 'lane*.log' -printf '%P\n' \
    | tar -czf lanes.tar.gz -T - lane*.log ) && find "$OUT" -mindepth 1 -maxdepth 1 ! -name lanes.tar.gz \
    ! -name 'lane*.log' -exec rm -rf {} +
