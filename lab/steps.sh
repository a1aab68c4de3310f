#!/usr/bin/env bash
# The docs' GPU experiments, one STEP each, on the GPUs this process sees (one lane of lab/lanes.sh, or a
# whole machine). STEPS is a comma-separated list of:
#   reruns     two `run` sessions over VARIANTS, nothing changed between them, then `compare` of the two:
#              every variant should come out clean (default VARIANTS: the quantized, compiled and offloaded
#              variants); with RESUME, a session already complete is not run again and a cut one goes on
#   workers    the reference suite through the plugin on one GPU against all of them (pytest-xdist: one
#              session per entry of WORKERS, default "1 <GPUs>"), each from an empty compile cache, with its
#              wall time (default VARIANTS: six eager variants)
#   cache      the reference suite in three plugin sessions over one empty compile-cache folder: the first
#              compiles cold, the next two read the cache (default VARIANTS: tiny_vae+compile_unet)
#   breakdown  lab/compile_breakdown.py on VARIANT (default tiny_vae+compile_unet) in three fresh processes
#              over one empty cache folder: where a compiled variant's cold and warm first generation go
#   serving    `run` over VARIANTS: percentiles, images/s, J/image, roofline (default VARIANTS: baseline,
#              tiny_vae+graph_pipeline+batch); BATCH=B times batches of B prompts (default: 1 + 4 prompts)
#   tune       `tune` within TUNE_BUDGET (default 8m) over VARIANTS (default: every variant)
#   matrix     one `run` of the full profile over VARIANTS (or PART, or HALF 1 or 2 of MATRIX_HALVES in lab/host.sh;
#              default: the GPU's whole default selection) within SESSION_BUDGET seconds (run --session-budget,
#              default 900), with its wall time; the compile cache is the machine's default folder, so a second
#              call on a warm machine reads it
#   compiles   one `run` over VARIANTS (default: COMPILED_VARIANTS in lab/host.sh) at the gate profile's fewest
#              rounds, one run: fills the machine's compile cache for a `matrix` call after it
#   power      `power` on VARIANT (default batch): INJECT (default host:5%) over TRIALS (default 10) trials,
#              with ROUNDS rounds a run when set; ACROSS=processes compares fresh processes as `ab` does
#              (gate profile, PROCESSES a side at most, PIN, VARIANT_BUDGET), ROUNDS then left unset;
#              there UNTOUCHED (a variant, default none) is measured beside VARIANT, never slowed (its flags
#              false alarms; refused with ACROSS=rounds); POWER_BUDGET seconds: no trial starts that would
#              end past it (a trial cut by the command's time limit is lost); WORK: a folder for the trials'
#              processes, each one's cost then listed in <name>-processes.txt and the folder packed as
#              <name>-work.tgz; with WORK, POWER_BUDGET is kept process by process, and a trial it cuts goes on
#              in the next call whose WORK (carried in the tree, e.g. .power-work) holds that pack unpacked,
#              its finished processes reused (power --work-folder with --resume); CALIBRATION: an earlier call's
#              power JSON (carried in the tree) whose injection sizes the trials take, with no calibration process;
#              POWER_JSON: the file the trials go on in (power --resume: those in it are kept, TRIALS counts them,
#              its calibration sizes the rest; it is written once calibrated, so TRIALS=0 is a calibration-only
#              call), carried in the tree or left on the machine by an earlier call; a copy of it comes back as
#              <name>.json
#   asv        lab/asv_detection.py: asv's rule on a commit whose batch path is 5 % slower and an unchanged
#              one, RATIO plain or host-normalized (default plain) of VARIANT (default baseline), FACTOR
#              (default 1.03), TRIALS trials (default 3)
#   start      PROCESSES (default 3) fresh `run` processes of the gate profile on VARIANT (default baseline),
#              one run each: the wall time of each process and its start-to-first-timed-round figure
#   threads    PROCESSES (default 4) pairs of fresh `run` processes over VARIANTS (default batch,tiny_vae), gate
#              profile, VARIANT_BUDGET (default 5), pinned as ab pins them: one with one torch thread
#              (OMP_NUM_THREADS=1), one with torch's default, in ABBA order; lab/call_noise.py on each
#              (threads/noise.txt), the processes' files in threads/processes.tgz
#   profile    one fresh `run` process of the gate profile on VARIANT (default baseline) under cProfile: where
#              its start goes (profile/start.prof and the top functions by cumulative time in profile/start.txt)
#   ab         `pytest-sdxl ab` with this checkout on both sides (an unchanged pair) over VARIANTS (default
#              six eager variants), PAIRS pairs (default 2), AB_BUDGET seconds (default 300), gate profile,
#              VARIANT_BUDGET seconds a variant when set
#   spread     lab/ratio_processes.py: VARIANT's (default tiny_vae+cuda_graph+cached_embeds) batch ratio in
#              PROCESSES (default 6) fresh processes, started within SPREAD_SECONDS (default 240); with PIN,
#              again pinned to those CPUs
# Shared settings: MODEL (default random:sdxl-turbo), RUNS (a variant's runs; default: the command's own),
# PART (take VARIANTS from the matrix parts in lab/host.sh), PIN (CPUs in asv's --cpu-affinity form: 2,3),
# RESUME (an earlier call's $OUT folder, carried in the tree: reruns, serving and tune go on from it).
# Each step writes to $OUT/<step>/. Nothing here bounds time: run a step as a lane of lab/lanes.sh for that.
# shellcheck source=lab/host.sh
source "$(dirname "$0")/host.sh"
KNOWN_STEPS="reruns workers cache breakdown serving tune matrix compiles power asv start threads profile ab spread"
if [ -z "${STEPS:-}" ]; then
    echo "STEPS is empty: give some of ${KNOWN_STEPS// /, } joined by commas"
    exit 2
