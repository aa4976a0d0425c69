// op_checks: the one shape/dtype contract per Backend op, shared by every backend, so a bad
// call fails the same way (invalid_argument naming the op and the offending shapes) on CPU,
// CUDA and the reference. RowView is how backends walk "rows may be strided" tensors.
// Invariant: a tensor that passes its op's check has a contiguous innermost dim and strides
// that are whole multiples of its element size, so kernels may take strides in elements.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/ref/fp8_matmul.h"
#include "kernels/ref/int8_matmul.h"
#include "kernels/ref/moe.h"
#include "kernels/ref/ops.h"
#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend {

// The checks with integer metadata read its values only when `access` is kHost (see
// MetadataAccess in backend.h).
Status check_embedding(const Tensor& table, std::span<const int32_t> ids, const Tensor& out,
                       MetadataAccess access = MetadataAccess::kHost);
Status check_matmul(const Tensor& x, const Tensor& w, const Tensor& out);
Status check_matmul_batched(const Tensor& x, const Tensor& w, const Tensor& out);
Status check_rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out);
Status check_rope(const Tensor& x, std::span<const int32_t> positions, const RopeParams& params);
Status check_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                       std::span<const int32_t> positions, float scale, const Tensor& out);
Status check_silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out);
Status check_add(const Tensor& a, const Tensor& b, const Tensor& out);
Status check_convert(const Tensor& src, const Tensor& dst);
Status check_paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                             std::span<const int32_t> query_start,
                             std::span<const int32_t> seq_lens, const Tensor& block_tables,
                             float scale, const Tensor& out,
                             MetadataAccess access = MetadataAccess::kHost);
Status check_kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                       const Tensor& k_cache, const Tensor& v_cache,
                       MetadataAccess access = MetadataAccess::kHost);
Status check_moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                       const Tensor& out_ids, const Tensor& out_weights);
Status check_moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                                const Tensor& out);
Status check_matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                                 const BlockScaleParams& block, const Tensor& out);
Status check_moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                             const Tensor& w_scale_inv, const Tensor& ids,
                                             const BlockScaleParams& block, const Tensor& out);
// Memory ops (src/backend/op_checks_memory.cc).
// Backend::allocate's shape: 1..kMaxDims non-negative dims, the last a whole number of blocks.
Status check_allocate(DType dtype, std::span<const int64_t> shape);
Status check_copy(const Tensor& src, const Tensor& dst);
Status check_moe_combine(const Tensor& x, const Tensor& weights, const Tensor& out);
// Sampling (src/backend/op_checks_sample.cc): also validates each row's parameters.
Status check_sample(const Tensor& logits, std::span<const SampleParams> params,
                    const Tensor& out_ids);
// INT8 matmul (src/backend/op_checks_int8.cc).
Status check_matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                         const Tensor& out);

// A tensor of 1..4 dims seen as rows of its innermost dim; outer dims may have any strides.
struct RowView {
  char* base = nullptr;
  int64_t num_rows = 0;
  int64_t row_elems = 0;
  int outer_ndim = 0;
  int64_t shape[kMaxDims - 1] = {};
  int64_t stride_bytes[kMaxDims - 1] = {};

  // Start of row r in [0, num_rows), rows numbered in row-major order of the outer dims.
  char* row(int64_t r) const {
    int64_t offset = 0;
    for (int d = outer_ndim - 1; d >= 0; --d) {
      offset += (r % shape[d]) * stride_bytes[d];
      r /= shape[d];
    }
    return base + offset;
  }
};
RowView row_view(const Tensor& t);

// Strides of a 3-D tensor in elements: {dim0, dim1} (dim2 is contiguous after the checks).
struct Strides3 {
  int64_t s0, s1;
};
Strides3 elem_strides3(const Tensor& t);

// Strides of a 4-D tensor in elements: {dim0, dim1, dim2} (dim3 is contiguous after the checks).
struct Strides4 {
  int64_t s0, s1, s2;
};
Strides4 elem_strides4(const Tensor& t);

// Kernel-level rope description from the backend's parameters.
kernels::RopeSpec to_rope_spec(const RopeParams& params);
// Kernel-level router description from the backend's parameters.
kernels::MoeRouteSpec to_moe_route_spec(const MoeRouteParams& params, int64_t num_experts);

// Kernel argument packs for the attention ops, shared by every CPU-side backend. Call only
// after the matching check_* succeeded (they read the shapes and strides it validated).
kernels::ref::AttentionArgs to_attention_args(const Tensor& q, const Tensor& k_cache,
                                              const Tensor& v_cache,
                                              std::span<const int32_t> positions, float scale,
                                              const Tensor& out);
// Kernel arguments of a block-scaled matmul; call only after check_matmul_block_scaled (or,
// with w / w_scale_inv one expert's slices, check_moe_grouped_matmul_block_scaled) succeeded.
// out_rows: [M, N] view of the outputs (for the grouped op, one expert's gathered rows).
kernels::BlockScaledMatmulArgs to_block_scaled_args(const Tensor& x, const Tensor& w,
                                                    const Tensor& w_scale_inv,
                                                    const BlockScaleParams& block,
                                                    const Tensor& out_rows);
// Kernel arguments of an INT8 matmul; call only after check_matmul_int8 succeeded.
kernels::Int8MatmulArgs to_int8_matmul_args(const Tensor& x, const Tensor& w, const Tensor& w_scale,
                                            const Tensor& out);
kernels::ref::PagedAttentionArgs to_paged_attention_args(const Tensor& q, const Tensor& k_cache,
                                                         const Tensor& v_cache,
                                                         std::span<const int32_t> query_start,
                                                         std::span<const int32_t> seq_lens,
                                                         const Tensor& block_tables, float scale,
                                                         const Tensor& out);

}  // namespace tessera::backend
