// CUDA dense block-scaled FP8 matmul (DeepSeek-V3 weights): 128x128 weight blocks quantise the
// activations per row per 128-wide K group to e4m3 (plus residual codes when M <= 16) and run
// the tensor-core GEMM (CUDA-core on sm_80); other block shapes take an exact f32-activation
// CUDA-core kernel. Invariant: operands are checked (check_matmul_block_scaled) and staged like
// cuda_backend.cc, so host and device tensors both work; scratch (codes, scales, split-K partials)
// is per call.
#include <algorithm>

#include "kernels/cuda/gemm/gemm.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {

namespace kc = kernels::cuda;

Status cuda_matmul_block_scaled(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                                const Tensor& w_scale_inv, const BlockScaleParams& block,
                                Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_block_scaled(x, w, w_scale_inv, block, out));
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  Staging st(ctx.stream, ctx.arena, "matmul_block_scaled");
  const int hx = st.add(x, false), hw = st.add(w, false), hs = st.add(w_scale_inv, false);
  const int ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (M == 0 || N == 0) return st.finish();
  const Tensor dx = st.dev(hx), dw = st.dev(hw), ds = st.dev(hs);
  Tensor dout = st.dev(ho);
  const int64_t ldx = K > 0 ? dx.stride_bytes(0) / 4 : 0;
  const int64_t ldw = K > 0 ? dw.stride_bytes(0) : 0;
  const int64_t ld_ws = ds.ndim() == 2 && ds.dim(1) > 0 ? ds.stride_bytes(0) / 4 : 0;
  const int64_t ldo = dout.stride_bytes(0) / 4;
  const float* xp = K > 0 ? dx.data_as<const float>() : nullptr;
  const auto* wp = static_cast<const uint8_t*>(K > 0 ? dw.data() : nullptr);
  const float* sp = ld_ws > 0 ? ds.data_as<const float>() : nullptr;

  if (block.block_n != 128 || block.block_k != 128) {
    TESSERA_CUDA_RETURN(
        kc::gemm_fp8_dequant_any_block(xp, ldx, wp, ldw, sp, ld_ws, block.block_n, block.block_k,
                                       dout.data_as<float>(), ldo, M, N, K, ctx.stream),
        "matmul_block_scaled (any block)");
    return st.finish();
  }
  const int64_t groups = (K + 127) / 128;
  const int64_t ldxq = std::max<int64_t>(groups * 128, 16);
  const int64_t ld_xs = std::max<int64_t>(groups, 1);
  TESSERA_ASSIGN_OR_RETURN(void* xq, st.scratch(M * ldxq));
  TESSERA_ASSIGN_OR_RETURN(void* xs, st.scratch(M * ld_xs * 4));
  // Decode-sized M also gets residual codes: ~1000x lower error for one more mma per fragment
  // (weights dominate the traffic there); larger M keeps DeepSeek's single quantisation.
  void* xq_lo = nullptr;
  if (M <= 16) {
    TESSERA_ASSIGN_OR_RETURN(xq_lo, st.scratch(M * ldxq));
  }
  const int64_t ws_bytes = kc::gemm_fp8_block_workspace_bytes(M, N, K, ctx.num_sms);
  void* ws = nullptr;
  if (ws_bytes > 0) {
    TESSERA_ASSIGN_OR_RETURN(ws, st.scratch(ws_bytes));
  }
  TESSERA_CUDA_RETURN(
      kc::quantize_fp8_rows(xp, ldx, M, K, static_cast<uint8_t*>(xq), static_cast<uint8_t*>(xq_lo),
                            ldxq, static_cast<float*>(xs), ld_xs, ctx.stream),
      "matmul_block_scaled (quantise x)");
  kc::Fp8BlockGemm g{};
  g.xq = static_cast<const uint8_t*>(xq);
  g.ldxq = ldxq;
  g.xq_lo = static_cast<const uint8_t*>(xq_lo);
  g.x_scale = static_cast<const float*>(xs);
  g.ld_xs = ld_xs;
  g.w = wp;
  g.ldw = ldw;
  g.w_scale = sp;
  g.ld_ws = ld_ws;
  g.out = dout.data_as<float>();
  g.ldo = ldo;
  g.M = M;
  g.N = N;
  g.K = K;
  TESSERA_CUDA_RETURN(
      kc::gemm_fp8_block_scaled(g, kc::Fp8GemmPath::kAuto, ctx.num_sms, ws, ctx.stream),
      "matmul_block_scaled");
  return st.finish();
}

}  // namespace tessera::backend::cuda
