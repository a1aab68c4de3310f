#!/usr/bin/env bash
# The measurement issue's figures on one GPU: unchanged reruns, device signals, detection power.
#
# Run from the repository root on a GPU machine. Installs the carried wheels (.whl/: diffusers,
# importlib_metadata, asv and what it needs) into /tmp/site, then runs the steps in STEPS:
#   smoke   one short protocol run with --trace (does every signal come out?)
#   reruns  the plugin suite twice over VARIANTS (two sessions, nothing changed; XDIST=N: on N GPUs), then
#           `python -m pytest_sdxl compare` of the two: every variant should come out clean;
#           kernel-time CV and busy fraction per variant are in each session's summary
#   power   `python -m pytest_sdxl power` on POWER_VARIANT: host-side 5 % and device-side 2 %
#           slowdowns over TRIALS trials, with the false alarms of unchanged reruns (ROUNDS: rounds a run,
#           RUNS: runs a measurement)
#   breakdown  tools/compile_breakdown.py on BREAKDOWN_VARIANT (default tiny_vae+compile_unet) in three
#           fresh processes over one empty cache folder: where the cold and warm init gen go
#   tune    python -m pytest_sdxl tune within TUNE_BUDGET (default 8m), over TUNE_VARIANTS (default all), TUNE_RUNS runs,
#           going on from TUNE_RESUME (an earlier call's tune.json, copied into the tree) when set
#   serving `run` of SERVING_VARIANTS with SERVING_RUNS runs: percentiles, images/s, J/image, roofline;
#           SERVING_BATCH=B times batches of B prompts (default: the notes' 1 + 4)
#   cache   CACHE_VARIANTS in CACHE_SESSIONS (default 3) fresh plugin sessions over one compile-cache folder:
#           cold, then warm
#   asv     asv on a scratch repository: a commit whose batch path is 5 % slower and an unchanged
#           one, each compared with main by asv's own rule (tools/gpu_asv_power.py); ASV_CPU_AFFINITY=2,3
#           pins every benchmark process (asv run --cpu-affinity)
#   spread  the suite's batch ratio in SPREAD_PROCESSES fresh processes (tools/ratio_processes.py): the
#           process-to-process spread that bounds asv between commits; again pinned to SPREAD_PIN CPUs
# Everything lands in $OUT (the device tool's output folder) as <card>-<date>-<step>.* files.
# STEPS=none only installs. GPU=i pins the run to that GPU (CUDA_VISIBLE_DEVICES).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu-out}"
STEPS="${STEPS:-smoke}"
MODEL="${MODEL:-random:sdxl-turbo}"
VARIANTS="${VARIANTS:-baseline,batch,upcast_vae,fp16_vae,tiny_vae,vae_slicing,cached_embeds,channels_last,fused_qkv,tiny_vae+batch,tiny_vae+cuda_graph+cached_embeds,tiny_vae+cuda_graph+cached_embeds+batch}"
POWER_VARIANT="${POWER_VARIANT:-batch}"
TRIALS="${TRIALS:-10}"
mkdir -p "$OUT"
if [ -n "${GPU:-}" ]; then export CUDA_VISIBLE_DEVICES="$GPU"; fi

# One install per machine: tools/gpu_parallel.sh runs several of these at once, one per GPU.
if [ ! -e /tmp/site-project/.installed ]; then
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl || exit 1
    fi
    # The project itself, so that its pytest11 entry point registers the plugin (the code runs from $PWD).
    python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site-project . || exit 1
    touch /tmp/site-project/.installed