fi
for step in ${STEPS//,/ }; do
    if [[ " $KNOWN_STEPS " != *" $step "* ]]; then
        echo "STEPS=$STEPS: $step is not a step; give some of ${KNOWN_STEPS// /, } joined by commas"
        exit 2
    fi
done
if [ -n "${PART:-}" ]; then
    require_part "$PART"
    VARIANTS=$(part_variants "$PART")
fi
if [ -n "${HALF:-}" ]; then
    case "$HALF" in
        1 | 2) VARIANTS="${MATRIX_HALVES[$((HALF - 1))]}" ;;
        *) echo "HALF=$HALF: give 1 or 2 (MATRIX_HALVES in lab/host.sh)"; exit 2 ;;
    esac
fi
lab_install || exit 1
mkdir -p "$OUT"
SUITE=(--pyargs pytest_sdxl.suite)  # the reference suite, as the package ships it
python3 -c "import json; from pytest_sdxl.machine.probes import machine_info; print(json.dumps(machine_info()))" \
    | tee "$OUT/machine.json"
started=$SECONDS
# Line by line: a command cut by the device's time limit still shows every line its step printed.
without_transformers_chatter() { grep --line-buffered -v "^\[transformers\]"; }
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }
# A results.json that exists and was not cut short: every variant asked for was measured or skipped.
complete() {
    [ -e "$1" ] && python3 -c "
import json, sys
data = json.load(open(sys.argv[1]))
sys.exit(1 if data.get('partial') or data.get('not_measured') else 0)" "$1"
}

if has_step reruns; then
    compiled=quant_int8+compile_unet,quant_fp8+compile_unet,compile_kernels
    variants="${VARIANTS:-quant_int8,quant_fp8,tiny_vae+batch,cpu_offload,$compiled}"
    for session in 1 2; do
        report="$OUT/reruns/session$session"
        mkdir -p "$report"
        if [ -n "${RESUME:-}" ] && [ -e "$RESUME/reruns/session$session/results.json" ]; then
            cp "$RESUME/reruns/session$session/results.json" "$report/results.json"
        fi
        if complete "$report/results.json"; then
            echo "== reruns: session $session complete already"
            continue
        fi
        resume=()
        [ -e "$report/results.json" ] && resume=(--resume)
        echo "== reruns: session $session over $variants ($((SECONDS - started)) s)"
        python3 -m pytest_sdxl run --model "$MODEL" --variants "$variants" ${RUNS:+--runs "$RUNS"} --quiet \
            "${resume[@]}" --report "$report" 2>&1 | without_transformers_chatter | tail -n 30
    done
    if complete "$OUT/reruns/session1/results.json" && complete "$OUT/reruns/session2/results.json"; then
        python3 -m pytest_sdxl compare "$OUT/reruns/session1/results.json" "$OUT/reruns/session2/results.json" \
            --output "$OUT/reruns/compare.md"
        echo "compare exit status $? (0: no regression)"
    fi
fi

