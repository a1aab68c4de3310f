# The whole variant matrix of docs/results (2026-11-27e's 27 variants, cpu_offload and compile_kernels), split
# into parts that each fit one device command (600 s) on one GPU through the plugin at its defaults (3 runs),
# from a cold compile cache, on 16 CPUs. Sourced by tools/gpu_workers.sh and tools/gpu_side_by_side.sh (PART=k).
# Sizes from 2026-11-27i: about 85 s an eager variant (part 4 of the old split, cut after 6 of its 12 in 527 s),
# a compiled one its cold compile plus about 70 s, cpu_offload and quant_int8 their `run` figures there (about
# 420 s and 330 s). Each part is about 400-490 s. The baseline is in the first part only: a session without
# it builds its PSNR reference aside, so the parts add up to the matrix measured once, and the whole matrix's
# wall time on n GPUs is the sum of its parts'. Each variant's measure_s in a part's report is its real cost.
# Left out, as in 2026-11-27e: compile_max_autotune (no compile within 4 minutes, 2026-11-27d), and xformers,
# tome and vae_tiling (their wheels are not carried to the GPU machines, or lossy at 512x512 with no gain).
# shellcheck disable=SC2034  # read by the scripts that source this file
MATRIX_PARTS=(
    "baseline,quant_int8+compile_unet"
    "quant_fp8+compile_unet,tiny_vae,fused_qkv"
    "cpu_offload"
    "quant_int8,cached_embeds"
    "compile_kernels,compile_unet,tiny_vae+batch"
    "compile_pipeline,quant_fp8,upcast_vae"
    "compile_regions,trace_unet,cuda_graph,graph_pipeline,tiny_vae+cuda_graph+cached_embeds+batch"
    "tiny_vae+graph_pipeline+batch,fp16_vae,vae_slicing+batch,channels_last,bf16"
    "sdpa_flash,sdpa_cudnn,sdpa_efficient,sdpa_math,batch"
)

# Exits with status 2 and says what is accepted unless $1 names a part, or several joined by commas ("1,2":
# one session over both, as a two-GPU session that takes two one-GPU parts in the same time does); the
# scripts that take PART call it before they install anything.
require_part() {
    local part
    [[ "$1" =~ ^[0-9]+(,[0-9]+)*$ ]] || refuse_part "$1"
    for part in ${1//,/ }; do
        { [ "$part" -ge 1 ] && [ "$part" -le "${#MATRIX_PARTS[@]}" ]; } || refuse_part "$1"
    done
}

refuse_part() {
    echo "PART=$1: give a part from 1 to ${#MATRIX_PARTS[@]}, or several joined by commas (tools/matrix_parts.sh)"
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
