// Reference (scalar) quantizers: f32 rows -> Q8_0 / Q8_1 / Q8_K activation blocks, and
// f32 rows -> Q4_0 / Q4_1 / Q8_0 / Q4_K / Q6_K weight blocks (round-to-nearest, for tests and
// tools; not llama.cpp's importance-weighted search). Invariant: n is a multiple of the block
// size of the target type, and dequantize_row(quantize_row(x)) stays within one step per block.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::ref {

// Activation blocks. qs in [-127, 127]; Q8_1's s = d * sum(qs); Q8_K's bsums are sums of qs
// over groups of 16.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n);

// Weight blocks.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n);
void quantize_row_q4_k(const float* x, BlockQ4_K* y, int64_t n);
void quantize_row_q6_k(const float* x, BlockQ6_K* y, int64_t n);

// Any of the above, plus f32 / f16 / bf16. dst holds dtype-row-bytes of n values.
// Returns false for a type it cannot produce or an n that is not whole blocks.
bool quantize_row(ElemType type, const float* src, void* dst, int64_t n);

}  // namespace tessera::kernels::ref
