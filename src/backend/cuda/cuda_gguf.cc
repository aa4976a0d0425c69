// CUDA matmul and embedding on GGUF block-quantized weights (docs/ops.md "Block-quantized
// matmul"): decode-sized M runs the block GEMV / tiled kernels of gemm_gguf.cu; prefill-sized M
// dequantises slabs of weight rows to f16 in scratch and runs cuBLASLt on them (x rounded to
// f16, as the dense f16 path). Embedding gathers and dequantises table rows to f32 exactly.
// Invariant: op_checks first; operands staged with cuda::Staging as in cuda_backend.cc, so host
// and device tensors both work; nothing is read on the host and scratch is stream-ordered.
#include <algorithm>

#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/gemm/gemm_gguf.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {
namespace {

namespace kc = kernels::cuda;

// From this M on, f16 slabs + cuBLASLt beat the CUDA-core tiled kernel (the slab's dequantise
// costs about one weight read + an f16 write + read; the tiled kernel runs at CUDA-core rate).
constexpr int64_t kLtMinM = 32;
// f16 weight slab per cuBLASLt call: at most this many bytes, whole multiples of 64 rows.
constexpr int64_t kSlabBytes = 32ll << 20;

kc::RowLayout rows2(int64_t rows, int64_t cols, int64_t stride) {
  kc::RowLayout l;
  l.outer_ndim = 1;
  l.shape[0] = rows;
  l.stride[0] = stride;
  l.num_rows = rows;
  l.row_elems = cols;
  return l;
}

// out[:, n0 .. n0 + nc) for every slab of weight rows: dequantise to f16, then cuBLASLt; a slab
// cuBLASLt has no algorithm for takes the tiled kernel instead.
Status matmul_slabs(const CudaContext& ctx, Staging& st, DType type, const float* x, int64_t ldx,
                    const uint8_t* w, int64_t ldw, float* out, int64_t ldo, int64_t M, int64_t N,
                    int64_t K) {
  const int64_t slab = std::min(N, std::max<int64_t>(64, kSlabBytes / (2 * K) / 64 * 64));
  const int64_t x_bytes = (M * K * 2 + 255) / 256 * 256;
  TESSERA_ASSIGN_OR_RETURN(void* scratch, st.scratch(x_bytes + slab * K * 2));
  void* xh = scratch;
  void* wh = static_cast<uint8_t*>(scratch) + x_bytes;
  TESSERA_CUDA_RETURN(kc::convert(x, rows2(M, K, ldx), DType::kF16, xh, rows2(M, K, K), ctx.stream),
                      "matmul convert");
  for (int64_t n0 = 0; n0 < N; n0 += slab) {
    const int64_t nc = std::min(slab, N - n0);
    TESSERA_CUDA_RETURN(kc::dequantize_gguf_rows(type, w + n0 * ldw, ldw, nullptr, nc, K,
                                                 DType::kF16, wh, K, ctx.stream),
                        "matmul dequantise");
    const cudaError_t err =
        kc::lt_gemm(ctx.lt, DType::kF16, xh, K, wh, K, out + n0, ldo, M, nc, K, ctx.stream);
    if (err == cudaErrorNotSupported) {
      TESSERA_CUDA_RETURN(
          kc::gemm_gguf(type, x, ldx, w + n0 * ldw, ldw, out + n0, ldo, M, nc, K, ctx.stream),
          "matmul (gguf)");
    } else {
      TESSERA_CUDA_RETURN(err, "matmul (cuBLASLt on dequantised slab)");
    }
  }
  return Status::ok_status();
}

}  // namespace

bool cuda_gguf_supports(DType type) { return kc::gguf::supported(type); }

Status cuda_matmul_gguf(const CudaContext& ctx, const Tensor& x, const Tensor& w, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
  if (!kc::gguf::supported(w.dtype())) {
    return unimplemented("matmul: the CUDA backend has no kernel for weight {}", w.describe());
  }
  const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  Staging st(ctx.stream, ctx.arena, "matmul");
  const int hx = st.add(x, false), hw = st.add(w, false), ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (M == 0 || N == 0) return st.finish();
  const Tensor dx = st.dev(hx), dw = st.dev(hw);
  Tensor dout = st.dev(ho);
  const auto* xp = dx.data_as<const float>();
  const auto* wp = static_cast<const uint8_t*>(dw.data());
  const int64_t ldx = dx.stride_bytes(0) / 4, ldw = dw.stride_bytes(0);
  const int64_t ldo = dout.stride_bytes(0) / 4;
  if (M >= kLtMinM) {
    TESSERA_RETURN_IF_ERROR(
        matmul_slabs(ctx, st, w.dtype(), xp, ldx, wp, ldw, dout.data_as<float>(), ldo, M, N, K));
  } else {
    TESSERA_CUDA_RETURN(
        kc::gemm_gguf(w.dtype(), xp, ldx, wp, ldw, dout.data_as<float>(), ldo, M, N, K, ctx.stream),
        "matmul (gguf)");
  }
  return st.finish();
}

Status cuda_embedding_gguf(const CudaContext& ctx, const Tensor& table,
                           std::span<const int32_t> ids, Tensor out, MetadataAccess access) {
  TESSERA_RETURN_IF_ERROR(check_embedding(table, ids, out, access));
  if (!kc::gguf::supported(table.dtype())) {
    return unimplemented("embedding: the CUDA backend has no kernel for table {}",
                         table.describe());
  }
  Staging st(ctx.stream, ctx.arena, "embedding");
  const int ht = st.add(table, false), hi = st.add_ints(ids), ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  const Tensor t = st.dev(ht);
  Tensor o = st.dev(ho);
  TESSERA_CUDA_RETURN(
      kc::dequantize_gguf_rows(table.dtype(), t.data(), t.stride_bytes(0), st.dev_ints(hi),
                               static_cast<int64_t>(ids.size()), table.dim(1), DType::kF32,
                               o.data(), o.stride_bytes(0) / 4, ctx.stream),
      "embedding (gguf)");
  return st.finish();
}

}  // namespace tessera::backend::cuda
