#!/usr/bin/env bash
# The asv suite on this GPU: one quick run of the suite with the runner's own CUDA torch, then the
# side-by-side ratios repeated in fresh processes, to show how far they move on an unchanged commit.
#
# Run from the repository root on a GPU machine with the wheels installed (torch with CUDA,
# diffusers, asv and asv_runner, this package). Writes under "$OUT" (default ./gpu-out):
#   docs/results/<card>-<date>-asv-quick.txt    `asv run --python=same --quick` of the suite
#   docs/results/<card>-<date>-asv-ratios.json  each ratio benchmark REPEATS times, one process each
#   docs/results/<card>-<date>-asv-ratios.md    the same as a table: median, min, max, spread
# and copies them into the working tree's docs/results/ too.
#
# Budget: each step about 6 minutes on an H100, so run them as two calls (STEPS=quick, then
# STEPS=ratios) under a 10-minute limit. The quick run covers VARIANTS (a short list by default:
# every benchmark process builds the full SDXL-Turbo architecture with random fp16 weights afresh)
# with one protocol run per variant, cut off at QUICK_SECONDS; the ratios run REPEATS times each.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu-out}"
MODEL="${MODEL:-random:sdxl-turbo}"
VARIANTS="${VARIANTS:-baseline,batch,tiny_vae,tiny_vae+batch}"
REPEATS="${REPEATS:-3}"
QUICK_SECONDS="${QUICK_SECONDS:-420}"
STEPS="${STEPS:-quick,ratios}"
mkdir -p "$OUT/docs/results" "$OUT/home" docs/results
started=$SECONDS

CARD=$(python -c "
import torch
from pytest_sdxl.machine.probes import card_slug
print(card_slug(torch.cuda.get_device_name(0) if torch.cuda.is_available() else None))")
STEM="$CARD-$(date -u +%Y-%m-%d)"
echo "card $CARD, output $OUT"

export PYTEST_SDXL_MODEL="$MODEL" PYTEST_SDXL_VARIANTS="$VARIANTS" PYTEST_SDXL_RUNS=1
# asv keeps its machine description in $HOME; a folder of our own leaves the runner's HOME alone.
HOME="$OUT/home" python -m asv machine --yes --machine "$CARD" > /dev/null

if [[ ",$STEPS," == *",quick,"* ]]; then
    echo "== 1. asv run --python=same --quick, variants $VARIANTS ($((SECONDS - started)) s)"
    HOME="$OUT/home" timeout "$QUICK_SECONDS" python -m asv run --python=same --quick --show-stderr \
        --machine "$CARD" > "$OUT/docs/results/$STEM-asv-quick.txt" 2>&1
    echo "asv exit status $? (124: cut off at $QUICK_SECONDS s)"
    grep -v "^ *\[transformers\]" "$OUT/docs/results/$STEM-asv-quick.txt" | tail -n 80
fi

if [[ ",$STEPS," == *",ratios,"* ]]; then
echo "== 2. ratios, $REPEATS fresh processes each ($((SECONDS - started)) s)"
python - "$REPEATS" "$OUT/docs/results/$STEM-asv-ratios" <<'EOF'
import json, statistics, subprocess, sys

repeats, stem = int(sys.argv[1]), sys.argv[2]
# (class, method, parameters): the batch path twice, and two variants over the baseline.
cases = [
    ("BatchOverOneByOne", "track_batch_over_one_by_one", ["baseline", 4]),
    ("BatchOverOneByOne", "track_batch_over_one_by_one", ["tiny_vae", 4]),
    ("VariantOverBaseline", "track_variant_over_baseline", ["batch"]),
    ("VariantOverBaseline", "track_variant_over_baseline", ["tiny_vae"]),
]
measure = """
import json, sys
sys.path.insert(0, ".")
from benchmarks import bench_ratios
name, method, parameters = json.loads(sys.argv[1])
benchmark = getattr(bench_ratios, name)()
benchmark.setup(*parameters)
try:
    print(json.dumps(getattr(benchmark, method)(*parameters)))
finally:
    benchmark.teardown(*parameters)
"""
results = []
for name, method, parameters in cases:
    values = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", measure, json.dumps([name, method, parameters])],
                              capture_output=True, text=True)
        if done.returncode == 0:
            values.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            print(done.stderr[-2000:], file=sys.stderr)
    row = {"benchmark": f"{name}.{method}{tuple(parameters)}", "values": values}
    if values:
        row.update(median=statistics.median(values), spread=max(values) / min(values) - 1)
    results.append(row)
    print(json.dumps(row), flush=True)
with open(stem + ".json", "w") as handle:
    json.dump(results, handle, indent=1)
with open(stem + ".md", "w") as handle:
    handle.write("| benchmark | median | min | max | max/min - 1 |\n|---|---|---|---|---|\n")
    for row in results:
        if row["values"]:
            handle.write(f"| {row['benchmark']} | {row['median']:.4f} | {min(row['values']):.4f} | "
                         f"{max(row['values']):.4f} | {100 * row['spread']:.1f} % |\n")
        else:
            handle.write(f"| {row['benchmark']} | failed | | | |\n")
EOF
cat "$OUT/docs/results/$STEM-asv-ratios.md"
fi

cp "$OUT/docs/results/$STEM"-asv-* docs/results/ 2>/dev/null || true
echo "done in $((SECONDS - started)) s"
