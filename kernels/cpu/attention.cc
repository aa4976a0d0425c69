// CPU causal GQA / paged attention, one (token, KV head) group per call: dispatch to the
// avx512 / avx2 / scalar instantiations of ops_simd.h for f32 or f16 KV caches, and the merge of
// split-key partials. Baseline x86-64: no intrinsics.
// Invariant: only cache rows 0..positions[t] are read, so unused rows may hold anything.
#include <cmath>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_scalar.h"

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_DEFINE_ATTENTION_OPS(VecScalar)
TESSERA_DEFINE_PAGED_ATTENTION_OPS(VecScalar)
}  // namespace scalar

void attention_group(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0, int64_t k1,
                     float* m, float* l, float* acc) {
  const bool f16 = a.kv_type == ElemType::kF16;
  switch (ops_isa()) {
    case Isa::kAvx512:
      return f16 ? avx512::attention_group_f16(a, t, g, k0, k1, m, l, acc)
                 : avx512::attention_group_f32(a, t, g, k0, k1, m, l, acc);
    case Isa::kAvx2:
      return f16 ? avx2::attention_group_f16(a, t, g, k0, k1, m, l, acc)
                 : avx2::attention_group_f32(a, t, g, k0, k1, m, l, acc);
    case Isa::kScalar:
      return f16 ? scalar::attention_group_f16(a, t, g, k0, k1, m, l, acc)
                 : scalar::attention_group_f32(a, t, g, k0, k1, m, l, acc);
  }
}

void paged_attention_group(const ref::PagedAttentionArgs& a, int64_t s, int64_t t, int64_t g,
                           int64_t k0, int64_t k1, float* m, float* l, float* acc) {
  const bool f16 = a.kv_type == ElemType::kF16;
  switch (ops_isa()) {
    case Isa::kAvx512:
      return f16 ? avx512::paged_attention_group_f16(a, s, t, g, k0, k1, m, l, acc)
                 : avx512::paged_attention_group_f32(a, s, t, g, k0, k1, m, l, acc);
    case Isa::kAvx2:
      return f16 ? avx2::paged_attention_group_f16(a, s, t, g, k0, k1, m, l, acc)
                 : avx2::paged_attention_group_f32(a, s, t, g, k0, k1, m, l, acc);
    case Isa::kScalar:
      return f16 ? scalar::paged_attention_group_f16(a, s, t, g, k0, k1, m, l, acc)
                 : scalar::paged_attention_group_f32(a, s, t, g, k0, k1, m, l, acc);
  }
}

void attention_merge(const float* parts, int64_t n, int64_t G, int64_t dv, float* out,
                     int64_t o_head) {
  const int64_t stride = attention_partial_floats(G, dv);
  for (int64_t h = 0; h < G; ++h) {
    float big = -INFINITY;
    for (int64_t p = 0; p < n; ++p) big = parts[p * stride + h] > big ? parts[p * stride + h] : big;
    float* o = out + h * o_head;
    float denom = 0.0f;
    for (int64_t c = 0; c < dv; ++c) o[c] = 0.0f;
    for (int64_t p = 0; p < n; ++p) {
      const float* part = parts + p * stride;
      if (part[h] == -INFINITY) continue;  // an empty key range
      const float w = n == 1 ? 1.0f : std::exp(part[h] - big);
      denom += w * part[G + h];
      const float* acc = part + 2 * G + h * dv;
      for (int64_t c = 0; c < dv; ++c) o[c] += w * acc[c];
    }
    const float inv = 1.0f / denom;
    for (int64_t c = 0; c < dv; ++c) o[c] *= inv;
  }
}

}  // namespace tessera::kernels::cpu
