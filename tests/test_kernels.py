"""Kernel time from Chrome traces, kernel grouping and differences, and the profiled pass.

The traces under tests/data are written by hand in Kineto's format. ``two_calls.json`` holds two
calls with every stage; the second call's UNet is one CUDA graph replay (three kernels on one
correlation id). It also has a memcpy and a memset (not kernels), a kernel launched between the
calls, a kernel without a launch event inside the second call's GPU ranges (attributed by its GPU
time) and one outside them. ``one_call_changed.json`` is one call with a slower GEMM, an added
Triton kernel and im2col gone. The profiled pass runs on random:tiny on the CPU.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_sdxl import settings
from pytest_sdxl.analysis.kernels import (
    KernelChange,
    kernel_diff,
    kernel_diff_table,
    kernel_group,
    load_trace,
    summarize_trace,
)
from pytest_sdxl.measure.profiling import profile_calls
from pytest_sdxl.pipelines import sources
from pytest_sdxl.variants import registry as variants
from pytest_sdxl.variants.assembly import VariantPipeline

DATA = Path(__file__).parent / "data"
ELEMENTWISE = "at::native::vectorized_elementwise_kernel"
GEMM = (
    "sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel"
    "__5x_cublas"
)
FLASH = "pytorch_flash::flash_fwd_kernel"
CONVOLUTION = (
    "sm80_xmma_fprop_implicit_gemm_indexed_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x64_stage4_warpsize2x2x1_g1"
    "_tensor16x8x16_kernel_cudnn"
)
IM2COL = "at::native::im2col_kernel"
TRITON = "triton_poi_fused_add_0"


def test_two_calls_per_call_kernel_time_and_count() -> None:
    summary = summarize_trace(load_trace(DATA / "two_calls.json"))
    assert summary.calls == 2
    # Call 0: 10 + 40 + 25 + 2 + 30; the memcpy is not a kernel.
    # Call 1: 11 + a graph replay of 41 + 26 + 3 + 31, and im2col (7) found by its GPU time.
    assert summary.call_kernel_us == [107.0, 119.0]
    assert summary.call_kernels == [5, 6]


def test_two_calls_stage_split() -> None:
    summary = summarize_trace(load_trace(DATA / "two_calls.json"))
    assert summary.stage_kernel_us == {
        "text_encode": 10.0 + 11.0,
        "unet": 40.0 + 25.0 + 41.0 + 26.0 + 3.0,
        "vae_decode": 30.0 + 31.0 + 7.0,
        "other": 2.0,  # launched inside call 0 between the UNet and the VAE
    }


def test_two_calls_kernel_table() -> None:
    summary = summarize_trace(load_trace(DATA / "two_calls.json"))
    # The kernel launched between the calls (100 us) and the one outside every GPU range (50 us) are left out.
    assert summary.table == {
        ELEMENTWISE: (4, 26.0),
        GEMM: (2, 81.0),
        FLASH: (2, 51.0),
        CONVOLUTION[:120]: (2, 61.0),  # a group name is cut at 120 characters
        IM2COL: (1, 7.0),
    }
    assert sum(count for count, _ in summary.table.values()) == sum(summary.call_kernels)
    assert sum(us for _, us in summary.table.values()) == pytest.approx(sum(summary.call_kernel_us))


def test_a_trace_without_calls_has_none() -> None:
    summary = summarize_trace({"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "ts": 1.0, "dur": 2.0}]})
    assert (summary.calls, summary.call_kernel_us, summary.call_kernels, summary.table) == (0, [], [], {})
    assert set(summary.stage_kernel_us) == {"text_encode", "unet", "vae_decode", "other"}


def test_innermost_stage_wins() -> None:
    def complete(
        category: str, name: str, start: float, duration: float, correlation: int | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"ph": "X", "cat": category, "name": name, "ts": start, "dur": duration}
        if correlation is not None:
            event["args"] = {"correlation": correlation}
        return event

    trace = {
        "traceEvents": [
            complete("user_annotation", "sdxl:call#0", 0.0, 100.0),
            complete("user_annotation", "sdxl:text_encode", 10.0, 50.0),
            complete("user_annotation", "sdxl:unet", 20.0, 10.0),  # nested in text_encode
            complete("cuda_runtime", "cudaLaunchKernel", 25.0, 1.0, correlation=1),
            complete("cuda_runtime", "cudaLaunchKernel", 40.0, 1.0, correlation=2),
            complete("kernel", "a", 500.0, 3.0, correlation=1),
            complete("kernel", "b", 510.0, 5.0, correlation=2),
        ]
    }
    stages = summarize_trace(trace).stage_kernel_us
    assert (stages["unet"], stages["text_encode"]) == (3.0, 5.0)


def test_gzip_trace_loads_the_same(tmp_path: Path) -> None:
    text = (DATA / "two_calls.json").read_bytes()
    compressed = tmp_path / "trace.json.gz"
    compressed.write_bytes(gzip.compress(text))
    assert load_trace(compressed) == load_trace(DATA / "two_calls.json")
    misnamed = tmp_path / "trace.json"  # compressed content is recognized by its bytes, not its name
    misnamed.write_bytes(gzip.compress(text))
    assert summarize_trace(load_trace(misnamed)).call_kernels == [5, 6]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json at all", "is not a Chrome trace"),
        (b'{"variants": []}', "has no traceEvents list"),
        (b'"a string"', "has no traceEvents list"),
        (gzip.compress(b"{ broken", mtime=0), "is not a Chrome trace"),
        (b"\x1f\x8b truncated gzip", "is not a Chrome trace"),
    ],
)
def test_a_file_that_is_not_a_trace_is_named(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as raised:
        load_trace(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor<float, float, float, "
            "at::native::binary_internal::MulFunctor<float>>, at::detail::Array<char*, 2>>(int, "
            "at::native::AUnaryFunctor<float, float, float, at::native::binary_internal::MulFunctor<float>>, "
            "at::detail::Array<char*, 2>)",
            ELEMENTWISE,
        ),
        (
            "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::"
            "direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::"
            "operator()() const::{lambda(c10::Half)#1}>(at::TensorIteratorBase&, at::native::direct_copy_kernel_cuda"
            "(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::"
            "{lambda(c10::Half)#1} const&)::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<at::native::"
            "direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::"
            "operator()() const::{lambda(c10::Half)#1}>(at::TensorIteratorBase&, at::native::direct_copy_kernel_cuda"
            "(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::"
            "{lambda(c10::Half)#1} const&)::{lambda(int)#1})",
            "at::native::elementwise_kernel",
        ),
        (
            "void at::native::(anonymous namespace)::CatArrayBatchedCopy_aligned16_contig<at::native::(anonymous "
            "namespace)::OpaqueType<2u>, unsigned int, 4, 64, 64>(at::native::(anonymous namespace)::OpaqueType<2u>*, "
            "at::native::(anonymous namespace)::CatArrInputTensorMetadata<at::native::(anonymous namespace)::"
            "OpaqueType<2u>, unsigned int, 64, 64>, at::native::(anonymous namespace)::TensorSizeStride<unsigned int, "
            "4u>, int, unsigned int)",
            "at::native::(anonymous namespace)::CatArrayBatchedCopy_aligned16_contig",
        ),
        (GEMM, GEMM),
        ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", "nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT"),
        (
            "void cutlass::Kernel2<cutlass_80_wmma_tensorop_f16_s161616gemm_f16_32x32_128x2_tn_align8>"
            "(cutlass_80_wmma_tensorop_f16_s161616gemm_f16_32x32_128x2_tn_align8::Params)",
            "cutlass::Kernel2<cutlass_80_wmma_tensorop_f16_s161616gemm_f16_32x32_128x2_tn_align8>",
        ),
        (
            "void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<flash::"
            "CollectiveMainloopFwdSm90<2, cute::tuple<cute::C<1>, cute::C<1>, cute::C<1>>, cute::tuple<cute::C<128>, "
            "cute::C<128>, cute::C<64>>, 64, cutlass::half_t, float, cutlass::arch::Sm90, false, false>>>>"
            "(flash::FlashAttnFwdSm90<...>::Params)",
            "cutlass::device_kernel<flash::enable_sm90_or_later>",
        ),
        (
            "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, "
            "cutlass::half_t, Flash_kernel_traits<64, 128, 128, 4, cutlass::half_t>>, false, false, false, false, "
            "true, true, false, false>(Flash_fwd_params)",
            FLASH,
        ),
        (
            "fmha_cutlassF_f16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::half_t, "
            "cutlass::arch::Sm80, true, 64, 64, 64, true, true>::Params)",
            "fmha_cutlassF_f16_aligned_64x64_rf_sm80",
        ),
        (
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0",
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0",
        ),
        (
            "void cudnn::engines_precompiled::nchwToNhwcKernel<__half, __half, float, false, true, "
            "(cudnnKernelDataType_t)0>(cudnn::engines_precompiled::nchw2nhwc_params_t<float>, __half const*, __half*)",
            "cudnn::engines_precompiled::nchwToNhwcKernel",
        ),
        (TRITON, TRITON),
        ("x" * 300, "x" * 120),
    ],
)
def test_kernel_group(name: str, group: str) -> None:
    assert kernel_group(name) == group


def test_kernel_diff_per_image() -> None:
    base = summarize_trace(load_trace(DATA / "two_calls.json"))
    new = summarize_trace(load_trace(DATA / "one_call_changed.json"))
    changes = kernel_diff(base.table, new.table, base_images=2, new_images=1)
    # Elementwise, flash attention and the convolution cost the same per image: left out.
    assert changes == [
        KernelChange(GEMM, base_count=1.0, new_count=1.0, base_us=40.5, new_us=50.0),
        KernelChange(TRITON, base_count=0.0, new_count=1.0, base_us=0.0, new_us=4.0),
        KernelChange(IM2COL, base_count=0.5, new_count=0.0, base_us=3.5, new_us=0.0),
    ]
    assert [change.us_change for change in changes] == [9.5, 4.0, -3.5]
    assert kernel_diff(base.table, new.table, 2, 1, top=1) == changes[:1]
    assert kernel_diff(base.table, base.table, 2, 2) == []


def test_kernel_diff_breaks_time_ties_by_count() -> None:
    base = {"same_time_more_kernels": (2, 10.0), "same_time_one_more": (1, 10.0)}
    new = {"same_time_more_kernels": (6, 20.0), "same_time_one_more": (2, 20.0)}
    assert [change.group for change in kernel_diff(base, new, 1, 1)] == ["same_time_more_kernels", "same_time_one_more"]


def test_kernel_diff_needs_images() -> None:
    with pytest.raises(ValueError, match="image counts must be positive"):
        kernel_diff({}, {}, 0, 1)


def test_kernel_diff_table() -> None:
    base = summarize_trace(load_trace(DATA / "two_calls.json"))
    new = summarize_trace(load_trace(DATA / "one_call_changed.json"))
    table = kernel_diff_table(kernel_diff(base.table, new.table, 2, 1))
    assert table.splitlines() == [
        "| kernel group | count/image base -> new | us/image base -> new | change |",
        "|---|---|---|---|",
        f"| `{GEMM}` | 1 -> 1 | 40.5 -> 50.0 | +9.5 us (+23.5%) |",
        f"| `{TRITON}` | 0 -> 1 | 0.0 -> 4.0 | new |",
        f"| `{IM2COL}` | 0.5 -> 0 | 3.5 -> 0.0 | removed |",
    ]


@pytest.fixture(scope="module")
def tiny_pipeline(one_torch_thread: None) -> Iterator[VariantPipeline]:
    components = sources.components_for(settings.resolve({}, {}, {}))
    pipeline = VariantPipeline(components, variants.compose([]), 64)
    yield pipeline
    pipeline.close()


def test_profile_calls_on_the_cpu(tiny_pipeline: VariantPipeline, tmp_path: Path) -> None:
    pipe = tiny_pipeline.pipe
    tiny_pipeline.generate(["warm"], [0])  # a pipeline call sets attributes of its own
    attributes, vae_attributes = set(vars(pipe)), set(vars(pipe.vae))
    trace_path = tmp_path / "traces" / "baseline.json"

    summary = profile_calls(
        pipe, lambda: tiny_pipeline.generate(["a prompt"], [0]), 2, torch.device("cpu"), trace_path=trace_path
    )

    assert summary.calls == 2
    assert summary.call_kernels == [0, 0] and summary.call_kernel_us == [0.0, 0.0] and summary.table == {}
    events = json.loads(trace_path.read_text())["traceEvents"]
    ranges = [event["name"] for event in events if event.get("cat") == "user_annotation"]
    assert ranges.count("sdxl:call#0") == ranges.count("sdxl:call#1") == 1
    assert ranges.count("sdxl:text_encode") == ranges.count("sdxl:unet") == ranges.count("sdxl:vae_decode") == 2
    assert [path.name for path in trace_path.parent.iterdir()] == ["baseline.json"]  # no temporary left
    assert set(vars(pipe)) == attributes and set(vars(pipe.vae)) == vae_attributes
    assert not pipe.unet._forward_hooks and not pipe.unet._forward_pre_hooks
    assert not pipe.unet._forward_hooks_always_called


def test_profile_calls_without_a_trace_path(
    tiny_pipeline: VariantPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    summary = profile_calls(tiny_pipeline.pipe, lambda: tiny_pipeline.generate(["a"], [0]), 1, torch.device("cpu"))
    assert summary.calls == 1
    assert list(tmp_path.iterdir()) == []  # the temporary trace is gone


def test_profile_calls_writes_a_compressed_trace(tiny_pipeline: VariantPipeline, tmp_path: Path) -> None:
    trace_path = tmp_path / "trace.json.gz"
    summary = profile_calls(
        tiny_pipeline.pipe, lambda: tiny_pipeline.generate(["a"], [0]), 1, torch.device("cpu"), trace_path=trace_path
    )
    assert trace_path.read_bytes()[:2] == b"\x1f\x8b"
    assert summarize_trace(load_trace(trace_path)) == summary


def test_a_failing_call_leaves_the_pipeline_as_it_was(tiny_pipeline: VariantPipeline, tmp_path: Path) -> None:
    pipe = tiny_pipeline.pipe

    def failing_call() -> None:
        pipe.encode_prompt(prompt="a", device=torch.device("cpu"), do_classifier_free_guidance=False)
        raise RuntimeError("the call failed")

    with pytest.raises(RuntimeError, match="the call failed"):
        profile_calls(pipe, failing_call, 2, torch.device("cpu"), trace_path=tmp_path / "trace.json")
    assert "encode_prompt" not in vars(pipe) and "decode" not in vars(pipe.vae)
    assert not pipe.unet._forward_hooks and not pipe.unet._forward_pre_hooks
    assert list(tmp_path.iterdir()) == []  # no trace and no temporary
