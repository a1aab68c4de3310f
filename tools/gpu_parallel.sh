#!/usr/bin/env bash
# Several tools/gpu_signals.sh runs at once, one per GPU, on a machine with several GPUs.
#
# Each lane is an environment variable LANE_<i> holding the settings of one gpu_signals.sh run on
# GPU i, for example (on a four-GPU machine):
#   LANE_0="STEPS=power TRIALS=5 INJECT=host:5%,device:2% POWER_VARIANT=batch"
#   LANE_1="STEPS=power TRIALS=5 INJECT=host:5%,device:2% POWER_VARIANT=batch"
#   LANE_2="STEPS=reruns VARIANTS=baseline,batch"  LANE_3="STEPS=asv ASV_TRIALS=3 ASV_RATIO=host-normalized"
# A lane may name its own GPUs (LANE_0="GPU=0,1,2 STEPS=reruns XDIST=3 ..."); LANE_SECONDS bounds every lane.
# Each lane writes to $OUT/gpu<i>/ and its log to $OUT/gpu<i>.log. Afterwards the power results of
# all lanes are added up per experiment (tools/merge_power.py) and so are the asv trials
# (tools/gpu_asv_power.py --merge). The lanes share the host's CPUs: they run on a busy machine,
# which is what a shared GPU runner is; the figures say so.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
STEPS=none OUT="$OUT" bash tools/gpu_signals.sh > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
pids=()
for index in 0 1 2 3 4 5 6 7; do
    variable="LANE_$index"
    [ -n "${!variable:-}" ] || continue
    echo "== lane $index: ${!variable}"
    # GPU=<index> unless the lane names its own (GPU=0,1,2 for an xdist lane over three GPUs); each lane is
    # stopped after LANE_SECONDS (SIGINT first), so the merge and the archive below still run inside a call's limit.
    # shellcheck disable=SC2086  # the lane's settings are words on purpose
    timeout --signal=INT --kill-after=30 "${LANE_SECONDS:-3600}" \
        env GPU="$index" ${!variable} OUT="$OUT/gpu$index" bash tools/gpu_signals.sh > "$OUT/gpu$index.log" 2>&1 &
    pids+=("$!")
    # LANE_STAGGER seconds between lane starts: asv lanes each write the one ~/.asv-machine.json at their start.
    sleep "${LANE_STAGGER:-0}"
done
for pid in "${pids[@]}"; do wait "$pid"; done
for log in "$OUT"/gpu*.log; do echo "== $log"; tail -n 40 "$log"; done

export PYTHONPATH="$PWD:/tmp/site-project:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
shopt -s nullglob
for first in "$OUT"/gpu*/*-power-*.json; do
    name=$(basename "$first")
    [[ "$name" == *-asv-power* ]] && continue  # asv's trials: merged below
    [ -e "$OUT/$name" ] && continue
    python3 tools/merge_power.py "$OUT/${name%.json}" "$OUT"/gpu*/"$name"
done
# The asv trials of every lane added up, one file per ratio (gpu_signals names them -asv-power-<ratio>).
for first in "$OUT"/gpu*/*-asv-power*.json; do
    name=$(basename "$first")
    [ -e "$OUT/$name" ] && continue
    python3 tools/gpu_asv_power.py --merge "$OUT"/gpu*/"$name" --out "$OUT/${name%.json}"
done
# The lanes' `run` results (STEPS=serving) as one report, when they measured one setup (a baseline in
# several lanes: the first lane's record is kept).
lanes=("$OUT"/gpu*/serving/results.json)
if [ "${#lanes[@]}" -ge 2 ]; then
    mkdir -p "$OUT/merged"
    python3 -m pytest_sdxl merge "${lanes[@]}" --first --output "$OUT/merged" > "$OUT/merged/merge.log" 2>&1 \
        || tail -n 5 "$OUT/merged/merge.log"
fi
# The device tool brings back a limited number of files: everything below the lanes goes in one archive.
# The lanes' logs go in it too: at most 8 files come back, and the merged files must be among them.
tar -czf "$OUT/lanes.tar.gz" -C "$OUT" $(cd "$OUT" && ls -d gpu*/ gpu*.log install.log 2>/dev/null) \
    && rm -rf "$OUT"/gpu*/ "$OUT"/gpu*.log "$OUT/install.log"
