// Reference (scalar, obviously-correct) conversions between f32 and every storage type.
// These are the oracle the SIMD and CUDA paths are tested against; never optimise them.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::ref {

// dst[0..n) = dequantized src; for block types n is a multiple of the block size.
// Returns false for a type it cannot convert.
bool dequantize_row(ElemType type, const void* src, float* dst, int64_t n);

}  // namespace tessera::kernels::ref
