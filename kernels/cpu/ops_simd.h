// Generic bodies of the CPU op kernels, written once against a vector-traits type V
// (VecScalar, VecAvx2, VecAvx512) and instantiated in the per-ISA files. No intrinsics here.
// Invariant: every loop handles its tail with V's partial loads/stores, so any length works
// and nothing past a row's end is read or written.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/ref/ops.h"

namespace tessera::kernels::cpu {
namespace {  // NOTE: internal linkage: each ISA's instantiations stay in their own object file.

template <class V>
struct SimdOps {
  using Reg = typename V::Reg;
  static constexpr int W = V::kWidth;

  static int tail(int64_t n, int64_t i) { return static_cast<int>(n - i); }

  static Reg load_kv(const float* p) { return V::load(p); }
  static Reg load_kv(const uint16_t* p) { return V::load_f16(p); }
  static Reg load_kv_partial(const float* p, int n) { return V::load_partial(p, n); }
  static Reg load_kv_partial(const uint16_t* p, int n) { return V::load_f16_partial(p, n); }

  static void rms_norm_row(const float* x, const float* w, float eps, float* out, int64_t n) {
    Reg a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
      const Reg x0 = V::load(x + i), x1 = V::load(x + i + W);
      const Reg x2 = V::load(x + i + 2 * W), x3 = V::load(x + i + 3 * W);
      a0 = V::fmadd(x0, x0, a0);
      a1 = V::fmadd(x1, x1, a1);
      a2 = V::fmadd(x2, x2, a2);
      a3 = V::fmadd(x3, x3, a3);
    }
    for (; i + W <= n; i += W) {
      const Reg x0 = V::load(x + i);
      a0 = V::fmadd(x0, x0, a0);
    }
    if (i < n) {
      const Reg x0 = V::load_partial(x + i, tail(n, i));
      a1 = V::fmadd(x0, x0, a1);
    }
    const double sum_sq = V::reduce_add(V::add(V::add(a0, a1), V::add(a2, a3)));
    const Reg inv = V::set1(static_cast<float>(1.0 / std::sqrt(sum_sq / n + eps)));
    for (i = 0; i + W <= n; i += W) {
      V::store(out + i, V::mul(V::mul(V::load(x + i), inv), V::load(w + i)));
    }
    if (i < n) {
      const int m = tail(n, i);
      V::store_partial(out + i,
                       V::mul(V::mul(V::load_partial(x + i, m), inv), V::load_partial(w + i, m)),
                       m);
    }
  }

  static Reg silu_mul(Reg g, Reg u) {
    const Reg one = V::set1(1.0f);
    const Reg neg_g = V::sub(V::zero(), g);
    return V::mul(V::div(g, V::add(one, V::exp(neg_g))), u);
  }

  static void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(out + i, silu_mul(V::load(gate + i), V::load(up + i)));
    if (i < n) {
      const int m = tail(n, i);
      V::store_partial(out + i, silu_mul(V::load_partial(gate + i, m), V::load_partial(up + i, m)),
                       m);
    }
  }

  static void add_row(const float* a, const float* b, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(out + i, V::add(V::load(a + i), V::load(b + i)));
    if (i < n) {
      const int m = tail(n, i);
      V::store_partial(out + i, V::add(V::load_partial(a + i, m), V::load_partial(b + i, m)), m);
    }
  }

  static void convert_f16_row(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store_f16(dst + i, V::load(src + i));
    if (i < n) V::store_f16_partial(dst + i, V::load_partial(src + i, tail(n, i)), tail(n, i));
  }

  static void convert_bf16_row(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store_bf16(dst + i, V::load(src + i));
    if (i < n) V::store_bf16_partial(dst + i, V::load_partial(src + i, tail(n, i)), tail(n, i));
  }

  // NeoX pairs (i, i + half): x0' = x0 cos - x1 sin, x1' = x0 sin + x1 cos.
  static void rope_neox(float* x, const float* cos, const float* sin, int half) {
    float* y = x + half;
    int i = 0;
    for (; i + W <= half; i += W) {
      const Reg x0 = V::load(x + i), x1 = V::load(y + i);
      const Reg c = V::load(cos + i), s = V::load(sin + i);
      V::store(x + i, V::sub(V::mul(x0, c), V::mul(x1, s)));
      V::store(y + i, V::fmadd(x0, s, V::mul(x1, c)));
    }
    if (i < half) {
      const int m = half - i;
      const Reg x0 = V::load_partial(x + i, m), x1 = V::load_partial(y + i, m);
      const Reg c = V::load_partial(cos + i, m), s = V::load_partial(sin + i, m);
      V::store_partial(x + i, V::sub(V::mul(x0, c), V::mul(x1, s)), m);
      V::store_partial(y + i, V::fmadd(x0, s, V::mul(x1, c)), m);
    }
  }

