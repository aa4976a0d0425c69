// Host tests of the __host__ __device__ logic the CUDA tensor-core kernels share with the host:
// FP8 e4m3 encode/decode and the activation quantisation of the block-scaled GEMM (against
// kernels/common's conversions and kernels/ref's matmul), split-K ranges, and the flash prefill
// kernel's tile enumeration, causal limits and block-table addressing.
// Invariant: needs no GPU and no CUDA headers; the headers under test are the kernels' own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/cuda/attention/flash_tile_logic.h"
#include "kernels/cuda/gemm/fp8_block_logic.h"
#include "kernels/ref/fp8_matmul.h"
#include "kernels/ref/ops.h"

namespace tessera {
namespace {

namespace fp8 = kernels::cuda::fp8;
namespace flash = kernels::cuda::flash;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(CudaFp8Logic, DecodeMatchesReferenceForEveryCode) {
  for (int c = 0; c < 256; ++c) {
    const float want = kernels::fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    const float got = fp8::e4m3_decode(static_cast<uint8_t>(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << c;
    } else {
      EXPECT_EQ(std::memcmp(&want, &got, 4), 0) << c << ": " << want << " vs " << got;
    }
  }
}

TEST(CudaFp8Logic, EncodeMatchesReference) {
  std::vector<float> probes = {0.0f,          -0.0f,        448.0f,        -448.0f,     456.0f,
                               463.99f,       464.0f,       500.0f,        1e30f,       INFINITY,
                               -INFINITY,     NAN,          1e-30f,        1e-45f,      0.015625f,
                               0.0009765625f, 0.001953125f, 0.0029296875f, 0.013671875f};
  // Every code's value, the midpoints between neighbours and one f32 ulp either side.
  for (int c = 0; c < 0x7f; ++c) {
    const float a = kernels::fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    const float b = kernels::fp8_e4m3_to_f32(static_cast<uint8_t>(c + 1));
    const float mid = b == b && c + 1 < 0x7f ? 0.5f * (a + b) : a;
    for (float v : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      probes.push_back(v);
      probes.push_back(-v);
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> exp_bits(90, 140), mant(0, (1u << 23) - 1);
  for (int i = 0; i < 200000; ++i) {
    probes.push_back(from_bits(((rng() & 1u) << 31) | (exp_bits(rng) << 23) | mant(rng)));
  }
  for (float v : probes) {
    ASSERT_EQ(fp8::e4m3_encode(v), kernels::f32_to_fp8_e4m3(v)) << v;
  }
}

TEST(CudaFp8Logic, ActivationScaleSaturatesAtTheGroupMax) {
  EXPECT_EQ(fp8::act_scale(0.0f), 1.0f);
  const float amax = 3.7f, s = fp8::act_scale(amax);
  EXPECT_FLOAT_EQ(s, amax / 448.0f);
  EXPECT_EQ(fp8::act_code(amax, s), 0x7e);  // the max lands on 448 exactly (or saturates)
  EXPECT_EQ(fp8::act_code(-amax, s), 0xfe);
  EXPECT_EQ(fp8::act_code(0.0f, s), 0x00);
  EXPECT_EQ(fp8::act_code(NAN, s) & 0x7f, 0x7f);
  // Round trip of every group element stays within half an e4m3 step (relative 2^-4).
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-amax, amax);
  for (int i = 0; i < 10000; ++i) {
    const float x = u(rng);
    const float back = fp8::e4m3_decode(fp8::act_code(x, s)) * s;
    EXPECT_LE(std::fabs(back - x), std::max(std::fabs(x) * 0.0625f, s * 0.001953125f)) << x;
  }
}

struct Agreement {
  double nmse, one_minus_cos;
};

// The GEMM's algorithm on the host (quantise x per row per 128 group, optionally with residual
// codes, per-group f32 partials promoted with x_scale * w_scale) against the dequantised
// reference, on registry-like random operands.
Agreement quantised_gemm_vs_reference(int64_t M, int64_t N, int64_t K, bool lo, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(0.1f, 1.0f);
  const int64_t kb = fp8::ceil_div(K, 128), nb = fp8::ceil_div(N, 128);
  std::vector<float> x(M * K), ws(nb * kb), want(M * N), got(M * N);
  std::vector<uint8_t> w(N * K);
  for (float& v : x) v = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  for (float& v : ws) v = 0.01f * mag(rng);
  for (uint8_t& c : w) {
    c = static_cast<uint8_t>(rng());
    if ((c & 0x7f) == 0x7f) c ^= 1;
  }
  kernels::BlockScaledMatmulArgs a;
  a.x = x.data();
  a.x_stride = K;
  a.w = w.data();
  a.w_stride = K;
  a.scale_inv = ws.data();
  a.scale_stride = kb;
  a.out = want.data();
  a.out_stride = N;
  a.m = M;
  a.n = N;
  a.k = K;
  kernels::ref::matmul_block_scaled(a);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<float> total(N, 0.0f), xd(128);
    for (int64_t g = 0; g < kb; ++g) {
      const int64_t k0 = g * 128, k1 = std::min(K, k0 + 128);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[m * K + k]));
      const float sx = fp8::act_scale(amax);
      for (int64_t k = k0; k < k1; ++k) {
        const uint8_t hi = fp8::act_code(x[m * K + k], sx);
        xd[k - k0] = fp8::e4m3_decode(hi);
        if (lo) xd[k - k0] += fp8::e4m3_decode(fp8::act_code_lo(x[m * K + k], sx, hi));
      }
      for (int64_t n = 0; n < N; ++n) {
        float part = 0.0f;
        for (int64_t k = k0; k < k1; ++k) part += xd[k - k0] * fp8::e4m3_decode(w[n * K + k]);
        total[n] = std::fma(part, sx * ws[(n / 128) * kb + g], total[n]);
      }
    }
    for (int64_t n = 0; n < N; ++n) got[m * N + n] = total[n];
  }
  double err2 = 0, ref2 = 0, tgt2 = 0, dot = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err2 += (double(want[i]) - got[i]) * (double(want[i]) - got[i]);
    ref2 += double(want[i]) * want[i];
    tgt2 += double(got[i]) * got[i];
    dot += double(want[i]) * got[i];
  }
  return {err2 / ref2, 1.0 - dot / std::sqrt(ref2 * tgt2)};
}