if has_step workers; then
    variants="${VARIANTS:-baseline,batch,fp16_vae,tiny_vae,cached_embeds,tiny_vae+batch}"
    gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
    mkdir -p "$OUT/workers"
    for workers in ${WORKERS:-1 $gpus}; do
        # An empty compile cache for each session: a later session never reads what an earlier one compiled.
        cache=$(mktemp -d)
        session_started=$SECONDS
        PYTEST_SDXL_COMPILE_CACHE="$cache" python3 -m pytest -p xdist -n "$workers" "${SUITE[@]}" \
            -p no:cacheprovider -q -rs --sdxl-model "$MODEL" --sdxl-variants "$variants" ${RUNS:+--sdxl-runs "$RUNS"} \
            --sdxl-report "$OUT/workers/n$workers" > "$OUT/workers/n$workers.txt" 2>&1
        echo "== workers: $workers on $gpus GPU(s): exit status $?, wall $((SECONDS - session_started)) s"
        grep -A 12 "sdxl: summary" "$OUT/workers/n$workers.txt" | head -n 12
        rm -rf "$cache"
    done
fi

if has_step cache; then
    variants="${VARIANTS:-tiny_vae+compile_unet}"
    cache=$(mktemp -d)
    mkdir -p "$OUT/cache"
    for session in 1 2 3; do
        echo "== cache: session $session over $variants ($((SECONDS - started)) s)"
        PYTEST_SDXL_COMPILE_CACHE="$cache" python3 -m pytest "${SUITE[@]}" --benchmark-only -p no:cacheprovider \
            -q -rs --sdxl-model "$MODEL" --sdxl-variants "$variants" ${RUNS:+--sdxl-runs "$RUNS"} \
            --sdxl-report "$OUT/cache/session$session" > "$OUT/cache/session$session.txt" 2>&1
        echo "pytest exit status $?"
        grep -A 12 "sdxl: summary" "$OUT/cache/session$session.txt" | head -n 12
    done
    rm -rf "$cache"
fi

if has_step breakdown; then
    variant="${VARIANT:-tiny_vae+compile_unet}"
    cache=$(mktemp -d)
    mkdir -p "$OUT/breakdown"
    for call in 1 2 3; do
        echo "== breakdown: call $call of $variant ($((SECONDS - started)) s)"
        python3 lab/compile_breakdown.py --model "$MODEL" --variant "$variant" --cache "$cache" \
            --out "$OUT/breakdown/call$call.json" 2>&1 | without_transformers_chatter | tail -n 40
    done
    rm -rf "$cache"
fi

if has_step serving; then
    variants="${VARIANTS:-baseline,tiny_vae+graph_pipeline+batch}"
    mkdir -p "$OUT/serving"
    if [ -n "${RESUME:-}" ] && [ -e "$RESUME/serving/results.json" ]; then
        cp "$RESUME/serving/results.json" "$OUT/serving/results.json"
    fi
    resume=()
    [ -e "$OUT/serving/results.json" ] && resume=(--resume)
    prompts=()
    if [ -n "${BATCH:-}" ]; then
        # The protocol's first prompt, then BATCH timed prompts (the built-in five repeated): a batch
        # composition's timed calls are then batches of BATCH.
        python3 -c "
import sys
from pytest_sdxl.settings import DEFAULT_PROMPTS
count = 1 + int(sys.argv[1])
print('\n'.join(DEFAULT_PROMPTS[index % len(DEFAULT_PROMPTS)] for index in range(count)))" "$BATCH" \
            > "$OUT/serving/prompts.txt" || exit 1
        prompts=(--prompts "$OUT/serving/prompts.txt")
    fi
    echo "== serving over $variants ($((SECONDS - started)) s)"
    python3 -m pytest_sdxl run --model "$MODEL" --variants "$variants" ${RUNS:+--runs "$RUNS"} --quiet \
        "${prompts[@]}" "${resume[@]}" --report "$OUT/serving" 2>&1 | without_transformers_chatter | tail -n 60
fi

if has_step matrix; then
    mkdir -p "$OUT/matrix"
    echo "== matrix: full profile, session budget ${SESSION_BUDGET:-900} s ($((SECONDS - started)) s)"
    begun=$SECONDS
    python3 -m pytest_sdxl run --model "$MODEL" --profile full --session-budget "${SESSION_BUDGET:-900}" \
        ${VARIANTS:+--variants "$VARIANTS"} ${RUNS:+--runs "$RUNS"} --report "$OUT/matrix" 2>&1 \
        | without_transformers_chatter | tail -60
    echo "matrix: $((SECONDS - begun)) s from start to exit"
fi

