# shellcheck shell=bash
# Sourced by lab/lanes.sh and lab/steps.sh: the conventions of the one kind of host the docs' figures were
# measured on (see lab/README.md), in one place. A GPU machine reached by a device command that stops at
# 600 s, brings back few files from $OUT, has torch with CUDA but no diffusers and no network: the wheels
# travel in $LAB_WHEELS and are installed once a machine into /tmp/site.
set -uo pipefail
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$LAB_ROOT" || exit 1
OUT="${OUT:-$PWD/gpu-out}"
MODEL="${MODEL:-random:sdxl-turbo}"
LAB_WHEELS="${LAB_WHEELS:-.whl}"
export OUT MODEL PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
# Bytecode in one folder every process shares: profiled on the GPU host, a fresh process compiled about 2,800
# modules from source (torch, diffusers, transformers; 8.8 of its 39 s under cProfile), as nothing was cached
# beside the image's packages. A CI runner's environment has its bytecode from pip; this gives the lab's
# processes the same from their second on.
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-/tmp/pycache}"
unset PYTHONDONTWRITEBYTECODE

# Installs the carried wheels and the project (for its pytest11 entry point) once a machine, when
# $LAB_WHEELS exists; a machine without it is taken to have everything installed. The tree's own code
# comes first on PYTHONPATH either way, so a lab run measures the checkout it was started from.
lab_install() {
    if [ -d "$LAB_WHEELS" ] && [ ! -e /tmp/site-project/.installed ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$LAB_WHEELS"/*.whl || return 1
        python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site-project . || return 1
        touch /tmp/site-project/.installed
    fi
    export PYTHONPATH="$PWD:/tmp/site-project:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
}

# The whole variant matrix split into parts that each fit one 600 s device command on one H100 with 16 CPUs,
# through the plugin at its defaults (3 runs), from a cold compile cache. Sizes as measured there: about 85 s
# an eager variant, a compiled one its cold compile plus about 70 s, cpu_offload about 420 s and quant_int8
# about 330 s; each part about 400-490 s. The baseline is in the first part only: a session without it builds
# its PSNR reference aside, so the parts add up to the matrix measured once. Left out: compile_max_autotune
# (no compile within 4 minutes), xformers, tome and vae_tiling (not carried, or lossy at 512x512 with no gain).
# shellcheck disable=SC2034  # read by the scripts that source this file
MATRIX_PARTS=(
    "baseline,quant_int8+compile_unet"
    "quant_fp8+compile_unet,tiny_vae,fused_qkv"
    "cpu_offload"
    "quant_int8,cached_embeds,pinned_device"
    "compile_kernels,compile_unet,tiny_vae+batch"
    "compile_pipeline,quant_fp8,upcast_vae"
    "compile_regions,trace_unet,cuda_graph,graph_pipeline,tiny_vae+cuda_graph+cached_embeds+batch"
    "tiny_vae+graph_pipeline+batch,fp16_vae,vae_slicing+batch,channels_last,bf16"
    "sdpa_flash,sdpa_cudnn,sdpa_efficient,sdpa_math,batch"
)

# The GPU's whole default selection (29 variants) in two halves for the `full` profile under a session budget,
# each one device command: the first holds the baseline (the other builds its PSNR reference aside) and the
# eager variants with cpu_offload, the slowest eager one; the second every variant that compiles, traces,
# captures or quantizes, to be measured from a compile cache filled on the same machine (the `compiles` step of
# lab/steps.sh) since their cold compiles alone take longer than a command (the results page of 2026-11-27e:
# compile_unet 97 s, compile_pipeline 143 s cold).
# shellcheck disable=SC2034  # read by the scripts that source this file
MATRIX_HALVES=(
    "baseline,fp16_vae,tiny_vae,upcast_vae,bf16,vae_slicing,vae_tiling,fused_qkv,channels_last,xformers,sdpa_math,sdpa_flash,sdpa_efficient,sdpa_cudnn,tome,cpu_offload"
    "quant_int8,quant_fp8,trace_unet,compile_kernels,cuda_graph,compile_unet,compile_regions,compile_max_autotune,compile_pipeline,graph_pipeline,pinned_device,cached_embeds,batch"
)
# The variants of the second half whose first generation compiles (compile_max_autotune left out: under a
# session budget it gives up at its share, and an autotuned compile does not fit a command).
# shellcheck disable=SC2034  # read by lab/steps.sh
COMPILED_VARIANTS="trace_unet,compile_kernels,compile_unet,compile_regions,compile_pipeline"

# Exits with status 2, saying what is accepted, unless $1 names a part or several joined by commas ("1,2":
# one session over both).
require_part() {
    local part
    [[ "$1" =~ ^[0-9]+(,[0-9]+)*$ ]] || refuse_part "$1"
    for part in ${1//,/ }; do
        { [ "$part" -ge 1 ] && [ "$part" -le "${#MATRIX_PARTS[@]}" ]; } || refuse_part "$1"
    done
}

refuse_part() {
    echo "PART=$1: give a part from 1 to ${#MATRIX_PARTS[@]}, or several joined by commas (lab/host.sh)"
    exit 2
}

# The variants of the parts in $1 (as require_part accepts it), comma-separated, in part order.
part_variants() {
    local part joined=""
    for part in ${1//,/ }; do
        joined="${joined:+$joined,}${MATRIX_PARTS[$((part - 1))]}"
    done
    echo "$joined"
}