fi
export PYTHONPATH="$PWD:/tmp/site-project:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
CARD=$(python3 -c "
import torch
from pytest_sdxl.machine.probes import card_slug
print(card_slug(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None))")
STEM="$OUT/$CARD-$(date -u +%Y-%m-%d)"
python3 -c "import json; from pytest_sdxl.machine.probes import machine_info; print(json.dumps(machine_info()))" \
    > "$STEM-machine.json"
cat "$STEM-machine.json"
started=$SECONDS
[ "$STEPS" = none ] && exit 0

if [[ ",$STEPS," == *",smoke,"* ]]; then
    echo "== smoke ($((SECONDS - started)) s)"
    python3 -m pytest_sdxl run --model "$MODEL" --variants baseline,tiny_vae+batch --runs 2 --quiet \
        --trace "$OUT/trace" --report "$OUT/smoke" 2>&1 | grep -v "^\[transformers\]" | head -n 40
    ls -l "$OUT/trace"
    python3 -m pytest_sdxl compare "$OUT/smoke/results.json" "$OUT/smoke/results.json" | tail -n 12
fi

if [[ ",$STEPS," == *",reruns,"* ]]; then
    # Under xdist pytest-benchmark switches itself off, so there is nothing for --benchmark-only to select by.
    only=--benchmark-only
    [ -n "${XDIST:-}" ] && only=
    # RERUN_SESSIONS=1 then RERUN_SESSIONS=2 split the two sessions over two device calls; RERUN_DIR (outside
    # $OUT, which each call empties) keeps session 1 for the second call's compare.
    RERUN_DIR="${RERUN_DIR:-$OUT}"
    for session in ${RERUN_SESSIONS:-1 2}; do
        mkdir -p "$RERUN_DIR/session$session"
        echo "== plugin session $session over $VARIANTS ($((SECONDS - started)) s)"
        # XDIST=N spreads the variants over N GPUs (pytest-xdist, one worker per GPU; pytest-benchmark is off
        # under xdist, the plugin's own timings and report are merged by the controller).
        timeout --signal=INT --kill-after=30 "${SESSION_SECONDS:-270}" python3 -m pytest tests/benchmarks \
            ${XDIST:+-p xdist -n "$XDIST"} $only -p no:cacheprovider -q -rs \
            --sdxl-model "$MODEL" --sdxl-variants "$VARIANTS" --sdxl-report "$RERUN_DIR/session$session" \
            --benchmark-json "$RERUN_DIR/session$session/benchmark.json" > "$OUT/session$session.txt" 2>&1
        echo "pytest exit status $?"
        grep -A 60 "sdxl: summary" "$OUT/session$session.txt" | head -n 50
        for kind in json md png; do
            [ -e "$RERUN_DIR/session$session/results.$kind" ] && \
                cp "$RERUN_DIR/session$session/results.$kind" "$STEM-reruns-$session.$kind"
        done
    done
    if [ -e "$RERUN_DIR/session1/results.json" ] && [ -e "$RERUN_DIR/session2/results.json" ]; then
        python3 -m pytest_sdxl compare "$RERUN_DIR/session1/results.json" "$RERUN_DIR/session2/results.json" \
            --output "$STEM-reruns-compare.md"
        echo "compare exit status $? (0: no regression)"
    fi
fi

if [[ ",$STEPS," == *",cache,"* ]]; then
    # The persistent compile cache: CACHE_VARIANTS in three fresh plugin sessions sharing one empty
    # cache folder; the first compiles cold, the next two read the cache (summary: cold/warm, init gen).
    export PYTEST_SDXL_COMPILE_CACHE=/tmp/sdxl-compile-cache
    rm -rf "$PYTEST_SDXL_COMPILE_CACHE"
    for session in $(seq 1 "${CACHE_SESSIONS:-3}"); do
        echo "== compile cache session $session over ${CACHE_VARIANTS:=tiny_vae+compile_unet} ($((SECONDS - started)) s)"
        python3 -m pytest tests/benchmarks --benchmark-only -p no:cacheprovider -q -rs \
            --sdxl-model "$MODEL" --sdxl-variants "$CACHE_VARIANTS" --sdxl-report "$OUT/cache$session" \
            > "$OUT/cache$session.txt" 2>&1
        echo "pytest exit status $?"
        grep "compile cache" "$OUT/cache$session.txt" | head -n 4
        grep -A 12 "sdxl: summary" "$OUT/cache$session.txt" | head -n 12
        cp "$OUT/cache$session/results.json" "$STEM-compile-cache-$session.json"
    done
    unset PYTEST_SDXL_COMPILE_CACHE
fi

if [[ ",$STEPS," == *",breakdown,"* ]]; then
    # Where a compiled variant's init gen goes, cold then warm: BREAKDOWN_VARIANT in three fresh processes.
    rm -rf /tmp/sdxl-breakdown-cache
    for call in 1 2 3; do
        echo "== compile breakdown $call of ${BREAKDOWN_VARIANT:=tiny_vae+compile_unet} ($((SECONDS - started)) s)"
        python3 tools/compile_breakdown.py --model "$MODEL" --variant "$BREAKDOWN_VARIANT" \
            --cache /tmp/sdxl-breakdown-cache --out "$STEM-breakdown-$call.json" 2>&1 | grep -v "^\[transformers\]" | tail -n 40
    done
fi

if [[ ",$STEPS," == *",tune,"* ]]; then
    # Issue 9: the search for the fastest composition at batch 1 and in images/s, within TUNE_BUDGET.
    echo "== tune, budget ${TUNE_BUDGET:=8m} ($((SECONDS - started)) s)"
    # TUNE_RESUME: a tune.json of an earlier call (copied into the tree) to go on from; TUNE_VARIANTS: the candidates.
    timeout --signal=INT --kill-after=30 "${TUNE_SECONDS:-3600}" python3 -m pytest_sdxl tune --model "$MODEL" --budget "$TUNE_BUDGET" --out "$OUT/tune" \
        ${TUNE_RUNS:+--runs "$TUNE_RUNS"} ${TUNE_RESUME:+--resume "$TUNE_RESUME"} ${TUNE_VARIANTS:+--variants "$TUNE_VARIANTS"} 2>&1 | grep -v "^\[transformers\]"
    for file in tune.json tune.md tune.png; do cp "$OUT/tune/$file" "$STEM-$file"; done
fi

if [[ ",$STEPS," == *",serving,"* ]]; then
    # Issue 9: percentiles, images/s, joules per image (NVML) and the roofline rows of SERVING_VARIANTS.
    echo "== serving figures over ${SERVING_VARIANTS:=baseline,tiny_vae+graph_pipeline+batch} ($((SECONDS - started)) s)"
    # SERVING_QUIET=0 prints each variant's steps (where a slow compile spends its time).
    # SERVING_SECONDS bounds the run; results.json is saved after each variant, so a cut run keeps what it measured.
    # SERVING_RESUME=DIR continues DIR/results.json from an earlier call (carried in the working tree):
    # its variants are kept, the others measured (`run --resume`).
    if [ -n "${SERVING_RESUME:-}" ] && [ -e "$SERVING_RESUME/results.json" ]; then
        mkdir -p "$OUT/serving" && cp "$SERVING_RESUME/results.json" "$OUT/serving/results.json"
    fi
    # SERVING_BATCH=B: the protocol's first prompt, then B timed prompts (the built-in five repeated), so a
    # batch composition's timed calls are batches of B, where tune found its best images/s.
    prompts=()
    if [ -n "${SERVING_BATCH:-}" ]; then
        python3 -c "
import sys
from pytest_sdxl.settings import DEFAULT_PROMPTS
count = 1 + int(sys.argv[1])
print('\n'.join(DEFAULT_PROMPTS[index % len(DEFAULT_PROMPTS)] for index in range(count)))" "$SERVING_BATCH" \
            > "$OUT/serving-prompts.txt" || exit 1
        prompts=(--prompts "$OUT/serving-prompts.txt")
    fi
    timeout --signal=INT --kill-after=30 "${SERVING_SECONDS:-3600}" python3 -m pytest_sdxl run --model "$MODEL" \
        --variants "$SERVING_VARIANTS" --runs "${SERVING_RUNS:-4}" $([ "${SERVING_QUIET:-1}" = 1 ] && echo --quiet) \
        "${prompts[@]}" ${SERVING_RESUME:+--resume} --report "$OUT/serving" 2>&1 | grep -v "^\[transformers\]" | tail -n 60
    cp "$OUT/serving/results.json" "$STEM-serving.json"
    [ -e "$OUT/serving/results.md" ] && cp "$OUT/serving/results.md" "$STEM-serving.md"
fi

if [[ ",$STEPS," == *",power,"* ]]; then
    echo "== power on $POWER_VARIANT, $TRIALS trials ($((SECONDS - started)) s)"
    INJECT="${INJECT:-host:5%}"
    name="$STEM-power-${POWER_VARIANT//+/_}-${INJECT//[:%,]/-}"
    python3 -m pytest_sdxl power --model "$MODEL" --variant "$POWER_VARIANT" --trials "$TRIALS" --inject "$INJECT" \
        ${ROUNDS:+--rounds "$ROUNDS"} ${RUNS:+--runs "$RUNS"} \
        --output "$name.md" --json "$name.json" 2>&1 | grep -v "^\[transformers\]"
fi

if [[ ",$STEPS," == *",asv,"* ]]; then
    echo "== asv: slower batch path against unchanged ($((SECONDS - started)) s)"
    # Where a fresh HOME's import failure came from (`No module named 'lazy_importer'`, 2026-11-26).
    HOME=$(mktemp -d) python3 -c "import diffusers, pytest_sdxl; print('imports with a fresh HOME: fine')" 2>&1 | tail -n 2
    find / -xdev -name 'lazy_importer*' 2>/dev/null | head -n 5
    python3 -c "import site, sys; print('user site', site.ENABLE_USER_SITE, site.getusersitepackages())"
    # ASV_RATIO: plain or host-normalized; ASV_VARIANT: the one-by-one composition; ASV_FACTOR: asv's factor.
    python3 tools/gpu_asv_power.py --trials "${ASV_TRIALS:-3}" --ratio "${ASV_RATIO:-plain}" \
        --variant "${ASV_VARIANT:-baseline}" --factor "${ASV_FACTOR:-1.03}" \
        ${ASV_CPU_AFFINITY:+--cpu-affinity "$ASV_CPU_AFFINITY"} \
        --out "$STEM-asv-power-${ASV_RATIO:-plain}" 2>&1 | grep -v "^\[transformers\]"
fi
if [[ ",$STEPS," == *",spread,"* ]]; then
    # Issue 8: how far apart fresh processes put asv's batch ratio (what bounds asv between commits),
    # free-floating and, with SPREAD_PIN (asv's --cpu-affinity format), pinned to those CPUs.
    for pin in "" ${SPREAD_PIN:-}; do
        echo "== spread of the batch ratio over fresh processes${pin:+, pinned to CPUs $pin} ($((SECONDS - started)) s)"
        PYTEST_SDXL_MODEL="$MODEL" python3 tools/ratio_processes.py --variant "${SPREAD_VARIANT:-tiny_vae+cuda_graph+cached_embeds}" \
            --processes "${SPREAD_PROCESSES:-6}" --seconds "${SPREAD_SECONDS:-240}" ${pin:+--pin "$pin"} \
            --out "$STEM-spread${pin:+-pinned-${pin//,/_}}" 2>&1 | grep -v "^\[transformers\]"
    done
fi
echo "done in $((SECONDS - started)) s"