if has_step compiles; then
    mkdir -p "$OUT/compiles"
    echo "== compiles: filling the compile cache ($((SECONDS - started)) s)"
    begun=$SECONDS
    python3 -m pytest_sdxl run --model "$MODEL" --profile gate --variant-budget 1 --runs 1 --quiet --no-chart \
        --variants "${VARIANTS:-$COMPILED_VARIANTS}" --report "$OUT/compiles" 2>&1 | without_transformers_chatter | tail -30
    echo "compiles: $((SECONDS - begun)) s from start to exit"
fi

if has_step tune; then
    resume=()
    [ -n "${RESUME:-}" ] && [ -e "$RESUME/tune/tune.json" ] && resume=(--resume "$RESUME/tune/tune.json")
    echo "== tune, budget ${TUNE_BUDGET:-8m} ($((SECONDS - started)) s)"
    python3 -m pytest_sdxl tune --model "$MODEL" --budget "${TUNE_BUDGET:-8m}" --out "$OUT/tune" \
        ${RUNS:+--runs "$RUNS"} ${VARIANTS:+--variants "$VARIANTS"} "${resume[@]}" 2>&1 | without_transformers_chatter
fi

if has_step power; then
    variant="${VARIANT:-batch}" inject="${INJECT:-host:5%}"
    inject_name="${inject//%/}"
    name="$OUT/power/${variant//+/_}-${inject_name//[:,]/-}"
    mkdir -p "$OUT/power"
    echo "== power on $variant, ${TRIALS:-10} trials ($((SECONDS - started)) s)"
    across=()
    if [ "${ACROSS:-rounds}" = processes ]; then
        # What a pull request's ab job gets: fresh processes a side, the gate profile, PROCESSES a side at most.
        name="$name-processes"
        across=(--across processes --profile gate ${PROCESSES:+--processes "$PROCESSES"} ${PIN:+--cpus "$PIN"})
        [ -n "${UNTOUCHED:-}" ] && name="$name-untouched-${UNTOUCHED//+/_}"
        [ -n "${VARIANT_BUDGET:-}" ] && across+=(--variant-budget "$VARIANT_BUDGET")
    fi
    json="${POWER_JSON:-$name.json}"
    python3 -m pytest_sdxl power --model "$MODEL" --variant "$variant" --trials "${TRIALS:-10}" --inject "$inject" \
        "${across[@]}" ${UNTOUCHED:+--untouched "$UNTOUCHED"} ${ROUNDS:+--rounds "$ROUNDS"} ${RUNS:+--runs "$RUNS"} \
        ${POWER_BUDGET:+--budget-s "$POWER_BUDGET"} ${WORK:+--work-folder "$WORK"} \
        ${CALIBRATION:+--calibration "$CALIBRATION"} ${POWER_JSON:+--resume} \
        --output "$name.md" --json "$json" \
        2>&1 | without_transformers_chatter
    if [ -n "${POWER_JSON:-}" ] && [ -e "$POWER_JSON" ]; then
        cp "$POWER_JSON" "$name.json"
    fi
    if [ -n "${WORK:-}" ]; then
        # The processes, for a next call to go on from (a trial cut between processes) and to read later.
        tar czf "$name-work.tgz" -C "$WORK" .
        # What each process cost and found: its start to first timed round, each variant's measuring seconds and
        # wall ratio (the power --json file keeps these per trial too, as process_figures).
        python3 - "$WORK" <<'PY' | tee "$name-processes.txt"
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("**/results.json")):
    data = json.loads(path.read_text())
    runs = [run for record in data["variants"] for run in record.get("runs", [])]
    start = next((run.get("process_start_s") for run in runs if run.get("process_start_s")), None)
    def ratio(record):  # its first run's fastest image over its reference's, as RunRecord.wall_ratio
        run = (record.get("runs") or [{}])[0]
        own, reference = run.get("gen_s"), run.get("reference_gen_s")
        return f"{min(own) / min(reference):.4f}" if own and reference else "-"
    spent = " ".join(
        f"{record['variant']} {record.get('measure_s')} s (wall_ratio {ratio(record)})" for record in data["variants"]
    )
    print(path.parent.relative_to(sys.argv[1]), f"start {start} s;", spent)
PY
    fi
fi

if has_step asv; then
    mkdir -p "$OUT/asv"
    echo "== asv: slower batch path against unchanged ($((SECONDS - started)) s)"
    python3 lab/asv_detection.py --trials "${TRIALS:-3}" --ratio "${RATIO:-plain}" --variant "${VARIANT:-baseline}" \
        --factor "${FACTOR:-1.03}" ${PIN:+--cpu-affinity "$PIN"} --out "$OUT/asv/${RATIO:-plain}" 2>&1 \
        | without_transformers_chatter
