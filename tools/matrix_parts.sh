# The whole variant matrix of docs/results (2026-11-27e's 27 variants, cpu_offload and compile_kernels), split
# into parts that each fit one device command (600 s) on one GPU at one run a variant, from a cold compile
# cache. Sourced by tools/gpu_workers.sh and tools/gpu_side_by_side.sh (PART=k). Estimates from 2026-11-27e's
# lanes, cold, one run: part 1 ~420 s (two torchao compiles), part 2 ~460 s, part 3 ~400 s, part 4 ~330 s.
# Left out, as in 2026-11-27e: compile_max_autotune (no compile within 4 minutes, 2026-11-27d), and xformers,
# tome and vae_tiling (their wheels are not carried to the GPU machines, or lossy at 512x512 with no gain).
# shellcheck disable=SC2034  # read by the scripts that source this file
MATRIX_PARTS=(
    "baseline,quant_int8+compile_unet,quant_fp8+compile_unet"
    "baseline,compile_unet,compile_pipeline,compile_regions,trace_unet,quant_int8,compile_kernels"
    "baseline,cpu_offload,cuda_graph,tiny_vae+cuda_graph+cached_embeds+batch,tiny_vae+graph_pipeline+batch,graph_pipeline,quant_fp8,batch,upcast_vae,fp16_vae"
    "baseline,tiny_vae,vae_slicing+batch,channels_last,sdpa_flash,sdpa_cudnn,sdpa_efficient,sdpa_math,cached_embeds,bf16,fused_qkv,tiny_vae+batch"
)

# Exits with status 2 and says what is accepted unless $1 names a part; both PART-taking scripts call it
# before they install anything.
require_part() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "${#MATRIX_PARTS[@]}" ]; then
        echo "PART=$1: give a part from 1 to ${#MATRIX_PARTS[@]} (tools/matrix_parts.sh)"
        exit 2
    fi
}
