// CUDA MoE ops: moe_route (one warp per token) and the grouped expert matmuls (plain float and
// FP8 block-scaled weights), over kernels/cuda/moe. Operands are staged like every CUDA op.
// Invariant: no op here synchronises with the host when its operands are device-resident: the
// grouping by expert happens on the device. Host ids are validated by op_checks; device ids
// cannot be read without a synchronisation, so out-of-range ones yield zero rows (moe.h).
#include <vector>

#include "kernels/cuda/moe/moe.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {
namespace {

namespace kc = kernels::cuda;

bool is_plain_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// The ids to validate: the real ones when on the host; for device ids a host tensor of zeros
// of the same shape, so op_checks checks every shape without dereferencing device memory.
Tensor ids_for_checks(const Tensor& ids, std::vector<int32_t>& zeros) {
  if (ids.empty() || ids.ndim() != 2 || !is_device_pointer(ids.data())) return ids;
  zeros.assign(static_cast<size_t>(ids.dim(0) * ids.dim(1)), 0);
  return Tensor(zeros.data(), DType::kI32, {ids.dim(0), ids.dim(1)});
}

Status run_grouped(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                   const Tensor& w_scale_inv, const Tensor& ids, const BlockScaleParams& block,
                   Tensor out, const char* what) {
  const bool fp8 = w.dtype() == DType::kFP8_E4M3;
  Staging st(ctx.stream, ctx.arena, what);
  const int hx = st.add(x, false), hw = st.add(w, false), hi = st.add(ids, false);
  const int hs = fp8 ? st.add(w_scale_inv, false) : -1;
  const int ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (ho < 0) return st.finish();  // no (token, slot) pairs or N == 0
  const Tensor dx = st.dev(hx), dw = st.dev(hw), di = st.dev(hi), ds = st.dev(hs);
  Tensor dout = st.dev(ho);
  const int64_t elem = dtype_info(w.dtype()).block_bytes;
  kc::GroupedGemmArgs a;
  a.x = dx.empty() ? nullptr : dx.data_as<const float>();
  a.ldx = dx.empty() ? 0 : dx.stride_bytes(0) / 4;
  a.w_type = w.dtype();
  a.w = dw.empty() ? nullptr : dw.data();
  a.w_expert_stride = dw.empty() ? 0 : dw.stride_bytes(0) / elem;
  a.w_row_stride = dw.empty() ? 0 : dw.stride_bytes(1) / elem;
  if (fp8) {
    a.w_scale = ds.empty() ? nullptr : ds.data_as<const float>();
    a.scale_expert_stride = ds.empty() ? 0 : ds.stride_bytes(0) / 4;
    a.scale_row_stride = ds.empty() ? 0 : ds.stride_bytes(1) / 4;
    a.block_n = block.block_n;
    a.block_k = block.block_k;
  }
  a.ids = di.data_as<const int32_t>();
  a.ids_stride = di.stride_bytes(0) / 4;
  a.out = dout.data_as<float>();
  a.out_tok = dout.stride_bytes(0) / 4;
  a.out_slot = dout.stride_bytes(1) / 4;
  a.num_tokens = x.dim(0);
  a.top_k = ids.dim(1);
  a.num_experts = w.dim(0);
  a.n = w.dim(1);
  a.k = w.dim(2);
  TESSERA_ASSIGN_OR_RETURN(a.workspace, st.scratch(kc::moe_grouped_gemm_workspace_bytes(
                                            a.num_tokens * a.top_k, a.num_experts)));
  if (fp8 && a.w_scale == nullptr) {  // empty weight: K == 0 or N == 0, nothing is scaled
    static const float kOne = 1.0f;
    a.w_scale = &kOne;  // never read
  }
  TESSERA_CUDA_RETURN(kc::moe_grouped_gemm(a, ctx.stream), what);
  return st.finish();
}

}  // namespace

bool cuda_moe_supports(Op op, DType a, DType b) {
  if (op == Op::kMoeRoute || op == Op::kMoeCombine) return true;
  if (op == Op::kMoeGroupedMatmul) return is_plain_float(a);
  if (op == Op::kMoeGroupedMatmulBlockScaled) {
    return a == DType::kFP8_E4M3 && b == DType::kF32;
  }
  return false;
}

Status cuda_moe_route(const CudaContext& ctx, const Tensor& logits, const Tensor& bias,
                      const MoeRouteParams& params, Tensor out_ids, Tensor out_weights) {
  TESSERA_RETURN_IF_ERROR(check_moe_route(logits, bias, params, out_ids, out_weights));
  const int64_t experts = logits.dim(1);
  if (experts > kc::moe::kMaxRouteExperts || params.n_group > kc::moe::kMaxRouteExperts) {
    return unimplemented("moe_route: the CUDA router handles at most {} experts (logits {})",
                         kc::moe::kMaxRouteExperts, logits.describe());
  }
  kc::moe::RouteParams p;
  p.sigmoid = params.scoring == MoeRouteParams::Scoring::kSigmoid;
  p.num_experts = static_cast<int>(experts);
  p.top_k = params.top_k;
  p.n_group = params.n_group;
  p.topk_group = params.topk_group;
  p.norm_topk_prob = params.norm_topk_prob;
  p.routed_scaling_factor = params.routed_scaling_factor;
  Staging st(ctx.stream, ctx.arena, "moe_route");
  const int hl = st.add(logits, false), hb = st.add(bias, false);
  const int hi = st.add(out_ids, true), hw = st.add(out_weights, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (hl < 0) return st.finish();  // no tokens
  const Tensor dl = st.dev(hl), db = st.dev(hb);
  Tensor di = st.dev(hi), dw = st.dev(hw);
  TESSERA_CUDA_RETURN(
      kc::moe_route(dl.data_as<const float>(), dl.stride_bytes(0) / 4,
                    db.empty() ? nullptr : db.data_as<const float>(), p, di.data_as<int32_t>(),
                    di.stride_bytes(0) / 4, dw.data_as<float>(), dw.stride_bytes(0) / 4,
                    logits.dim(0), ctx.stream),
      "moe_route");
  return st.finish();
}

Status cuda_moe_grouped_matmul(const CudaContext& ctx, const Tensor& x, const Tensor& w,
                               const Tensor& ids, Tensor out) {
  std::vector<int32_t> zeros;
  TESSERA_RETURN_IF_ERROR(check_moe_grouped_matmul(x, w, ids_for_checks(ids, zeros), out));
  if (!is_plain_float(w.dtype())) {
    return unimplemented("moe_grouped_matmul: the CUDA backend has no kernel for weight {}",
                         w.describe());
  }
  return run_grouped(ctx, x, w, Tensor(), ids, BlockScaleParams{}, out, "moe_grouped_matmul");
}

Status cuda_moe_grouped_matmul_block_scaled(const CudaContext& ctx, const Tensor& x,
                                            const Tensor& w, const Tensor& w_scale_inv,
                                            const Tensor& ids, const BlockScaleParams& block,
                                            Tensor out) {
  std::vector<int32_t> zeros;
  TESSERA_RETURN_IF_ERROR(check_moe_grouped_matmul_block_scaled(
      x, w, w_scale_inv, ids_for_checks(ids, zeros), block, out));
  return run_grouped(ctx, x, w, w_scale_inv, ids, block, out, "moe_grouped_matmul_block_scaled");
}

}  // namespace tessera::backend::cuda
