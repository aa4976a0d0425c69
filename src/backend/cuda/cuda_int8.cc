// CUDA INT8 matmul (docs/ops.md "INT8 matmul"): W8A8 quantises x per token into stream-ordered
// scratch, then runs the mma.sync s8 GEMM; weight-only runs the bf16 hi + lo mma.sync GEMM on
// f32 x (split-K partials in scratch), or its CUDA-core fallback for unaligned operands.
// Invariant: op_checks first; operands are staged with cuda::Staging as in cuda_backend.cc, so
// host and device tensors both work; nothing is read on the host.
#include "kernels/cuda/gemm/gemm_int8.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {

namespace kc = kernels::cuda;

Status cuda_matmul_int8(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                        const Tensor& w_scale, Int8Mode mode, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_int8(x, w, w_scale, mode, out));
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  Staging st(ctx.stream, ctx.arena, "matmul_int8");
  const int hx = st.add(x, false), hw = st.add(w, false), hs = st.add(w_scale, false);
  const int ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (M == 0 || N == 0) return st.finish();
  const Tensor dx = st.dev(hx), dw = st.dev(hw), ds = st.dev(hs);
  Tensor dout = st.dev(ho);
  const auto* wp = static_cast<const int8_t*>(dw.data());
  switch (mode) {
    case Int8Mode::kW8A8: {
      if (ctx.sm_version < 80) {
        return unimplemented("matmul_int8: W8A8 needs sm_80+ (device is sm_{})", ctx.sm_version);
      }
      const int64_t ldq = kc::int8::q_ldq(K);
      const bool split = kc::int8::w8a8_splits(M, N, K, ctx.num_sms) > 1;
      const int64_t partial_bytes = split ? M * N * 4 : 0;
      TESSERA_ASSIGN_OR_RETURN(void* scratch, st.scratch(partial_bytes + M * ldq + M * 4));
      auto* partial = split ? static_cast<int32_t*>(scratch) : nullptr;
      auto* q = static_cast<int8_t*>(scratch) + partial_bytes;
      auto* x_scale = reinterpret_cast<float*>(q + M * ldq);
      TESSERA_CUDA_RETURN(kc::quantize_rows_int8(dx.data_as<const float>(), dx.stride_bytes(0) / 4,
                                                 M, K, q, ldq, x_scale, ctx.stream),
                          "matmul_int8 quantize");
      TESSERA_CUDA_RETURN(
          kc::gemm_w8a8(q, ldq, x_scale, wp, dw.stride_bytes(0), ds.data_as<const float>(),
                        dout.data_as<float>(), dout.stride_bytes(0) / 4, M, N, K, ctx.num_sms,
                        partial, ctx.stream),
          "matmul_int8 (W8A8)");
      return st.finish();
    }
    case Int8Mode::kWeightOnly: {
      // Split-K partials for small M; unused (but harmless) when the CUDA-core fallback runs.
      const int64_t partial_floats = kc::wo::workspace_floats(M, N, K, ctx.num_sms);
      float* partial = nullptr;
      if (partial_floats > 0) {
        TESSERA_ASSIGN_OR_RETURN(void* scratch, st.scratch(partial_floats * 4));
        partial = static_cast<float*>(scratch);
      }
      TESSERA_CUDA_RETURN(kc::gemm_int8_weight_only(
                              dx.data_as<const float>(), dx.stride_bytes(0) / 4, wp,
                              dw.stride_bytes(0), ds.data_as<const float>(), dout.data_as<float>(),
                              dout.stride_bytes(0) / 4, M, N, K, ctx.num_sms, partial, ctx.stream),
                          "matmul_int8 (weight-only)");
      return st.finish();
    }
  }
  return invalid_argument("matmul_int8: unknown mode");
}

}  // namespace tessera::backend::cuda
