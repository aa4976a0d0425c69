// CUDA matmul_batched: one cuBLASLt strided-batched GEMM over all B products (MLA's per-head
// absorbed matmuls), x rounded to the weight type in scratch first for f16/bf16 weights.
// Invariant: nothing here allocates outside Staging::scratch or waits on the device, so the op
// is capturable; a layout cuBLASLt has no strided-batch algorithm for falls back to B lt_gemm
// calls on the same stream (still no synchronisation).
#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/gemm/gemm.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {
namespace {

namespace kc = kernels::cuda;

// Rows of a 3-D tensor [B, M, K] (dims 0 and 1 strided) for the convert kernel.
kc::RowLayout rows3(const Tensor& t, int64_t elem_bytes) {
  kc::RowLayout l;
  l.outer_ndim = 2;
  l.shape[0] = t.dim(0);
  l.shape[1] = t.dim(1);
  l.stride[0] = t.stride_bytes(0) / elem_bytes;
  l.stride[1] = t.stride_bytes(1) / elem_bytes;
  l.num_rows = t.dim(0) * t.dim(1);
  l.row_elems = t.dim(2);
  return l;
}

}  // namespace

Status cuda_matmul_batched(const CudaContext& ctx, const Tensor& x, const Tensor& w, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_batched(x, w, out));
  const int64_t B = x.dim(0), M = x.dim(1), K = x.dim(2), N = w.dim(1);
  Staging st(ctx.stream, ctx.arena, "matmul_batched");
  const int hx = st.add(x, false), hw = st.add(w, false), ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (B == 0 || M == 0 || N == 0) return st.finish();
  const Tensor dx = st.dev(hx), dw = st.dev(hw);
  Tensor dout = st.dev(ho);
  const int64_t w_elem = dtype_info(w.dtype()).block_bytes;
  // x [B, M, K] (f32 as given, or the rounded copy) with its row and batch strides in elements.
  const void* xp = dx.empty() ? nullptr : dx.data();
  int64_t ldx = dx.empty() ? K : dx.stride_bytes(1) / 4;
  int64_t x_batch = dx.empty() ? M * K : dx.stride_bytes(0) / 4;
  if (w.dtype() != DType::kF32 && K > 0) {  // NOTE: cuBLASLt wants A and B in one type
    TESSERA_ASSIGN_OR_RETURN(void* xc, st.scratch(B * M * K * w_elem));
    kc::RowLayout dst;
    dst.outer_ndim = 2;
    dst.shape[0] = B;
    dst.shape[1] = M;
    dst.stride[0] = M * K;
    dst.stride[1] = K;
    dst.num_rows = B * M;
    dst.row_elems = K;
    TESSERA_CUDA_RETURN(
        kc::convert(dx.data_as<const float>(), rows3(dx, 4), w.dtype(), xc, dst, ctx.stream),
        "matmul_batched convert");
    xp = xc;
    ldx = K;
    x_batch = M * K;
  }
  const void* wp = dw.empty() ? nullptr : dw.data();
  const int64_t ldw = dw.empty() ? K : dw.stride_bytes(1) / w_elem;
  const int64_t w_batch = dw.empty() ? N * K : dw.stride_bytes(0) / w_elem;
  float* op = dout.data_as<float>();
  const int64_t ldo = dout.stride_bytes(1) / 4, o_batch = dout.stride_bytes(0) / 4;
  const cudaError_t err = kc::lt_gemm_batched(ctx.lt, w.dtype(), xp, ldx, x_batch, wp, ldw, w_batch,
                                              op, ldo, o_batch, B, M, N, K, ctx.stream);
  if (err == cudaErrorNotSupported) {
    const auto* xb = static_cast<const char*>(xp);
    const auto* wb = static_cast<const char*>(wp);
    const int64_t x_elem = w.dtype() == DType::kF32 ? 4 : w_elem;
    for (int64_t b = 0; b < B; ++b) {
      TESSERA_CUDA_RETURN(
          kc::lt_gemm(ctx.lt, w.dtype(), xb + b * x_batch * x_elem, ldx, wb + b * w_batch * w_elem,
                      ldw, op + b * o_batch, ldo, M, N, K, ctx.stream),
          "matmul_batched (cuBLASLt, per batch)");
    }
  } else {
    TESSERA_CUDA_RETURN(err, "matmul_batched (cuBLASLt)");
  }
  return st.finish();
}

}  // namespace tessera::backend::cuda
