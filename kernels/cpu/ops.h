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

// Grouped causal attention: one call covers token t and KV head g, i.e. the G = Hq / Hkv query
// heads h = g * G + i (i < G), over keys [k0, k1) only, so that long contexts can be split
// across threads. Each K / V row is read once per call. It leaves an online-softmax partial:
//   m [G] = max score, l [G] = sum exp(score - m), acc [G, v_head_dim] = sum exp(score - m) v;
// an empty range gives m = -inf, l = 0, acc = 0. Keys must lie in 0..positions[t].
void attention_group(const ref::AttentionArgs& args, int64_t t, int64_t g, int64_t k0,
                     int64_t k1, float* m, float* l, float* acc);

// The same for token t of sequence s of paged attention (see ref::PagedAttentionArgs);
// keys must lie in 0..seq_lens[s] - n_s + (t - query_start[s]).
void paged_attention_group(const ref::PagedAttentionArgs& args, int64_t s, int64_t t, int64_t g,
                           int64_t k0, int64_t k1, float* m, float* l, float* acc);

// Floats of one partial of attention_group: m [G], l [G], then acc [G, dv].
inline int64_t attention_partial_floats(int64_t G, int64_t dv) { return G * (dv + 2); }

// Merges n consecutive partials (each attention_partial_floats(G, dv) floats, laid out as
// above) into out[i * o_head + c] = sum_p e^(m_p - M) acc_p / sum_p e^(m_p - M) l_p.
void attention_merge(const float* parts, int64_t n, int64_t G, int64_t dv, float* out,
                     int64_t o_head);

}  // namespace tessera::kernels::cpu
