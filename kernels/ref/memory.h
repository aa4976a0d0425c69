// Reference memory kernels: a strided row copy (any dtype: rows are copied as bytes) and the
// MoE combine (weighted sum of each token's expert outputs). The oracle for tests/ops.
// Invariant: the combine sums experts in j order, in f32, starting from 0 (no FMA reordering
// is assumed of other backends beyond the tolerance table).
#pragma once

#include <cstdint>

namespace tessera::kernels::ref {

// Copies `row_bytes` bytes of each of `num_rows` rows. `src_row(r)` / `dst_row(r)` give the
// start of row r, so any outer strides work. Rows must not overlap.
template <typename SrcRow, typename DstRow>
void copy_rows(int64_t num_rows, int64_t row_bytes, SrcRow src_row, DstRow dst_row);

// One token of the MoE combine.
//   x        [top_k] rows of n floats: row j at x + j * x_stride_j (elements)
//   weights  [top_k]
//   out      [n]
// out[c] = sum_j weights[j] * x[j][c], summed in j order from 0.
void moe_combine_token(const float* x, int64_t x_stride_j, const float* weights, int64_t top_k,
                       int64_t n, float* out);

// Copies n bytes (no overlap).
void copy_bytes(const void* src, void* dst, int64_t n);

template <typename SrcRow, typename DstRow>
void copy_rows(int64_t num_rows, int64_t row_bytes, SrcRow src_row, DstRow dst_row) {
  for (int64_t r = 0; r < num_rows; ++r) copy_bytes(src_row(r), dst_row(r), row_bytes);
}

}  // namespace tessera::kernels::ref
