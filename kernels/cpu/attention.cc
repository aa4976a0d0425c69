// CPU causal GQA attention, one (token, head) per call: dispatch to the avx512 / avx2 / scalar
// instantiations of ops_simd.h for f32 or f16 KV caches. Baseline x86-64: no intrinsics.
// Invariant: only cache rows 0..positions[t] are read, so unused rows may hold anything.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_scalar.h"

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_DEFINE_ATTENTION_OPS(VecScalar)
TESSERA_DEFINE_PAGED_ATTENTION_OPS(VecScalar)
}  // namespace scalar

void attention_head(const ref::AttentionArgs& a, int64_t t, int64_t h, float* scores,
                    float* acc) {
  const bool f16 = a.kv_type == ElemType::kF16;
  switch (ops_isa()) {
    case Isa::kAvx512:
      return f16 ? avx512::attention_head_f16(a, t, h, scores, acc)
                 : avx512::attention_head_f32(a, t, h, scores, acc);
    case Isa::kAvx2:
      return f16 ? avx2::attention_head_f16(a, t, h, scores, acc)
                 : avx2::attention_head_f32(a, t, h, scores, acc);
    case Isa::kScalar:
      return f16 ? scalar::attention_head_f16(a, t, h, scores, acc)
                 : scalar::attention_head_f32(a, t, h, scores, acc);
  }
}

void paged_attention_head(const ref::PagedAttentionArgs& a, int64_t s, int64_t t, int64_t h,
                          float* acc) {
  const bool f16 = a.kv_type == ElemType::kF16;
  switch (ops_isa()) {
    case Isa::kAvx512:
      return f16 ? avx512::paged_attention_head_f16(a, s, t, h, acc)
                 : avx512::paged_attention_head_f32(a, s, t, h, acc);
    case Isa::kAvx2:
      return f16 ? avx2::paged_attention_head_f16(a, s, t, h, acc)
                 : avx2::paged_attention_head_f32(a, s, t, h, acc);
    case Isa::kScalar:
      return f16 ? scalar::paged_attention_head_f16(a, s, t, h, acc)
                 : scalar::paged_attention_head_f32(a, s, t, h, acc);
  }
}

}  // namespace tessera::kernels::cpu