// Decode-sized M (<= 16, every registry 128x128 case) uses residual codes: far inside the
// registry's FP8 tolerance (NMSE 2e-3, 1 - cos 1e-3) even for the few-output cases, whose
// single-quantisation error would exceed it for some seeds.
TEST(CudaFp8Logic, ResidualQuantisationIsFarInsideTheRegistryTolerance) {
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape s : {Shape{1, 7, 129}, Shape{7, 129, 300}, Shape{9, 256, 384},
                        Shape{1, 256, 7168}, Shape{5, 33, 200}, Shape{4, 1, 7}}) {
    for (uint32_t seed = 1; seed <= 10; ++seed) {
      const Agreement a = quantised_gemm_vs_reference(s.m, s.n, s.k, true, seed);
      EXPECT_LT(a.nmse, 1e-4) << s.m << "x" << s.n << "x" << s.k << " seed " << seed;
      EXPECT_LT(a.one_minus_cos, 5e-5) << s.m << "x" << s.n << "x" << s.k << " seed " << seed;
    }
  }
}

// Larger M keeps DeepSeek's single quantisation: NMSE ~6e-4 over many outputs.
TEST(CudaFp8Logic, SingleQuantisationIsInsideTheRegistryToleranceForManyOutputs) {
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    const Agreement a = quantised_gemm_vs_reference(64, 200, 700, false, seed);
    EXPECT_LT(a.nmse, 1e-3) << seed;
    EXPECT_LT(a.one_minus_cos, 5e-4) << seed;
  }
}

TEST(CudaFp8Logic, SplitRangesCoverEveryGroupOnce) {
  for (int64_t groups = 1; groups < 80; ++groups) {
    for (int splits = 1; splits <= 16; ++splits) {
      int64_t next = 0;
      for (int z = 0; z < splits; ++z) {
        int64_t b, e;
        fp8::split_range(groups, splits, z, &b, &e);
        ASSERT_LE(b, e);
        if (b < e) {
          ASSERT_EQ(b, next) << groups << "/" << splits;
          next = e;
        }
      }
      ASSERT_EQ(next, groups) << groups << "/" << splits;
    }
  }
  // Decode on an H200 (132 SMs): DeepSeek-V3 7168x7168 at M = 1 splits, M = 4096 does not.
  EXPECT_GT(fp8::choose_splits(56, 56, 132), 1);
  EXPECT_EQ(fp8::choose_splits(32 * 56, 56, 132), 1);
  EXPECT_EQ(fp8::choose_splits(1, 3, 132), 1);
  EXPECT_LE(fp8::choose_splits(1, 1000, 132), 16);
}

