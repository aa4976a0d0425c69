// Generic bodies of the CPU op kernels, written once against a vector-traits type V
// (VecScalar, VecAvx2, VecAvx512) and instantiated in the per-ISA files. No intrinsics here.
// Invariant: every loop handles its tail with V's partial loads/stores, so any length works
// and nothing past a row's end is read or written.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

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

  // ---- Grouped attention (one token x one KV head per call; all its query heads at once) ----
  // Keys are taken in blocks of kKeyBlock (kKeyBlockWide for wide rows): each K / V row of a
  // block is read from memory once (f16 rows converted once into an f32 buffer) and used from
  // L1 for every query head of the group; each head keeps an online softmax (m, l, acc).

  static constexpr int kKeyBlock = 16;
  static constexpr int kKeyBlockWide = 8;  // when D + Dv > 512: a block stays within L1

  static void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) V::store(dst + i, V::load_f16(src + i));
    if (i < n) V::store_partial(dst + i, V::load_f16_partial(src + i, tail(n, i)), tail(n, i));
  }

  // out[j] = scale * dot(q, rows[j]) for j < nb; four keys share each load of q.
  static void block_scores(const float* q, const float* const* rows, int nb, int64_t d,
                           float scale, float* out) {
    int j = 0;
    for (; j + 4 <= nb; j += 4) {
      const float *r0 = rows[j], *r1 = rows[j + 1], *r2 = rows[j + 2], *r3 = rows[j + 3];
      Reg a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
      int64_t i = 0;
      for (; i + W <= d; i += W) {
        const Reg qv = V::load(q + i);
        a0 = V::fmadd(qv, V::load(r0 + i), a0);
        a1 = V::fmadd(qv, V::load(r1 + i), a1);
        a2 = V::fmadd(qv, V::load(r2 + i), a2);
        a3 = V::fmadd(qv, V::load(r3 + i), a3);
      }
      if (i < d) {
        const int m = tail(d, i);
        const Reg qv = V::load_partial(q + i, m);
        a0 = V::fmadd(qv, V::load_partial(r0 + i, m), a0);
        a1 = V::fmadd(qv, V::load_partial(r1 + i, m), a1);
        a2 = V::fmadd(qv, V::load_partial(r2 + i, m), a2);
        a3 = V::fmadd(qv, V::load_partial(r3 + i, m), a3);
      }
      out[j] = V::reduce_add(a0) * scale;
      out[j + 1] = V::reduce_add(a1) * scale;
      out[j + 2] = V::reduce_add(a2) * scale;
      out[j + 3] = V::reduce_add(a3) * scale;
    }
    for (; j < nb; ++j) {
      Reg a0 = V::zero();
      int64_t i = 0;
      for (; i + W <= d; i += W) a0 = V::fmadd(V::load(q + i), V::load(rows[j] + i), a0);
      if (i < d) {
        a0 = V::fmadd(V::load_partial(q + i, tail(d, i)), V::load_partial(rows[j] + i, tail(d, i)),
                      a0);
      }
      out[j] = V::reduce_add(a0) * scale;
    }
  }

  // acc[c .. c + CHUNKS*W) = alpha * acc[..] + sum_j p[j] * rows[j][c ..]
  template <int CHUNKS>
  static void rescale_accumulate(const float* p, const float* const* rows, int nb, float alpha,
                                 int64_t c, int last_width, float* acc) {
    const Reg av = V::set1(alpha);
    Reg r[CHUNKS];
    for (int u = 0; u + 1 < CHUNKS; ++u) r[u] = V::mul(V::load(acc + c + u * W), av);
    r[CHUNKS - 1] = V::mul(V::load_partial(acc + c + (CHUNKS - 1) * W, last_width), av);
    for (int j = 0; j < nb; ++j) {
      const Reg pj = V::set1(p[j]);
      const float* row = rows[j] + c;
      for (int u = 0; u + 1 < CHUNKS; ++u) r[u] = V::fmadd(pj, V::load(row + u * W), r[u]);
      const float* last = row + (CHUNKS - 1) * W;
      const Reg lv = last_width == W ? V::load(last) : V::load_partial(last, last_width);
      r[CHUNKS - 1] = V::fmadd(pj, lv, r[CHUNKS - 1]);
    }
    for (int u = 0; u + 1 < CHUNKS; ++u) V::store(acc + c + u * W, r[u]);
    V::store_partial(acc + c + (CHUNKS - 1) * W, r[CHUNKS - 1], last_width);
  }

  // Online-softmax partial of one KV group over keys [k0, k1) (see ops.h attention_group):
  // key_row(j) / value_row(j) give key j's K / V row (type KV); q: G rows of stride q_head.
  //   m [G], l [G], acc [G, dv]
  template <class KV, class KeyRow, class ValueRow>
  static void group_partial(const float* q, int64_t q_head, int64_t G, int64_t d, int64_t dv,
                            float scale, KeyRow key_row, ValueRow value_row, int64_t k0,
                            int64_t k1, float* m, float* l, float* acc) {
    for (int64_t h = 0; h < G; ++h) {
      m[h] = -INFINITY;
      l[h] = 0.0f;
    }
    for (int64_t c = 0; c < G * dv; ++c) acc[c] = 0.0f;
    const int kb = d + dv > 512 ? kKeyBlockWide : kKeyBlock;
    constexpr bool kF16 = !std::is_same_v<KV, float>;
    thread_local std::vector<float> conv;  // f16 only: kb rows of K then kb rows of V
    if constexpr (kF16) {
      const size_t need = static_cast<size_t>(kb) * static_cast<size_t>(d + dv);
      if (conv.size() < need) conv.resize(need);
    }
    const float* k_rows[kKeyBlock];
    const float* v_rows[kKeyBlock];
    float p[kKeyBlock];
    const int64_t k_bytes = d * static_cast<int64_t>(sizeof(KV));
    const int64_t v_bytes = dv * static_cast<int64_t>(sizeof(KV));
    for (int64_t j0 = k0; j0 < k1; j0 += kb) {
      const int nb = static_cast<int>(k1 - j0 < kb ? k1 - j0 : kb);
      // Rows sit a page or more apart (one KV head of a token, or a paged block), which the
      // hardware prefetchers do not follow: ask for the next block's rows now.
      const int64_t next_end = j0 + kb + kb < k1 ? j0 + kb + kb : k1;
      for (int64_t j = j0 + kb; j < next_end; ++j) {
        const char* kr = reinterpret_cast<const char*>(key_row(j));
        const char* vr = reinterpret_cast<const char*>(value_row(j));
        for (int64_t o = 0; o < k_bytes; o += 64) __builtin_prefetch(kr + o);
        if (vr != kr) {
          for (int64_t o = 0; o < v_bytes; o += 64) __builtin_prefetch(vr + o);
        }
      }
      for (int j = 0; j < nb; ++j) {
        const KV* kr = key_row(j0 + j);
        const KV* vr = value_row(j0 + j);
        if constexpr (kF16) {
          float* kf = conv.data() + static_cast<size_t>(j) * d;
          f16_to_f32_row(kr, kf, d);
          k_rows[j] = kf;
          if (static_cast<const void*>(vr) == static_cast<const void*>(kr)) {
            v_rows[j] = kf;  // MLA: V is the leading part of the K row
          } else {
            float* vf = conv.data() + static_cast<size_t>(kb) * d + static_cast<size_t>(j) * dv;
            f16_to_f32_row(vr, vf, dv);
            v_rows[j] = vf;
          }
        } else {
          k_rows[j] = kr;
          v_rows[j] = vr;
        }
      }
      for (int64_t h = 0; h < G; ++h) {
        block_scores(q + h * q_head, k_rows, nb, d, scale, p);
        float block_max = p[0];
        for (int j = 1; j < nb; ++j) block_max = p[j] > block_max ? p[j] : block_max;
        const float new_max = block_max > m[h] ? block_max : m[h];
        const float alpha = m[h] == -INFINITY ? 0.0f : std::exp(m[h] - new_max);
        m[h] = new_max;
        const Reg mx = V::set1(new_max);
        Reg sum = V::zero();
        int j = 0;
        for (; j + W <= nb; j += W) {
          const Reg e = V::exp(V::sub(V::load(p + j), mx));
          V::store(p + j, e);
          sum = V::add(sum, e);
        }
        if (j < nb) {
          const int r = tail(nb, j);
          // NOTE: padding lanes give exp(-max) != 0; store partially and sum the stored values.
          const Reg e = V::exp(V::sub(V::load_partial(p + j, r), mx));
          V::store_partial(p + j, e, r);
          sum = V::add(sum, V::load_partial(p + j, r));
        }
        l[h] = l[h] * alpha + V::reduce_add(sum);
        float* acc_h = acc + h * dv;
        int64_t c = 0;
        for (; c + 4 * W <= dv; c += 4 * W) {
          rescale_accumulate<4>(p, v_rows, nb, alpha, c, W, acc_h);
        }
        for (; c < dv; c += W) {
          const int width = dv - c >= W ? W : static_cast<int>(dv - c);
          rescale_accumulate<1>(p, v_rows, nb, alpha, c, width, acc_h);
        }
      }
    }
  }

  template <class KV>
  static void attention_group(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0,
                              int64_t k1, float* m, float* l, float* acc) {
    const int64_t G = a.num_q_heads / a.num_kv_heads;
    const KV* k = static_cast<const KV*>(a.k) + g * a.k_head;
    const KV* v = static_cast<const KV*>(a.v) + g * a.v_head;
    const int64_t k_tok = a.k_tok, v_tok = a.v_tok;
    group_partial<KV>(
        a.q + t * a.q_tok + g * G * a.q_head, a.q_head, G, a.head_dim, a.v_head_dim, a.scale,
        [=](int64_t j) { return k + j * k_tok; }, [=](int64_t j) { return v + j * v_tok; }, k0,
        k1, m, l, acc);
  }

  template <class KV>
  static void paged_attention_group(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,
                                    int64_t g, int64_t k0, int64_t k1, float* m, float* l,
                                    float* acc) {
    const int64_t G = a.num_q_heads / a.num_kv_heads;
    const int32_t* table = a.block_tables + s * a.bt_stride;
    const KV* k = static_cast<const KV*>(a.k) + g * a.k_head;
    const KV* v = static_cast<const KV*>(a.v) + g * a.v_head;
    const int64_t bs = a.block_size, k_block = a.k_block, k_slot = a.k_slot;
    const int64_t v_block = a.v_block, v_slot = a.v_slot;
    group_partial<KV>(
        a.q + t * a.q_tok + g * G * a.q_head, a.q_head, G, a.head_dim, a.v_head_dim, a.scale,
        [=](int64_t j) { return k + table[j / bs] * k_block + (j % bs) * k_slot; },
        [=](int64_t j) { return v + table[j / bs] * v_block + (j % bs) * v_slot; }, k0, k1, m, l,
        acc);
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

#define TESSERA_DEFINE_ATTENTION_OPS(V)                                                    \
  void attention_group_f32(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0, \
                           int64_t k1, float* m, float* l, float* acc) {                   \
    SimdOps<V>::attention_group<float>(a, t, g, k0, k1, m, l, acc);                        \
  }                                                                                        \
  void attention_group_f16(const ref::AttentionArgs& a, int64_t t, int64_t g, int64_t k0, \
                           int64_t k1, float* m, float* l, float* acc) {                   \
    SimdOps<V>::attention_group<uint16_t>(a, t, g, k0, k1, m, l, acc);                     \
  }

#define TESSERA_DEFINE_PAGED_ATTENTION_OPS(V)                                                \
  void paged_attention_group_f32(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,    \
                                 int64_t g, int64_t k0, int64_t k1, float* m, float* l,     \
                                 float* acc) {                                              \
    SimdOps<V>::paged_attention_group<float>(a, s, t, g, k0, k1, m, l, acc);                \
  }                                                                                         \
  void paged_attention_group_f16(const ref::PagedAttentionArgs& a, int64_t s, int64_t t,    \
                                 int64_t g, int64_t k0, int64_t k1, float* m, float* l,     \
                                 float* acc) {                                              \
    SimdOps<V>::paged_attention_group<uint16_t>(a, s, t, g, k0, k1, m, l, acc);             \
  }