  template <class KV>
  static float dot(const float* q, const KV* k, int64_t d) {
    Reg a0 = V::zero(), a1 = V::zero();
    int64_t i = 0;
    for (; i + 2 * W <= d; i += 2 * W) {
      a0 = V::fmadd(V::load(q + i), load_kv(k + i), a0);
      a1 = V::fmadd(V::load(q + i + W), load_kv(k + i + W), a1);
    }
    for (; i + W <= d; i += W) a0 = V::fmadd(V::load(q + i), load_kv(k + i), a0);
    if (i < d) {
      const int m = tail(d, i);
      a1 = V::fmadd(V::load_partial(q + i, m), load_kv_partial(k + i, m), a1);
    }
    return V::reduce_add(V::add(a0, a1));
  }

  // acc[c .. c + CHUNKS*W) = sum_j p[j] * v_j[c ..]   (acc stored, not accumulated)
  template <int CHUNKS, class KV>
  static void weighted_sum(const float* p, const KV* v, int64_t v_tok, int64_t num_keys,
                           int64_t c, int last_width, float* acc) {
    Reg r[CHUNKS];
    for (int u = 0; u < CHUNKS; ++u) r[u] = V::zero();
    for (int64_t j = 0; j < num_keys; ++j) {
      const Reg pj = V::set1(p[j]);
      const KV* row = v + j * v_tok + c;
      for (int u = 0; u + 1 < CHUNKS; ++u) r[u] = V::fmadd(pj, load_kv(row + u * W), r[u]);
      const KV* last = row + (CHUNKS - 1) * W;
      const Reg lv = last_width == W ? load_kv(last) : load_kv_partial(last, last_width);
      r[CHUNKS - 1] = V::fmadd(pj, lv, r[CHUNKS - 1]);
    }
    for (int u = 0; u + 1 < CHUNKS; ++u) V::store(acc + c + u * W, r[u]);
    V::store_partial(acc + c + (CHUNKS - 1) * W, r[CHUNKS - 1], last_width);
  }

  // One (token, head) of causal attention, three passes over the keys: scores, softmax,
  // weighted sum of values. scores holds positions[t] + 1 floats; acc holds v_head_dim.
  template <class KV>
  static void attention_head(const ref::AttentionArgs& a, int64_t t, int64_t h, float* scores,
                             float* acc) {
    const int64_t kvh = h / (a.num_q_heads / a.num_kv_heads);
    const int64_t num_keys = static_cast<int64_t>(a.positions[t]) + 1;
    const float* q = a.q + t * a.q_tok + h * a.q_head;
    const KV* k = static_cast<const KV*>(a.k) + kvh * a.k_head;
    const KV* v = static_cast<const KV*>(a.v) + kvh * a.v_head;
    for (int64_t j = 0; j < num_keys; ++j) scores[j] = dot(q, k + j * a.k_tok, a.head_dim) * a.scale;

    Reg m = V::set1(-INFINITY);
    int64_t j = 0;
    for (; j + W <= num_keys; j += W) m = V::max(m, V::load(scores + j));
    float max_score = V::reduce_max(m);
    for (; j < num_keys; ++j) max_score = scores[j] > max_score ? scores[j] : max_score;

    const Reg mx = V::set1(max_score);
    Reg sum = V::zero();
    for (j = 0; j + W <= num_keys; j += W) {
      const Reg e = V::exp(V::sub(V::load(scores + j), mx));
      V::store(scores + j, e);
      sum = V::add(sum, e);
    }
    if (j < num_keys) {
      const int r = tail(num_keys, j);
      // NOTE: padding lanes load 0 and give exp(-max) != 0; mask them out by storing partially
      // and summing the stored values only.
      const Reg e = V::exp(V::sub(V::load_partial(scores + j, r), mx));
      V::store_partial(scores + j, e, r);
      sum = V::add(sum, V::load_partial(scores + j, r));
    }
    const float inv_sum = 1.0f / V::reduce_add(sum);

    const int64_t dv = a.v_head_dim;
    int64_t c = 0;
    for (; c + 4 * W <= dv; c += 4 * W) weighted_sum<4>(scores, v, a.v_tok, num_keys, c, W, acc);
    for (; c < dv; c += W) {
      const int width = dv - c >= W ? W : static_cast<int>(dv - c);
      weighted_sum<1>(scores, v, a.v_tok, num_keys, c, width, acc);
    }
    float* out = a.out + t * a.o_tok + h * a.o_head;
    const Reg scale = V::set1(inv_sum);
    for (c = 0; c + W <= dv; c += W) V::store(out + c, V::mul(V::load(acc + c), scale));
    if (c < dv) {
      const int r = tail(dv, c);
      V::store_partial(out + c, V::mul(V::load_partial(acc + c, r), scale), r);
    }
  }

