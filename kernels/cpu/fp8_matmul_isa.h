// Per-ISA entry points behind kernels/cpu/fp8_matmul.h; each namespace lives in its own .cc
// built with that ISA's flags. Only fp8_matmul.cc calls these, after checking the ISA is usable.
#pragma once

#include <cstdint>

#include "kernels/ref/fp8_matmul.h"

namespace tessera::kernels::cpu {
namespace scalar {
void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end);
}
namespace avx2 {
void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end);
}
namespace avx512 {
void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end);
}
}  // namespace tessera::kernels::cpu
