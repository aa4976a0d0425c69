// Reference memory kernels (see memory.h).
// Invariant: plain scalar loops; no reads or writes outside the rows named.
#include "kernels/ref/memory.h"

#include <cstring>

namespace tessera::kernels::ref {

void copy_bytes(const void* src, void* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n));
}

void moe_combine_token(const float* x, int64_t x_stride_j, const float* weights, int64_t top_k,
                       int64_t n, float* out) {
  for (int64_t c = 0; c < n; ++c) out[c] = 0.0f;
  for (int64_t j = 0; j < top_k; ++j) {
    const float g = weights[j];
    const float* row = x + j * x_stride_j;
    for (int64_t c = 0; c < n; ++c) out[c] += g * row[c];
  }
}

}  // namespace tessera::kernels::ref