  // acc[c .. c + CHUNKS*W) += sum_j p[j] * rows[j][c ..]   (rows: one V row per key)
  template <int CHUNKS, class KV>
  static void weighted_sum_rows(const float* p, const KV* const* rows, int64_t num_keys,
                                int64_t c, int last_width, float* acc) {
    Reg r[CHUNKS];
    for (int u = 0; u + 1 < CHUNKS; ++u) r[u] = V::load(acc + c + u * W);
    r[CHUNKS - 1] = V::load_partial(acc + c + (CHUNKS - 1) * W, last_width);
    for (int64_t j = 0; j < num_keys; ++j) {
      const Reg pj = V::set1(p[j]);
      const KV* row = rows[j] + c;
      for (int u = 0; u + 1 < CHUNKS; ++u) r[u] = V::fmadd(pj, load_kv(row + u * W), r[u]);
      const KV* last = row + (CHUNKS - 1) * W;
      const Reg lv = last_width == W ? load_kv(last) : load_kv_partial(last, last_width);
      r[CHUNKS - 1] = V::fmadd(pj, lv, r[CHUNKS - 1]);
    }
    for (int u = 0; u + 1 < CHUNKS; ++u) V::store(acc + c + u * W, r[u]);
    V::store_partial(acc + c + (CHUNKS - 1) * W, r[CHUNKS - 1], last_width);
  }

  static void scale_row(float* x, float f, int64_t n) {
    const Reg fv = V::set1(f);
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(x + i, V::mul(V::load(x + i), fv));
    if (i < n) V::store_partial(x + i, V::mul(V::load_partial(x + i, tail(n, i)), fv), tail(n, i));
  }

  // Keys per tile of the paged online softmax: scores and row pointers live on the stack.
  static constexpr int64_t kPagedTile = 64;

