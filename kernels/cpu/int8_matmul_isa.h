// Per-ISA entry points behind kernels/cpu/int8_matmul.h; each namespace lives in its own .cc
// built with that ISA's flags. Only int8_matmul.cc calls these, after checking the ISA is usable.
#pragma once

#include <cstdint>

#include "kernels/cpu/int8_matmul.h"

namespace tessera::kernels::cpu {
#define TESSERA_INT8_ISA_DECLS                                                             \
  void quantize_rows_int8(const float* x, int64_t x_stride, int64_t k, int8_t* q,          \
                          int64_t q_stride, float* scale, int64_t r_begin, int64_t r_end); \
  void matmul_int8_w8a8_columns(const Int8MatmulArgs& a, const Int8Activations& xq,        \
                                int64_t n_begin, int64_t n_end);                           \
  void matmul_int8_weight_only_columns(const Int8MatmulArgs& a, int64_t n_begin, int64_t n_end);
namespace scalar {
TESSERA_INT8_ISA_DECLS
}
namespace avx2 {
TESSERA_INT8_ISA_DECLS
}
namespace avx512 {
TESSERA_INT8_ISA_DECLS
}
#undef TESSERA_INT8_ISA_DECLS
}  // namespace tessera::kernels::cpu
