#!/usr/bin/env bash
# The whole matrix in one `run --profile full --session-budget SESSION_BUDGET` process (default 900: the nightly
# job's 15 minutes), longer than one 600 s device command: `start` launches it in the background of one command
# and watches it until WATCH seconds (default 540) have passed; `wait` (the next command, on the same warm
# machine) watches it until it ends or WATCH passes. Both copy its report and log to $OUT/matrix. The compile
# cache is the machine's default folder, so the process compiles cold unless an earlier call filled it (STEPS=
# compiles in lab/steps.sh). Inductor compiles in the process itself (TORCHINDUCTOR_COMPILE_THREADS=1): a process
# a later device command starts cannot load torch, and its compile workers would be such processes.
#   bash lab/matrix_session.sh start     then     bash lab/matrix_session.sh wait   (repeat wait until it ends)
# shellcheck source=lab/host.sh
source "$(dirname "$0")/host.sh"
HERE=/tmp/matrix-session
WATCH="${WATCH:-540}"

# The report as it stands (its files are written atomically after each run), so a command cut off at its time
# limit, or a session out of device time, still brings back what was measured.
copy_back() {
    mkdir -p "$OUT/matrix"
    cp -r "$HERE/report" "$HERE/log.txt" "$HERE/card.txt" "$OUT/matrix/" 2>/dev/null
}

watch_until_end() {
    local began=$SECONDS
    while [ ! -e "$HERE/ended" ] && [ $((SECONDS - began)) -lt "$WATCH" ]; do
        sleep 20
        echo "-- $(($(date +%s) - $(cat "$HERE/started"))) s: $(grep -v '^\[transformers\]' "$HERE/log.txt" | tail -n 1)"
        copy_back
    done
}

case "${1:-}" in
    start)
        lab_install || exit 1
        rm -rf "$HERE" && mkdir -p "$HERE"
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$HERE/card.txt"
        date +%s > "$HERE/started"
        setsid nohup bash -c "TORCHINDUCTOR_COMPILE_THREADS=1 python3 -m pytest_sdxl run --model '$MODEL' \
            --profile full --session-budget '${SESSION_BUDGET:-900}' --report '$HERE/report' > '$HERE/log.txt' 2>&1; \
            echo \$? > '$HERE/status'; date +%s > '$HERE/ended'" > /dev/null 2>&1 &
        watch_until_end
        ;;
    wait)
        [ -e "$HERE/started" ] || { echo "no matrix session on this machine: run 'start' first"; exit 2; }
        watch_until_end
        ;;
    *)
        echo "give start or wait"
        exit 2
        ;;
esac
if [ -e "$HERE/ended" ]; then
    echo "matrix: $(($(cat "$HERE/ended") - $(cat "$HERE/started"))) s from start to exit, status $(cat "$HERE/status")"
    copy_back
    grep -v '^\[transformers\]' "$HERE/log.txt" | tail -n 70
else
    echo "matrix: still running after $(($(date +%s) - $(cat "$HERE/started"))) s; call wait again"
fi