  // One (token t of sequence s, query head h) of paged attention: online softmax over tiles of
  // up to kPagedTile keys gathered through the block table. acc holds v_head_dim floats.
  template <class KV>
  static void paged_attention_head(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,
                                   int64_t h, float* acc) {
    const int64_t kvh = h / (a.num_q_heads / a.num_kv_heads);
    const int64_t n = a.query_start[s + 1] - a.query_start[s];
    const int64_t num_keys = a.seq_lens[s] - n + (t - a.query_start[s]) + 1;
    const int32_t* table = a.block_tables + s * a.bt_stride;
    const float* q = a.q + t * a.q_tok + h * a.q_head;
    const KV* k = static_cast<const KV*>(a.k) + kvh * a.k_head;
    const KV* v = static_cast<const KV*>(a.v) + kvh * a.v_head;
    const int64_t dv = a.v_head_dim;
    for (int64_t c = 0; c < dv; ++c) acc[c] = 0.0f;
    float scores[kPagedTile];
    const KV* v_rows[kPagedTile];
    float max_score = -INFINITY;
    float sum = 0.0f;
    for (int64_t j0 = 0; j0 < num_keys; j0 += kPagedTile) {
      const int64_t m = num_keys - j0 < kPagedTile ? num_keys - j0 : kPagedTile;
      float tile_max = -INFINITY;
      for (int64_t j = 0; j < m; ++j) {
        const int64_t key = j0 + j;
        const int64_t block = table[key / a.block_size];
        const int64_t slot = key % a.block_size;
        scores[j] = dot(q, k + block * a.k_block + slot * a.k_slot, a.head_dim) * a.scale;
        v_rows[j] = v + block * a.v_block + slot * a.v_slot;
        tile_max = scores[j] > tile_max ? scores[j] : tile_max;
      }
      const float new_max = tile_max > max_score ? tile_max : max_score;
      if (max_score != -INFINITY && new_max != max_score) {
        const float alpha = std::exp(max_score - new_max);
        sum *= alpha;
        scale_row(acc, alpha, dv);
      }
      max_score = new_max;
      const Reg mx = V::set1(max_score);
      Reg tile_sum = V::zero();
      int64_t j = 0;
      for (; j + W <= m; j += W) {
        const Reg e = V::exp(V::sub(V::load(scores + j), mx));
        V::store(scores + j, e);
        tile_sum = V::add(tile_sum, e);
      }
      if (j < m) {
        const int r = tail(m, j);
        // NOTE: padding lanes give exp(-max) != 0; store partially and sum the stored values.
        const Reg e = V::exp(V::sub(V::load_partial(scores + j, r), mx));
        V::store_partial(scores + j, e, r);
        tile_sum = V::add(tile_sum, V::load_partial(scores + j, r));
      }
      sum += V::reduce_add(tile_sum);
      int64_t c = 0;
      for (; c + 4 * W <= dv; c += 4 * W) weighted_sum_rows<4>(scores, v_rows, m, c, W, acc);
      for (; c < dv; c += W) {
        const int width = dv - c >= W ? W : static_cast<int>(dv - c);
        weighted_sum_rows<1>(scores, v_rows, m, c, width, acc);
      }
    }
    float* out = a.out + t * a.o_tok + h * a.o_head;
    const Reg inv = V::set1(1.0f / sum);
    int64_t c = 0;
    for (; c + W <= dv; c += W) V::store(out + c, V::mul(V::load(acc + c), inv));
    if (c < dv) {
      const int r = tail(dv, c);
      V::store_partial(out + c, V::mul(V::load_partial(acc + c, r), inv), r);
    }
  }
};

}  // namespace
}  // namespace tessera::kernels::cpu

// Definitions of the ops_isa.h entry points of one family for vector traits V, placed inside
// the ISA's namespace by each per-ISA file.
#define TESSERA_DEFINE_NORM_OPS(V)                                                       \
  void rms_norm_row(const float* x, const float* w, float eps, float* out, int64_t n) {  \
    SimdOps<V>::rms_norm_row(x, w, eps, out, n);                                         \
  }

#define TESSERA_DEFINE_ELEMENTWISE_OPS(V)                                          \
  void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {  \
    SimdOps<V>::silu_mul_row(gate, up, out, n);                                    \
  }                                                                                \
  void add_row(const float* a, const float* b, float* out, int64_t n) {           \
    SimdOps<V>::add_row(a, b, out, n);                                             \
  }                                                                                \
  void convert_f16_row(const float* src, uint16_t* dst, int64_t n) {              \
    SimdOps<V>::convert_f16_row(src, dst, n);                                      \
  }                                                                                \
  void convert_bf16_row(const float* src, uint16_t* dst, int64_t n) {             \
    SimdOps<V>::convert_bf16_row(src, dst, n);                                     \
  }

#define TESSERA_DEFINE_ROPE_OPS(V)                                           \
  void rope_neox(float* x, const float* cos, const float* sin, int half) {  \
    SimdOps<V>::rope_neox(x, cos, sin, half);                                \
  }

#define TESSERA_DEFINE_ATTENTION_OPS(V)                                                       \
  void attention_head_f32(const ref::AttentionArgs& a, int64_t t, int64_t h, float* scores,  \
                          float* acc) {                                                       \
    SimdOps<V>::attention_head<float>(a, t, h, scores, acc);                                 \
  }                                                                                           \
  void attention_head_f16(const ref::AttentionArgs& a, int64_t t, int64_t h, float* scores,  \
                          float* acc) {                                                       \
    SimdOps<V>::attention_head<uint16_t>(a, t, h, scores, acc);                              \
  }

#define TESSERA_DEFINE_PAGED_ATTENTION_OPS(V)                                                 \
  void paged_attention_head_f32(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,      \
                                int64_t h, float* acc) {                                      \
    SimdOps<V>::paged_attention_head<float>(a, s, t, h, acc);                                \
  }                                                                                           \
  void paged_attention_head_f16(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,      \
                                int64_t h, float* acc) {                                      \
    SimdOps<V>::paged_attention_head<uint16_t>(a, s, t, h, acc);                             \
  }
