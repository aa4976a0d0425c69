// Host tests of the tensor-core weight-only INT8 GEMM's logic (kernels/cuda/gemm/int8_wo_logic.h):
// split-K choice, every (m, n, k) of a problem reached exactly once by the kernel's enumeration
// (CTAs, splits, stages, warps, fragments, lanes, the k permutation), bank-conflict-free shared
// loads, the exact i8 -> bf16 conversion, and a mirror of the kernel's arithmetic (bf16 hi + lo
// of x, f32 sums per mma k16 step, split partials summed in order) against the f64 reference.
#include "kernels/cuda/gemm/int8_wo_logic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/ref/int8_matmul.h"

namespace tessera {
namespace {

namespace wo = kernels::cuda::wo;

constexpr int kH200Sms = 132;

// Real k (within a k16 step) that the mma's k position kk multiplies, read from A's side (row
// `row` of the fragment) and from B's side; the kernel is right only if they agree.
int a_real_k(int row, int kk) {
  const int lane = (row % 8) * 4 + (kk % 8) / 2;
  const int r = (row >= 8 ? 1 : 0) + (kk >= 8 ? 2 : 0);
  EXPECT_EQ(wo::a_row(lane, r), row);
  EXPECT_EQ(wo::a_mma_k(lane, r), kk - kk % 2);
  return wo::a_k(lane, r) + kk % 2;
}
int b_real_k(int col, int kk) {
  const int lane = col * 4 + (kk % 8) / 2;
  const int r = kk >= 8 ? 1 : 0;
  EXPECT_EQ(wo::b_col(lane), col);
  EXPECT_EQ(wo::b_mma_k(lane, r), kk - kk % 2);
  return wo::b_k(lane, r) + kk % 2;
}

TEST(Int8WoLogic, KPermutationIsOneBijectionForAAndB) {
  std::vector<int> perm(16);
  for (int kk = 0; kk < 16; ++kk) {
    perm[kk] = a_real_k(0, kk);
    for (int row = 0; row < 16; ++row) EXPECT_EQ(a_real_k(row, kk), perm[kk]) << row << " " << kk;
    for (int col = 0; col < 8; ++col) EXPECT_EQ(b_real_k(col, kk), perm[kk]) << col << " " << kk;
  }
  EXPECT_EQ(std::set<int>(perm.begin(), perm.end()).size(), 16u);
  for (int k : perm) EXPECT_TRUE(k >= 0 && k < 16);
  // A thread's 4 real k of a row (registers r and r + 2) are one aligned float4 / i8 word.
  for (int lane = 0; lane < 32; ++lane) {
    EXPECT_EQ(wo::a_k(lane, 0) % 4, 0);
    EXPECT_EQ(wo::a_k(lane, 2), wo::a_k(lane, 0) + 2);
    EXPECT_EQ(wo::b_k(lane, 0), wo::a_k(lane, 0));
    EXPECT_EQ(wo::b_k(lane, 1), wo::b_k(lane, 0) + 2);
  }
}

TEST(Int8WoLogic, SplitChoice) {
  // Decode on an H200: 64 (N = 4096) or 224 (N = 14336) tiles of 64 columns, ~4 CTAs per SM.
  EXPECT_EQ(wo::splits(1, 4096, 14336, kH200Sms), 9);
  EXPECT_EQ(wo::splits(16, 4096, 14336, kH200Sms), 9);
  EXPECT_EQ(wo::splits(1, 14336, 4096, kH200Sms), 3);
  EXPECT_EQ(wo::splits(16, 14336, 4096, kH200Sms), 3);
  // Prefill: enough tiles, or partials too large for the weights they save.
  EXPECT_EQ(wo::splits(4096, 4096, 4096, kH200Sms), 1);
  EXPECT_EQ(wo::splits(256, 14336, 4096, kH200Sms), 1);
  EXPECT_EQ(wo::splits(256, 4096, 14336, kH200Sms), 1);
  EXPECT_EQ(wo::splits(1, 1, 64, kH200Sms), 1);  // fewer than 8 K stages
  EXPECT_EQ(wo::workspace_floats(1, 4096, 14336, kH200Sms), 9 * 4096);
  EXPECT_EQ(wo::workspace_floats(4096, 4096, 4096, kH200Sms), 0);
  for (int64_t m : {1, 5, 16, 17, 64, 300}) {
    for (int64_t n : {1, 64, 100, 4096, 14336}) {
      for (int64_t k : {16, 512, 4096, 14336}) {
        for (int sms : {1, 80, 132}) {
          const int s = wo::splits(m, n, k, sms);
          ASSERT_GE(s, 1);
          ASSERT_LE(s, 32);
          const int64_t kt = wo::ceil_div(k, wo::kBK);
          if (s == 1) continue;
          ASSERT_LE(s * m * n * 4 * 8, n * k) << m << " " << n << " " << k;  // partial bytes
          for (int z = 0; z < s; ++z) {
            ASSERT_GE(wo::split_begin(kt, z + 1, s) - wo::split_begin(kt, z, s), 4);
          }
          ASSERT_EQ(wo::split_begin(kt, 0, s), 0);
          ASSERT_EQ(wo::split_begin(kt, s, s), kt);
        }
      }
    }
  }
}

// Counts, for every (m, n, k), how often the kernel's enumeration multiplies x[m, k] by w[n, k]
// (loads past M, N or K are zero, so they are not counted).
template <int kBM>
std::vector<int> count_dots(int64_t M, int64_t N, int64_t K, int sms) {
  using S = wo::Shape<kBM>;
  std::vector<int> count(M * N * K, 0);
  const int splits = wo::splits(M, N, K, sms);
  const int64_t k_tiles = wo::ceil_div(K, wo::kBK);
  for (int64_t by = 0; by < wo::ceil_div(M, kBM); ++by) {
    for (int64_t bx = 0; bx < wo::ceil_div(N, wo::kBN); ++bx) {
      for (int z = 0; z < splits; ++z) {
        for (int64_t kt = wo::split_begin(k_tiles, z, splits);
             kt < wo::split_begin(k_tiles, z + 1, splits); ++kt) {
          for (int warp = 0; warp < 4; ++warp) {
            for (int mi = 0; mi < S::kMF; ++mi) {
              for (int ni = 0; ni < S::kNF; ++ni) {
                for (int lane = 0; lane < 32; ++lane) {
                  for (int r = 0; r < 4; ++r) {
                    const int64_t m = by * kBM + wo::out_row<S>(warp, mi, lane, r);
                    const int64_t n = bx * wo::kBN + wo::out_col<S>(warp, ni, lane, r);
                    const int row = wo::c_row(lane, r), col = wo::c_col(lane, r);
                    for (int ks = 0; ks < wo::kKSteps; ++ks) {
                      for (int kk = 0; kk < 16; ++kk) {
                        const int64_t k = kt * wo::kBK + ks * 16 + a_real_k(row, kk);
                        EXPECT_EQ(a_real_k(row, kk), b_real_k(col % 8, kk));
                        if (m < M && n < N && k < K) ++count[(m * N + n) * K + k];
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return count;
}

TEST(Int8WoLogic, EveryDotExactlyOnce) {
  struct Case {
    int64_t m, n, k;
    int sms;
  };
  // Ragged M, N and K (K % 64 == 16), with and without split-K.
  for (const Case& c : {Case{1, 70, 208, 132}, Case{13, 130, 1040, 132}, Case{16, 64, 64, 1},
                        Case{17, 65, 272, 132}, Case{70, 1, 48, 2}, Case{64, 129, 528, 1}}) {
    const int bm = wo::tile_m(c.m);
    const std::vector<int> count =
        bm == 16 ? count_dots<16>(c.m, c.n, c.k, c.sms) : count_dots<64>(c.m, c.n, c.k, c.sms);
    int64_t bad = 0;
    for (int v : count) bad += v != 1;
    EXPECT_EQ(bad, 0) << "m " << c.m << " n " << c.n << " k " << c.k << " splits "
                      << wo::splits(c.m, c.n, c.k, c.sms);
  }
  EXPECT_GT(wo::splits(13, 130, 1040, 132), 1);  // the split path is covered above
}

TEST(Int8WoLogic, StageChunksAndFragmentSlotsCoverOnce) {
  std::vector<int> w(wo::kBN * wo::kBK, 0);
  for (int c = 0; c < wo::kWChunks; ++c) {
    for (int b = 0; b < 16; ++b) ++w[wo::w_chunk_row(c) * wo::kBK + wo::w_chunk_k(c) + b];
  }
  for (int v : w) EXPECT_EQ(v, 1);
  for (int bm : {16, 64}) {
    std::vector<int> x(bm * wo::kBK, 0);
    for (int c = 0; c < bm * (wo::kBK / 4); ++c) {
      for (int e = 0; e < 4; ++e) ++x[wo::x_chunk_row(c) * wo::kBK + wo::x_chunk_k(c) + e];
    }
    for (int v : x) EXPECT_EQ(v, 1);
    std::set<int> xa;
    for (int s = 0; s < (bm / 16) * wo::kKSteps * 32; ++s) {
      for (int half = 0; half < 2; ++half) {
        xa.insert(wo::xa_index(wo::slot_mfrag(s), wo::slot_kstep(s), half, wo::slot_lane(s)));
      }
    }
    EXPECT_EQ(static_cast<int>(xa.size()), (bm / 16) * wo::kKSteps * 2 * 32);
    EXPECT_EQ(*xa.rbegin() + 1, static_cast<int>(xa.size()));
  }
  static_assert(wo::Shape<16>::kSmemBytes <= 48 * 1024, "no opt-in for the decode tile");
  static_assert(wo::Shape<64>::kSmemBytes <= 227 * 1024, "fits an sm_80 / sm_90 CTA");
  static_assert(wo::Shape<16>::kMF * 16 * wo::Shape<16>::kWarpsM == 16);
  static_assert(wo::Shape<64>::kNF * 8 * wo::Shape<64>::kWarpsN == wo::kBN);
}

// Shared loads of one warp: B words (32 lanes x 4 bytes) hit 32 distinct banks; x float4 loads
// of the stage split (per quarter warp, 8 lanes x 16 bytes) hit 8 distinct bank quads.
TEST(Int8WoLogic, SharedLoadsAreConflictFree) {
  for (int base_row : {0, 8, 16, 56}) {
    for (int ks = 0; ks < wo::kKSteps; ++ks) {
      std::set<int> banks;
      for (int lane = 0; lane < 32; ++lane) {
        const int byte = (base_row + wo::b_col(lane)) * wo::kWPitch + ks * 16 + wo::b_k(lane, 0);
        banks.insert((byte / 4) % 32);
      }
      EXPECT_EQ(banks.size(), 32u);
    }
  }
  for (int half = 0; half < 2; ++half) {
    for (int quarter = 0; quarter < 4; ++quarter) {
      std::set<int> quads;
      for (int lane = quarter * 8; lane < quarter * 8 + 8; ++lane) {
        const int word = wo::a_row(lane, half) * wo::kXPitch + wo::a_k(lane, 0);
        quads.insert((word % 32) / 4);
      }
      EXPECT_EQ(quads.size(), 8u);
    }
  }
}

TEST(Int8WoLogic, I8ToBf16IsExact) {
  for (uint32_t v = 0; v < 256; ++v) {
    for (int pos = 0; pos < 4; ++pos) {
      const uint32_t word = (v << (8 * pos)) | (0x5au << (8 * ((pos + 1) % 4)));
      uint32_t b0, b1;
      wo::i8x4_to_bf16x2(word, b0, b1);
      const uint32_t pair = pos < 2 ? b0 : b1;
      const auto bits = static_cast<kernels::bf16_bits>(pair >> (16 * (pos % 2)));
      EXPECT_EQ(kernels::bf16_to_f32(bits), static_cast<float>(static_cast<int8_t>(v)))
          << v << " at byte " << pos;
    }
  }
}

float bf16_round(float v) { return kernels::bf16_to_f32(kernels::f32_to_bf16(v)); }

// The kernel's arithmetic on the host, in its enumeration order: per output, per split, per K
// stage and k16 step, acc += (sum of 16 hi products) then acc += (sum of 16 lo products), each
// sum in f32 in the mma's k order (a sequential model of one mma's f32 accumulation); split
// partials summed in split order; one multiply by w_scale.
std::vector<float> mirror(const std::vector<float>& x, const std::vector<int8_t>& w,
                          const std::vector<float>& scale, int64_t M, int64_t N, int64_t K,
                          int sms) {
  std::vector<float> hi(x.size()), lo(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    hi[i] = bf16_round(x[i]);
    lo[i] = bf16_round(x[i] - hi[i]);
  }
  std::vector<int> perm(16);
  for (int kk = 0; kk < 16; ++kk) perm[kk] = a_real_k(0, kk);
  auto weight = [&](int64_t n, int64_t k) {  // through the device conversion
    const uint32_t word = static_cast<uint8_t>(w[n * K + k]);
    uint32_t b0, b1;
    wo::i8x4_to_bf16x2(word, b0, b1);
    return kernels::bf16_to_f32(static_cast<kernels::bf16_bits>(b0 & 0xffff));
  };
  std::vector<float> wf(w.size());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) wf[n * K + k] = weight(n, k);
  }
  const int splits = wo::splits(M, N, K, sms);
  const int64_t k_tiles = wo::ceil_div(K, wo::kBK);
  std::vector<float> out(M * N);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      float total = 0.0f;
      for (int z = 0; z < splits; ++z) {
        float acc = 0.0f;
        for (int64_t kt = wo::split_begin(k_tiles, z, splits);
             kt < wo::split_begin(k_tiles, z + 1, splits); ++kt) {
          for (int64_t k16 = kt * wo::kBK; k16 < (kt + 1) * wo::kBK && k16 < K; k16 += 16) {
            float sh = 0.0f, sl = 0.0f;
            for (int kk = 0; kk < 16; ++kk) {
              const int64_t k = k16 + perm[kk];
              sh += hi[m * K + k] * wf[n * K + k];
              sl += lo[m * K + k] * wf[n * K + k];
            }
            acc += sh;
            acc += sl;
          }
        }
        total = z == 0 ? acc : total + acc;
      }
      out[m * N + n] = total * scale[n];
    }
  }
  return out;
}

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  double e = 0, d = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    e += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    d += double(want[i]) * want[i];
  }
  return e / d;
}

// NMSE of the mirror against the f64 reference on random data (x uniform in [-1, 1] with a zero
// row and a row of 40x outliers as in tests/ops, any i8 weights, positive scales); also the NMSE
// of x in bf16 alone (no lo term), to show what the lo MMA buys. The registry holds the op to
// NMSE 5e-4; the split keeps it near f32 summation error.
TEST(Int8WoLogic, MirrorMatchesReference) {
  struct Case {
    int64_t m, n, k;
  };
  double worst = 0.0;
  for (const Case& c :
       {Case{1, 256, 14336}, Case{7, 192, 4096}, Case{16, 130, 4096}, Case{40, 70, 1040}}) {
    std::mt19937 rng(static_cast<uint32_t>(c.m * 7919 + c.n * 31 + c.k));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(c.m * c.k), scale(c.n);
    std::vector<int8_t> w(c.n * c.k);
    for (float& v : x) v = u(rng);
    if (c.m > 1) std::fill(x.begin() + c.k, x.begin() + 2 * c.k, 0.0f);
    for (int64_t k = 0; k < c.k; k += 37) x[(c.m > 2 ? 2 : 0) * c.k + k] *= 40.0f;
    for (int8_t& v : w) v = static_cast<int8_t>(rng() & 0xff);
    for (float& v : scale) v = 0.01f * (0.5f + 0.5f * std::fabs(u(rng)));
    std::vector<float> want(c.m * c.n);
    kernels::Int8MatmulArgs a;
    a.x = x.data();
    a.x_stride = c.k;
    a.w = w.data();
    a.w_stride = c.k;
    a.w_scale = scale.data();
    a.out = want.data();
    a.out_stride = c.n;
    a.m = c.m;
    a.n = c.n;
    a.k = c.k;
    kernels::ref::matmul_int8_weight_only(a);
    const std::vector<float> got = mirror(x, w, scale, c.m, c.n, c.k, kH200Sms);
    const double e = nmse(got, want);
    std::vector<float> hi_only(c.m * c.n), f32_sum(c.m * c.n);
    for (int64_t m = 0; m < c.m; ++m) {
      for (int64_t n = 0; n < c.n; ++n) {
        double s = 0;
        float f = 0.0f;
        for (int64_t k = 0; k < c.k; ++k) {
          s += double(bf16_round(x[m * c.k + k])) * w[n * c.k + k];
          f += x[m * c.k + k] * static_cast<float>(w[n * c.k + k]);
        }
        hi_only[m * c.n + n] = static_cast<float>(s * scale[n]);
        f32_sum[m * c.n + n] = f * scale[n];
      }
    }
    std::printf(
        "weight-only mma mirror m=%ld n=%ld k=%ld splits=%d: NMSE %.3g (sequential f32 sum %.3g, "
        "bf16 x alone %.3g)\n",
        static_cast<long>(c.m), static_cast<long>(c.n), static_cast<long>(c.k),
        wo::splits(c.m, c.n, c.k, kH200Sms), e, nmse(f32_sum, want), nmse(hi_only, want));
    EXPECT_LT(e, 1e-9);
    worst = std::max(worst, e);
  }
  EXPECT_GT(worst, 0.0);  // the mirror is not the reference
}

}  // namespace
}  // namespace tessera
