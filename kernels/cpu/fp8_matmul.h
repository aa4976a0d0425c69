// CPU block-scaled FP8 matmul (DeepSeek-V3 checkpoint format) on raw pointers, dispatched to an
// AVX-512 / AVX2 / scalar implementation. Weights are decoded e4m3 -> f32 in registers, 16 or
// 32 at a time, and scaled once per block: no dequantised copy of the weight exists anywhere.
// Invariant: results equal kernels/ref/fp8_matmul.h up to f32 summation order (decoding is
// exact for all 256 codes, NaN codes included).
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/ref/fp8_matmul.h"

namespace tessera::kernels::cpu {

// Writes out[i, j] for every row i in [0, a.m) and column j in [n_begin, n_end).
void matmul_block_scaled_columns(Isa isa, const BlockScaledMatmulArgs& a, int64_t n_begin,
                                 int64_t n_end);

}  // namespace tessera::kernels::cpu