TEST(CudaFlashLogic, HeadsPerCtaDividesTheGroup) {
  EXPECT_EQ(flash::heads_per_cta(1), 1);
  EXPECT_EQ(flash::heads_per_cta(4), 4);
  EXPECT_EQ(flash::heads_per_cta(8), 8);
  EXPECT_EQ(flash::heads_per_cta(16), 8);
  EXPECT_EQ(flash::heads_per_cta(7), 1);
  EXPECT_EQ(flash::heads_per_cta(6), 2);
  EXPECT_EQ(flash::heads_per_cta(12), 4);
  for (int64_t g = 1; g <= 128; ++g) {
    const int hc = flash::heads_per_cta(g);
    EXPECT_EQ(g % hc, 0);
    EXPECT_EQ(flash::kRows % hc, 0);
  }
}

// Every (long sequence, tile) pair owns exactly one slot of the grid; the rest are idle.
TEST(CudaFlashLogic, TileSlotsEnumerateEveryLongSequenceTileOnce) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 400; ++trial) {
    const int num_seqs = 1 + static_cast<int>(rng() % 9);
    std::vector<int32_t> qs(1, 0);
    for (int s = 0; s < num_seqs; ++s) {
      const int kind = static_cast<int>(rng() % 4);
      const int32_t n = kind == 0 ? 0 : kind == 1 ? 1 + rng() % 20 : rng() % 300;
      qs.push_back(qs.back() + n);
    }
    for (int T : {8, 16, 32, 64}) {
      const int64_t slots = flash::num_slots(qs.back(), num_seqs, T);
      std::set<std::pair<int64_t, int64_t>> seen;
      for (int64_t slot = 0; slot < slots; ++slot) {
        int64_t s, tile;
        if (!flash::find_tile(qs.data(), num_seqs, T, flash::kMinRun, slot, &s, &tile)) continue;
        ASSERT_TRUE(seen.insert({s, tile}).second) << "slot " << slot;
        ASSERT_GE(qs[s + 1] - qs[s], flash::kMinRun);
      }
      size_t want = 0;
      for (int s = 0; s < num_seqs; ++s) {
        const int64_t n = qs[s + 1] - qs[s];
        if (!flash::flash_owns(n, flash::kMinRun)) continue;
        want += static_cast<size_t>(fp8::ceil_div(n, T));
        for (int64_t t = 0; t * T < n; ++t) ASSERT_TRUE(seen.count({s, t})) << s << "/" << t;
      }
      ASSERT_EQ(seen.size(), want);
    }
  }
  EXPECT_FALSE(flash::flash_owns(100, 0));
  EXPECT_FALSE(flash::flash_owns(15, flash::kMinRun));
  EXPECT_TRUE(flash::flash_owns(16, flash::kMinRun));
}

// The causal limit of the last query is the sequence length, so a tile never addresses a key
// (or a block-table entry) past the sequence; addresses follow the table.
TEST(CudaFlashLogic, CausalLimitsAndBlockTableAddresses) {
  const int64_t seq_len = 117, n = 40, bs = 16, block_stride = 1000, slot_stride = 10;
  EXPECT_EQ(flash::key_limit(seq_len, n, n - 1), seq_len);
  EXPECT_EQ(flash::key_limit(seq_len, n, 0), seq_len - n + 1);
  EXPECT_EQ(flash::key_limit(n, n, 0), 1);  // a fresh prompt's first token sees itself only
  const std::vector<int32_t> table = {7, 3, 9, 0, 5, 2, 8, 1};  // ceil(117 / 16) = 8 entries
  for (int64_t j = 0; j < seq_len; ++j) {
    int64_t blk, slot;
    flash::key_block_slot(table.data(), j, bs, &blk, &slot);
    ASSERT_EQ(blk * block_stride + slot * slot_stride,
              table[j / bs] * block_stride + (j % bs) * slot_stride);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t lim = flash::key_limit(seq_len, n, i);
    EXPECT_LE(fp8::ceil_div(lim, bs), static_cast<int64_t>(table.size()));
  }
}

