// Per-ISA entry points behind kernels/cpu/matmul.h; each namespace lives in its own .cc built
// with that ISA's flags. Only matmul.cc calls these, after checking the ISA is usable.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"

#define TESSERA_DECLARE_MATMUL_ISA(ns)                                                         \
  namespace ns {                                                                             \
  void quantize_activations(ElemType act_type, const float* x, int64_t x_stride, void* dst,  \
                            int64_t dst_row_bytes, int64_t row_begin, int64_t row_end,       \
                            int64_t k);                                                      \
  void matmul_columns(ElemType w_type, const void* w, int64_t w_row_bytes, const void* acts,  \
                      int64_t act_stride_bytes, float* out, int64_t out_stride, int64_t m,   \
                      int64_t n_begin, int64_t n_end, int64_t k);                            \
  }

namespace tessera::kernels::cpu {
TESSERA_DECLARE_MATMUL_ISA(scalar)
TESSERA_DECLARE_MATMUL_ISA(avx2)
TESSERA_DECLARE_MATMUL_ISA(avx512)
}  // namespace tessera::kernels::cpu

#undef TESSERA_DECLARE_MATMUL_ISA