fi

if has_step start; then
    mkdir -p "$OUT/start"
    for index in $(seq "${PROCESSES:-3}"); do
        echo "== start: process $index of ${PROCESSES:-3} ($((SECONDS - started)) s)"
        begun=$SECONDS
        python3 -m pytest_sdxl run --model "$MODEL" --variants "${VARIANT:-baseline}" --runs 1 --profile gate \
            --report "$OUT/start/process-$index" 2>&1 | without_transformers_chatter | tail -25
        echo "process $index: $((SECONDS - begun)) s from start to exit"
    done
fi

if has_step threads; then
    mkdir -p "$OUT/threads"
    work="${WORK:-/tmp/threads}"
    rm -rf "$work" && mkdir -p "$work"
    pin=()
    # As ab and power pin their processes: every CPU but the first, which is left to the rest of the machine.
    command -v taskset > /dev/null && [ "$(nproc)" -gt 1 ] && pin=(taskset -c "1-$(($(nproc) - 1))")
    folders=()
    for index in $(seq "${PROCESSES:-4}"); do
        order="one default"
        [ $((index % 2)) -eq 0 ] && order="default one"  # ABBA: alternate which setting goes first
        for setting in $order; do
            folder="$work/$setting-$(printf %02d "$index")"
            echo "== threads: $setting, pair $index of ${PROCESSES:-4} ($((SECONDS - started)) s)"
            threads=()
            [ "$setting" = one ] && threads=(env OMP_NUM_THREADS=1)
            "${threads[@]}" "${pin[@]}" python3 -m pytest_sdxl run --model "$MODEL" \
                --variants "${VARIANTS:-batch,tiny_vae}" --profile gate --variant-budget "${VARIANT_BUDGET:-5}" \
                --runs 1 --quiet --no-chart --report "$folder" 2>&1 | without_transformers_chatter | tail -3
            folders+=("$folder")
        done
    done
    python3 lab/call_noise.py "${folders[@]}" | tee "$OUT/threads/noise.txt"
    (cd "$work" && find . -name results.json | tar czf "$OUT/threads/processes.tgz" -T -)
fi

if has_step profile; then
    mkdir -p "$OUT/profile"
    echo "== profile: one process's start under cProfile ($((SECONDS - started)) s)"
    python3 -m cProfile -o "$OUT/profile/start.prof" -m pytest_sdxl run --model "$MODEL" --variants "${VARIANT:-baseline}" \
        --runs 1 --profile gate ${VARIANT_BUDGET:+--variant-budget "$VARIANT_BUDGET"} --report "$OUT/profile/report" 2>&1 \
        | without_transformers_chatter | tail -3
    python3 -c "import pstats, sys; pstats.Stats(sys.argv[1], stream=sys.stdout).sort_stats('cumulative').print_stats(90)" \
        "$OUT/profile/start.prof" > "$OUT/profile/start.txt"
fi

if has_step ab; then
    echo "== ab: this checkout against itself ($((SECONDS - started)) s)"
    begun=$SECONDS
    python3 -m pytest_sdxl ab --base-python python3 --head-python python3 --model "$MODEL" \
        --variants "${VARIANTS:-baseline,batch,tiny_vae,tiny_vae+batch,cached_embeds,upcast_vae}" \
        --pairs "${PAIRS:-2}" --budget-s "${AB_BUDGET:-300}" ${VARIANT_BUDGET:+--variant-budget "$VARIANT_BUDGET"} \
        --profile gate --report "$OUT/ab" 2>&1 \
        | without_transformers_chatter
    echo "ab: $((SECONDS - begun)) s"
fi

if has_step spread; then
    mkdir -p "$OUT/spread"
    for pin in "" ${PIN:-}; do
        stem="$OUT/spread/free"
        [ -n "$pin" ] && stem="$OUT/spread/pinned-${pin//,/_}"
        echo "== spread of the batch ratio over fresh processes${pin:+, pinned to CPUs $pin} ($((SECONDS - started)) s)"
        python3 lab/ratio_processes.py --variant "${VARIANT:-tiny_vae+cuda_graph+cached_embeds}" \
            --processes "${PROCESSES:-6}" --seconds "${SPREAD_SECONDS:-240}" ${pin:+--pin "$pin"} \
            --out "$stem" 2>&1 | without_transformers_chatter
    done
fi
echo "done in $((SECONDS - started)) s"