// The flash kernel's hi + lo split of Q and P: the residual representation error is far below
// the registry's attention tolerance (NMSE 1e-7) for both f16 and bf16.
TEST(CudaFlashLogic, HiLoSplitKeepsF32LevelPrecision) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  for (int i = 0; i < 100000; ++i) {
    const float v = u(rng);
    const float h16 = kernels::f16_to_f32(kernels::f32_to_f16(v));
    const float l16 = kernels::f16_to_f32(kernels::f32_to_f16(v - h16));
    EXPECT_LE(std::fabs(v - (h16 + l16)), std::fabs(v) * 1e-6f + 1e-7f) << v;
    const float hb = kernels::bf16_to_f32(kernels::f32_to_bf16(v));
    const float lb = kernels::bf16_to_f32(kernels::f32_to_bf16(v - hb));
    EXPECT_LE(std::fabs(v - (hb + lb)), std::fabs(v) * 2e-5f + 1e-7f) << v;
  }
}

// Host mirror of flash_prefill_kernel's per-row algorithm on the kernel's own enumeration
// (slots, packed heads, causal limits, block-table addressing): key tiles of 64, exp2 online
// softmax, Q and P split hi + lo in the cache type, f32 sums. Against the reference it must sit
// far inside the registry's paged_attention tolerance (NMSE 1e-7), for f16 and bf16 caches.
double flash_mirror_nmse(bool bf16, int64_t hq, int64_t hkv, int64_t d, int64_t bs,
                         const std::vector<std::pair<int32_t, int32_t>>& seqs, uint32_t seed) {
  auto round_t = [&](float v) {
    return bf16 ? kernels::bf16_to_f32(kernels::f32_to_bf16(v))
                : kernels::f16_to_f32(kernels::f32_to_f16(v));
  };
  auto encode_t = [&](float v) { return bf16 ? kernels::f32_to_bf16(v) : kernels::f32_to_f16(v); };
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t num_seqs = static_cast<int64_t>(seqs.size());
  std::vector<int32_t> qs(1, 0), lens;
  int64_t max_blocks = 0, total_blocks = 0;
  for (const auto& [cached, n] : seqs) {
    qs.push_back(qs.back() + n);
    lens.push_back(cached + n);
    max_blocks = std::max<int64_t>(max_blocks, fp8::ceil_div(cached + n, bs));
    total_blocks += fp8::ceil_div(cached + n, bs);
  }
  const int64_t T = qs.back();
  std::vector<int32_t> perm(total_blocks), table(num_seqs * max_blocks, -1);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t s = 0, next = 0; s < num_seqs; ++s) {
    for (int64_t b = 0; b < fp8::ceil_div(lens[s], bs); ++b)
      table[s * max_blocks + b] = perm[next++];
  }
  std::vector<float> q(T * hq * d), want(T * hq * d, 0.0f), got(T * hq * d, NAN);
  std::vector<uint16_t> k(total_blocks * bs * hkv * d), v(k.size());
  for (float& x : q) x = u(rng);
  for (uint16_t& x : k) x = encode_t(u(rng));
  for (uint16_t& x : v) x = encode_t(u(rng));
  auto dec = [&](uint16_t b) { return bf16 ? kernels::bf16_to_f32(b) : kernels::f16_to_f32(b); };
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // The reference reads f32/f16 caches; it gets the decoded values (exact) as f32.
  std::vector<float> kf(k.size()), vf(v.size());
  for (size_t e = 0; e < k.size(); ++e) {
    kf[e] = dec(k[e]);
    vf[e] = dec(v[e]);
  }
  kernels::ref::PagedAttentionArgs a{};
  a.q = q.data();
  a.q_tok = hq * d;
  a.q_head = d;
  a.k = kf.data();
  a.v = vf.data();
  a.k_block = a.v_block = bs * hkv * d;
  a.k_slot = a.v_slot = hkv * d;
  a.k_head = a.v_head = d;
  a.kv_type = kernels::ElemType::kF32;
  a.out = want.data();
  a.o_tok = hq * d;
  a.o_head = d;
  a.num_seqs = num_seqs;
  a.num_q_heads = hq;
  a.num_kv_heads = hkv;
  a.head_dim = a.v_head_dim = d;
  a.block_size = bs;
  a.query_start = qs.data();
  a.seq_lens = lens.data();
  a.block_tables = table.data();
  a.bt_stride = max_blocks;
  a.scale = scale;
  kernels::ref::paged_attention(a);

  const int64_t group = hq / hkv;
  const int hc = flash::heads_per_cta(group);
  const int tpc = flash::tokens_per_cta(hc);
  const float scale_log2 = scale * 1.4426950408889634f;
  for (int64_t slot = 0; slot < flash::num_slots(T, num_seqs, tpc); ++slot) {
    int64_t s, tile;
    if (!flash::find_tile(qs.data(), num_seqs, tpc, flash::kMinRun, slot, &s, &tile)) continue;
    const int64_t n = qs[s + 1] - qs[s];
    for (int64_t y = 0; y < hkv * (group / hc); ++y) {
      const int64_t kvh = y / (group / hc), h0 = kvh * group + (y % (group / hc)) * hc;
      for (int r = 0; r < flash::kRows; ++r) {
        const int64_t i = tile * tpc + r / hc, h = h0 + r % hc;
        if (i >= n) continue;
        const int64_t lim = flash::key_limit(lens[s], n, i);
        const float* qrow = &q[(qs[s] + i) * hq * d + h * d];
        float m_run = -INFINITY, l_run = 0.0f;
        std::vector<float> o(d, 0.0f);
        for (int64_t kt0 = 0; kt0 < lim; kt0 += flash::kKeyTile) {
          std::vector<float> sc(flash::kKeyTile, -INFINITY);
          float mx = -INFINITY;
          for (int j = 0; j < flash::kKeyTile && kt0 + j < lim; ++j) {
            int64_t blk, sl;
            flash::key_block_slot(&table[s * max_blocks], kt0 + j, bs, &blk, &sl);
            const uint16_t* krow = &k[blk * bs * hkv * d + sl * hkv * d + kvh * d];
            float hi = 0.0f, lo = 0.0f;
            for (int64_t e = 0; e < d; ++e) {
              const float qh = round_t(qrow[e]);
              hi += qh * dec(krow[e]);
              lo += round_t(qrow[e] - qh) * dec(krow[e]);
            }
            sc[j] = (hi + lo) * scale_log2;
            mx = std::max(mx, sc[j]);
          }
          const float m_new = std::max(m_run, mx);
          const float base = m_new == -INFINITY ? 0.0f : m_new;
          const float alpha = std::exp2(m_run - base);
          m_run = m_new;
          l_run *= alpha;
          for (float& x : o) x *= alpha;
          for (int j = 0; j < flash::kKeyTile && kt0 + j < lim; ++j) {
            const float pv = std::exp2(sc[j] - base);
            l_run += pv;
            const float ph = round_t(pv), pl = round_t(pv - ph);
            int64_t blk, sl;
            flash::key_block_slot(&table[s * max_blocks], kt0 + j, bs, &blk, &sl);
            const uint16_t* vrow = &v[blk * bs * hkv * d + sl * hkv * d + kvh * d];
            for (int64_t e = 0; e < d; ++e) o[e] += ph * dec(vrow[e]) + pl * dec(vrow[e]);
          }
        }
        for (int64_t e = 0; e < d; ++e) got[(qs[s] + i) * hq * d + h * d + e] = o[e] / l_run;
      }
    }
  }
  double err2 = 0, ref2 = 0;
  int64_t covered = 0;
  for (size_t e = 0; e < got.size(); ++e) {
    if (std::isnan(got[e])) continue;  // rows left to the split-K kernel
    ++covered;
    err2 += (double(got[e]) - want[e]) * (double(got[e]) - want[e]);
    ref2 += double(want[e]) * want[e];
  }
  EXPECT_GT(covered, 0);
  return err2 / ref2;
}

TEST(CudaFlashLogic, MirrorOfTheKernelMatchesTheReference) {
  // The registry's prefill shape (GQA 8, 17 new tokens after 100 cached) and a mixed batch
  // with GQA 4 (hc = 4), partial tiles, a short run left to the split-K kernel, block size 7.
  for (bool bf16 : {false, true}) {
    const double a = flash_mirror_nmse(bf16, 8, 1, 64, 16, {{100, 17}, {0, 1}}, 1);
    const double b =
        flash_mirror_nmse(bf16, 8, 2, 128, 7, {{0, 70}, {5, 3}, {130, 20}, {0, 16}}, 2);
    EXPECT_LT(a, 1e-9) << (bf16 ? "bf16" : "f16");
    EXPECT_LT(b, 1e-9) << (bf16 ? "bf16" : "f16");
  }
}

}  // namespace
}  // namespace tessera
