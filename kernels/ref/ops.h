// Reference (scalar, obviously-correct) non-matmul ops: embedding, rms_norm, rope, attention,
// silu_mul, add, convert. The oracle every CPU/CUDA path is tested against; never optimise it.
// Invariant: sums and transcendental functions run in double; results round to f32 once.
// Kernels see raw pointers: strides are in elements, the innermost dim is always contiguous.
#pragma once

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels {

// Rotary embedding description at kernel level (mirrors backend::RopeParams, HF names).
struct RopeSpec {
  enum class Style { kNeox, kInterleaved };
  enum class Scaling { kNone, kLinear, kLlama3, kYarn };
  Style style = Style::kNeox;
  int rot_dim = 0;  // even, <= head_dim
  double theta = 10000.0;
  Scaling scaling = Scaling::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int original_max_position_embeddings = 8192;  // llama3, yarn
  double beta_fast = 32.0;  // yarn
  double beta_slow = 1.0;   // yarn
  double mscale = 1.0;      // yarn: cos/sin are multiplied by this attention factor
};

namespace ref {

// inv_freq[i] for i in [0, rot_dim / 2) after scaling, written as HF's rope init functions
// (default, linear, llama3, yarn). Returns the attention factor that multiplies cos and sin
// (spec.mscale for yarn, 1 otherwise).
double rope_inv_freq(const RopeSpec& spec, double* inv_freq);

// out[0..n) = f32(row), row of `type` (any plain or block type). False if unsupported.
bool embedding_row(ElemType type, const void* row, float* out, int64_t n);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], i in [0, n). out may equal x.
void rms_norm_row(const float* x, const float* weight, float eps, float* out, int64_t n);

// Rotates one token's heads in place.   x [num_heads, head_dim] with head stride head_stride.
void rope_token(float* x, int64_t num_heads, int64_t head_dim, int64_t head_stride,
                int32_t position, const RopeSpec& spec);

// Causal GQA attention for one sequence.
//   q      f32 [T, Hq, D]          strides (q_tok, q_head)
//   k      kv_type [S, Hkv, D]     strides (k_tok, k_head); kv_type f32 or f16
//   v      kv_type [S, Hkv, Dv]    strides (v_tok, v_head)
//   out    f32 [T, Hq, Dv]         strides (o_tok, o_head)
// Query t reads keys 0..positions[t] only.
struct AttentionArgs {
  const float* q;
  int64_t q_tok, q_head;
  const void* k;
  int64_t k_tok, k_head;
  const void* v;
  int64_t v_tok, v_head;
  ElemType kv_type;
  float* out;
  int64_t o_tok, o_head;
  int64_t num_tokens, num_q_heads, num_kv_heads, head_dim, v_head_dim;
  const int32_t* positions;  // [T], each in [0, S)
  float scale;
};
void attention(const AttentionArgs& args);

// Causal GQA attention over a paged KV cache for one packed batch of sequences (see
// backend::Backend::paged_attention for the layout).
//   q       f32 [num_tokens, Hq, D]                      strides (q_tok, q_head)
//   k       kv_type [num_blocks, block_size, Hkv, D]     strides (k_block, k_slot, k_head)
//   v       kv_type [num_blocks, block_size, Hkv, Dv]    strides (v_block, v_slot, v_head);
//           may alias k (MLA)
//   out     f32 [num_tokens, Hq, Dv]                     strides (o_tok, o_head)
//   block_tables [num_seqs, >= ceil(seq_lens[s] / block_size)], row stride bt_stride
// Token i of seq s is at position seq_lens[s] - n_s + i and reads keys 0..that position only.
struct PagedAttentionArgs {
  const float* q;
  int64_t q_tok, q_head;
  const void* k;
  int64_t k_block, k_slot, k_head;
  const void* v;
  int64_t v_block, v_slot, v_head;
  ElemType kv_type;
  float* out;
  int64_t o_tok, o_head;
  int64_t num_seqs, num_q_heads, num_kv_heads, head_dim, v_head_dim, block_size;
  const int32_t* query_start;   // [num_seqs + 1]
  const int32_t* seq_lens;      // [num_seqs]
  const int32_t* block_tables;  // [num_seqs, bt_stride]
  int64_t bt_stride;
  float scale;
};
void paged_attention(const PagedAttentionArgs& args);

// out[i] = silu(gate[i]) * up[i]; silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul_row(const float* gate, const float* up, float* out, int64_t n);

// out[i] = a[i] + b[i]. out may alias a or b.
void add_row(const float* a, const float* b, float* out, int64_t n);

// dst[0..n) = src converted to dst_type (f32, f16 or bf16; round to nearest even).
// Returns false for another dst_type.
bool convert_row(const float* src, ElemType dst_type, void* dst, int64_t n);

}  // namespace ref
}  // namespace tessera::kernels
