// CPU (SIMD) non-matmul op kernels: run-time dispatch to AVX-512 / AVX2 / scalar bodies that
// share one generic implementation (ops_simd.h). Callers (the CPU backend) do the threading.
// Invariant: every entry point gives results within the ops tolerance table of kernels/ref
// on every ISA; the ISA is the matmul's active_isa() unless a test forces a lower one.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/ref/ops.h"

namespace tessera::kernels::cpu {

// The ISA the op kernels use now.
Isa ops_isa();
// Force an ISA for the op kernels (tests, benchmarks). Returns false, changing nothing, if
// this CPU cannot run it. Not thread-safe against concurrent op calls.
bool force_ops_isa(Isa isa);
// Back to active_isa().
void reset_ops_isa();

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i].   out may equal x.
void rms_norm_row(const float* x, const float* weight, float eps, float* out, int64_t n);
// out[i] = silu(gate[i]) * up[i].   out may alias gate or up.
void silu_mul_row(const float* gate, const float* up, float* out, int64_t n);
// out[i] = a[i] + b[i].   out may alias a or b.
void add_row(const float* a, const float* b, float* out, int64_t n);
// dst[0..n) = src as dst_type (f32, f16, bf16; round to nearest even). False for other types.
bool convert_row(const float* src, ElemType dst_type, void* dst, int64_t n);

// cos[i], sin[i] for i in [0, half) at `position`, times attention_factor.
//   inv_freq [half] (double: angles reach 1e4+ radians and must stay exact to ~1e-7)
void rope_cos_sin(const double* inv_freq, int half, int32_t position, double attention_factor,
                  float* cos, float* sin);
// Rotates the first 2 * half values of each head in place.
//   x [num_heads, >= 2 * half] with head stride head_stride (elements); cos, sin [half]
void rope_apply(float* x, int64_t num_heads, int64_t head_stride, const float* cos,
                const float* sin, int half, RopeSpec::Style style);

// One (token t, query head h) of causal GQA attention (see ref::AttentionArgs).
//   scores [positions[t] + 1] and acc [v_head_dim] are caller-provided scratch.
void attention_head(const ref::AttentionArgs& args, int64_t t, int64_t h, float* scores,
                    float* acc);

// One (token t of sequence s, query head h) of paged attention (see ref::PagedAttentionArgs):
// online softmax over tiles of keys gathered through the block table.
//   acc [v_head_dim] is caller-provided scratch.
void paged_attention_head(const ref::PagedAttentionArgs& args, int64_t s, int64_t t, int64_t h,
                          float* acc);

}  // namespace tessera::kernels::cpu
