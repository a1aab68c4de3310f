#!/usr/bin/env bash
# Lanes of commands at once on one host with several GPUs, each lane on its own GPUs, and on its own CPUs
# when it names them (16 CPUs a GPU: a lane then runs as it would on a machine of its own size).
#
# Each lane is LANE_<i> (i from 0 to 7) = "<GPUs> <CPUs> <command>", CPUs "-" for a lane that shares the
# host's CPUs with the others, for example
#   LANE_0='0 0-15 STEPS=reruns OUT=$OUT/reruns VARIANTS=quant_int8 bash lab/steps.sh'
#   LANE_1='1,2 16-47 STEPS=workers WORKERS=2 PART=4 OUT=$OUT/two bash lab/steps.sh'
#   LANE_2='3 - python -m pytest_sdxl run --model random:sdxl-turbo --variants baseline --report $OUT/three'
# (single quotes: $OUT is this script's, exported to the lanes). The command runs under `bash -c` with
# CUDA_VISIBLE_DEVICES=<GPUs>, under `taskset -c <CPUs>` unless CPUs is "-"; `a; b` runs a then b.
# LANE_SECONDS (default 540: a 600 s device command less the archive) bounds every lane, SIGINT first to its
# whole process group, so a cut lane still writes what it measured. LANE_STAGGER seconds (default 0) pass
# between lane starts (asv writes one machine file in $HOME as it starts). LANES_AFTER, when set, is a
# command run once the lanes are done, for joining their results into $OUT/merged/ (see lab/README.md).
# LANES_DRY_RUN=1 prints the lanes and runs nothing.
# Writes each lane's log to $OUT/lane<i>.log with its wall time; then everything else the lanes wrote goes
# into $OUT/lanes.tar.gz (a device command brings back few files); $OUT/merged/ and the logs stay beside it.
# shellcheck source=lab/host.sh
source "$(dirname "$0")/host.sh"
LANE_SECONDS="${LANE_SECONDS:-540}"
lanes=() gpus=() cpus=() commands=()  # parsed once: the lane numbers, and each lane's GPUs, CPUs and command
for index in 0 1 2 3 4 5 6 7; do
    variable="LANE_$index"
    [ -n "${!variable:-}" ] || continue
    read -r gpu cpu command <<< "${!variable}"
    if ! [[ "$gpu" =~ ^[0-9]+(,[0-9]+)*$ && "$cpu" =~ ^([0-9,-]+|-)$ && -n "$command" ]]; then
        echo "$variable='${!variable}': give \"<GPUs> <CPUs> <command>\" (CPUs - for none),"\
             "for example '0 0-15 bash lab/steps.sh'"
        exit 2
    fi
    lanes+=("$index") gpus+=("$gpu") cpus+=("$cpu") commands+=("$command")
done
if [ "${#lanes[@]}" = 0 ]; then
    echo "no lane: set LANE_0 to LANE_7 to \"<GPUs> <CPUs> <command>\""
    exit 2
fi
if [[ " ${cpus[*]} " =~ [0-9] ]] && ! command -v taskset > /dev/null; then
    echo "taskset (util-linux) is needed to pin a lane to its CPUs; give CPUs - to leave a lane unpinned"
    exit 2
fi
if [ "${LANES_DRY_RUN:-0}" = 1 ]; then  # what would run, and nothing else: a plan checked before device time
    for at in "${!lanes[@]}"; do
        echo "lane ${lanes[$at]}: GPUs ${gpus[$at]}, CPUs ${cpus[$at]}: ${commands[$at]}"
    done
    exit 0
fi
mkdir -p "$OUT"
# Once, before the lanes: several lanes installing at once would race on /tmp/site.
lab_install > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
rm -f "$OUT/install.log"

pids=()
for at in "${!lanes[@]}"; do
    pin=()
    [ "${cpus[$at]}" = - ] || pin=(taskset -c "${cpus[$at]}")
    (
        started=$SECONDS
        CUDA_VISIBLE_DEVICES="${gpus[$at]}" timeout --signal=INT --kill-after=30 "$LANE_SECONDS" \
            "${pin[@]}" bash -c "${commands[$at]}"
        status=$?
        echo "== lane ${lanes[$at]} (GPUs ${gpus[$at]}, CPUs ${cpus[$at]}):" \
            "exit status $status, wall $((SECONDS - started)) s"
    ) > "$OUT/lane${lanes[$at]}.log" 2>&1 &
    pids+=("$!")
    sleep "${LANE_STAGGER:-0}"
done
for pid in "${pids[@]}"; do wait "$pid"; done
for index in "${lanes[@]}"; do
    echo "-- lane $index: LANE_$index"
    tail -n "${LOG_LINES:-40}" "$OUT/lane$index.log"
done
if [ -n "${LANES_AFTER:-}" ]; then
    mkdir -p "$OUT/merged"
    echo "-- after the lanes: $LANES_AFTER"
    bash -c "$LANES_AFTER" 2>&1 | tee "$OUT/merged/after.log" | tail -n "${LOG_LINES:-40}"
fi
# Everything but the archive, the logs and merged/ in one file.
( cd "$OUT" && find . -mindepth 1 -maxdepth 1 ! -name lanes.tar.gz ! -name 'lane*.log' ! -name merged -printf '%P\n' \
    | tar -czf lanes.tar.gz -T - lane*.log ) && find "$OUT" -mindepth 1 -maxdepth 1 ! -name lanes.tar.gz \
    ! -name 'lane*.log' ! -name merged -exec rm -rf {} +
