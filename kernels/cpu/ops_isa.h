// Per-ISA entry points of the CPU op kernels (scalar / avx2 / avx512 namespaces), each one an
// instantiation of ops_simd.h in a file built for that ISA. Only the dispatchers call these.
// Invariant: a function of namespace avx2/avx512 runs only after ops_isa() chose that ISA.
#pragma once

#include <cstdint>

#include "kernels/ref/ops.h"

#define TESSERA_OPS_ISA_DECLS                                                                  \
  void rms_norm_row(const float* x, const float* w, float eps, float* out, int64_t n);         \
  void silu_mul_row(const float* gate, const float* up, float* out, int64_t n);                \
  void add_row(const float* a, const float* b, float* out, int64_t n);                         \
  void convert_f16_row(const float* src, uint16_t* dst, int64_t n);                            \
  void convert_bf16_row(const float* src, uint16_t* dst, int64_t n);                           \
  void rope_neox(float* x, const float* cos, const float* sin, int half);                      \
  void attention_group_f32(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0,     \
                           int64_t k1, float* m, float* l, float* acc);                        \
  void attention_group_f16(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0,     \
                           int64_t k1, float* m, float* l, float* acc);                        \
  void paged_attention_group_f32(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,      \
                                 int64_t g, int64_t k0, int64_t k1, float* m, float* l,       \
                                 float* acc);                                                  \
  void paged_attention_group_f16(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,      \
                                 int64_t g, int64_t k0, int64_t k1, float* m, float* l,       \
                                 float* acc);

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_OPS_ISA_DECLS
}  // namespace scalar
namespace avx2 {
TESSERA_OPS_ISA_DECLS
}  // namespace avx2
namespace avx512 {
TESSERA_OPS_ISA_DECLS
}  // namespace avx512
}  // namespace tessera::kernels::cpu

#undef TESSERA_OPS_ISA_DECLS
