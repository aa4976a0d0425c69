// Loop nest shared by every ISA's matmul: column tiles of weight rows, and within each tile
// groups of up to 4 activation rows, so a weight row is decoded once per 4 rows of x.
// Included inside an anonymous namespace of each ISA file (no std:: templates here, so no
// ISA-flagged copy of a shared symbol can leak into baseline code).
// Kernel contract: K::template dot<R>(w_row, acts, act_stride_bytes, k, res) writes res[0..R).
#pragma once

#include <cstdint>

namespace tessera::kernels::cpu {
namespace {

// NOTE: 16 weight rows (~6 KiB of Q4_1 at k=576) stay in L1 while every 4-row group of
// activations passes over them.
constexpr int64_t kColumnTile = 16;

template <class K, int R>
inline void tile_rows(const char* w, int64_t w_row_bytes, const char* a, int64_t a_stride,
                      float* out, int64_t out_stride, int64_t j0, int64_t j1, int64_t k) {
  float res[4];
  for (int64_t j = j0; j < j1; ++j) {
    K::template dot<R>(w + j * w_row_bytes, a, a_stride, k, res);
    for (int r = 0; r < R; ++r) out[r * out_stride + j] = res[r];
  }
}

template <class K>
void run_tiles(const void* w_ptr, int64_t w_row_bytes, const void* a_ptr, int64_t a_stride,
               float* out, int64_t out_stride, int64_t m, int64_t n_begin, int64_t n_end,
               int64_t k) {
  const char* w = static_cast<const char*>(w_ptr);
  const char* a = static_cast<const char*>(a_ptr);
  for (int64_t j0 = n_begin; j0 < n_end; j0 += kColumnTile) {
    const int64_t j1 = j0 + kColumnTile < n_end ? j0 + kColumnTile : n_end;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      tile_rows<K, 4>(w, w_row_bytes, a + i * a_stride, a_stride, out + i * out_stride,
                      out_stride, j0, j1, k);
    }
    const char* ai = a + i * a_stride;
    float* oi = out + i * out_stride;
    switch (m - i) {
      case 3: tile_rows<K, 3>(w, w_row_bytes, ai, a_stride, oi, out_stride, j0, j1, k); break;
      case 2: tile_rows<K, 2>(w, w_row_bytes, ai, a_stride, oi, out_stride, j0, j1, k); break;
      case 1: tile_rows<K, 1>(w, w_row_bytes, ai, a_stride, oi, out_stride, j0, j1, k); break;
      default: break;
    }
  }
}

}  // namespace
}  // namespace tessera::kernels::cpu
