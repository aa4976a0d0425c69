// Host tests of the sm_90a wgmma FP8 GEMM's layout logic (kernels/cuda/gemm/wgmma_logic.h): the
// shared-memory matrix descriptor against the PTX ISA bit layout, the 128B swizzle (TMA writes,
// wgmma descriptor reads), the m64nNk32 accumulator fragment, the mbarrier ring parities, the
// CTA order, and a host mirror of the whole kernel against the block-scaled formula.
// Invariant: needs no GPU and no CUDA headers; the header under test is the kernel's own.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "kernels/cuda/gemm/fp8_block_logic.h"
#include "kernels/cuda/gemm/wgmma_logic.h"

namespace tessera {
namespace {

namespace fp8 = kernels::cuda::fp8;
namespace wg = kernels::cuda::wgmma;

uint64_t bits(uint64_t v, int lo, int width) { return (v >> lo) & ((uint64_t{1} << width) - 1); }

TEST(CudaWgmmaLogic, DescriptorFieldsFollowThePtxBitLayout) {
  const wg::SwizzleMode modes[] = {wg::kSwizzleNone, wg::kSwizzle128B, wg::kSwizzle64B,
                                   wg::kSwizzle32B};
  for (uint32_t addr : {0u, 16u, 0x400u, 0x8000u, 0x1fff0u, 0x3fff0u, 0x12345670u}) {
    for (uint32_t lbo : {0u, 16u, 128u, 2048u}) {
      for (uint32_t sbo : {16u, 1024u, 8192u}) {
        for (wg::SwizzleMode m : modes) {
          const uint64_t d = wg::make_smem_desc(addr, lbo, sbo, m);
          EXPECT_EQ(bits(d, 0, 14), (addr & 0x3ffffu) >> 4);  // start address
          EXPECT_EQ(bits(d, 14, 2), 0u);
          EXPECT_EQ(bits(d, 16, 14), (lbo & 0x3ffffu) >> 4);  // leading-dimension byte offset
          EXPECT_EQ(bits(d, 30, 2), 0u);
          EXPECT_EQ(bits(d, 32, 14), (sbo & 0x3ffffu) >> 4);  // stride-dimension byte offset
          EXPECT_EQ(bits(d, 46, 3), 0u);
          EXPECT_EQ(bits(d, 49, 3), 0u);  // base offset: atoms are 1024-byte aligned
          EXPECT_EQ(bits(d, 52, 10), 0u);
          EXPECT_EQ(bits(d, 62, 2), static_cast<uint64_t>(m));
        }
      }
    }
  }
  // The PTX swizzle-mode values: 0 none, 1 128B, 2 64B, 3 32B.
  EXPECT_EQ(wg::kSwizzle128B, 1u);
  EXPECT_EQ(wg::kSwizzle64B, 2u);
  EXPECT_EQ(wg::kSwizzle32B, 3u);
  // The kernel's operand descriptor: 128B swizzle, SBO 1024 (one 8-row atom), LBO 16 (unused).
  EXPECT_EQ(wg::kmajor_sw128_desc(0x8020u),
            (uint64_t{0x802}) | (uint64_t{1} << 16) | (uint64_t{64} << 32) | (uint64_t{1} << 62));
}

TEST(CudaWgmmaLogic, Swizzle128IsABijectionWithinEachAtom) {
  for (uint32_t atom = 0; atom < 4; ++atom) {
    std::set<uint32_t> seen;
    for (uint32_t o = 0; o < wg::kAtomBytes; ++o) {
      const uint32_t off = atom * wg::kAtomBytes + o;
      const uint32_t p = wg::swizzle128(off);
      EXPECT_EQ(p / wg::kAtomBytes, atom);  // stays in its atom
      EXPECT_EQ(p & 0x38fu, off & 0x38fu);  // byte-in-chunk and row bits unchanged
      EXPECT_EQ(wg::swizzle128(p), off);    // an involution
      seen.insert(p);
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(wg::kAtomBytes));
  }
  // Row r of an atom moves its 16-byte chunk c to chunk c ^ r.
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 8; ++c) {
      EXPECT_EQ(wg::tile_offset(r, 16 * c), static_cast<uint32_t>(r * 128 + 16 * (c ^ r)));
    }
  }
}

// wgmma's descriptor reads (start = slab base + 32 k_step) land on the byte TMA wrote for the
// same (row, k), for the A slabs of both consumer warpgroups and the 128-row B tile, and no two
// (row, k) of one step share a byte.
TEST(CudaWgmmaLogic, DescriptorReadsMatchTheTmaSwizzledTile) {
  for (int kk = 0; kk < wg::kKSteps; ++kk) {
    for (int slab = 0; slab < 3; ++slab) {  // A rows 0-63, A rows 64-127, B rows 0-127
      const int rows = slab == 2 ? wg::kBN : wg::kWgRows;
      const int row0 = slab == 1 ? wg::kWgRows : 0;
      const uint32_t start = (slab == 1 ? wg::kWgRows * wg::kBK : 0) + 32u * kk;
      EXPECT_EQ(start % wg::kAtomBytes, 32u * kk);  // base offset field 0 is valid
      std::set<uint32_t> seen;
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < 32; ++j) {
          const uint32_t got = wg::desc_read_offset(start, wg::kAtomBytes, r, j);
          EXPECT_EQ(got, wg::tile_offset(row0 + r, 32 * kk + j)) << kk << " " << r << " " << j;
          seen.insert(got);
        }
      }
      EXPECT_EQ(seen.size(), static_cast<size_t>(rows * 32));
    }
  }
}

TEST(CudaWgmmaLogic, AccumulatorFragmentCoversEachOutputOnce) {
  for (int n = 8; n <= 256; n += 8) {
    std::vector<int> hits(64 * n, 0);
    for (int warp = 0; warp < 4; ++warp) {
      for (int lane = 0; lane < 32; ++lane) {
        const int r0 = wg::acc_row(warp, lane, 0), r1 = wg::acc_row(warp, lane, 2);
        EXPECT_EQ(r1, r0 + 8);
        EXPECT_GE(r0, 16 * warp);
        EXPECT_LT(r1, 16 * warp + 16);  // a warp owns 16 rows
        for (int i = 0; i < n / 2; ++i) {
          const int r = wg::acc_row(warp, lane, i), c = wg::acc_col(lane, i);
          ASSERT_TRUE(r >= 0 && r < 64 && c >= 0 && c < n) << r << " " << c;
          EXPECT_EQ(r, ((i >> 1) & 1) ? r1 : r0);  // the kernel's two scale rows
          if (i % 2 == 0) {                        // epilogue pairs: (c, c + 1) on one row
            EXPECT_EQ(wg::acc_col(lane, i + 1), c + 1);
            EXPECT_EQ(wg::acc_row(warp, lane, i + 1), r);
            EXPECT_EQ(c % 2, 0);
          }
          ++hits[r * n + c];
        }
      }
    }
    for (int h : hits) ASSERT_EQ(h, 1) << "n = " << n;
  }
}

// A host model of mbarrier phases: try_wait.parity(P) passes once the phase of parity P has
// completed, i.e. when the current phase's parity differs from P.
struct Barrier {
  int count, pending, phase = 0;
  explicit Barrier(int c) : count(c), pending(c) {}
  bool ready(uint32_t parity) const { return static_cast<uint32_t>(phase & 1) != parity; }
  void arrive() {
    if (--pending == 0) {
      ++phase;
      pending = count;
    }
  }
};

TEST(CudaWgmmaLogic, PipelineParitiesNeverOverrunTheRing) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t groups = 1 + rng() % 40;
    std::vector<Barrier> full(wg::kStages, Barrier(1)), empty(wg::kStages, Barrier(wg::kConsumers));
    std::vector<int64_t> slot(wg::kStages, -1);  // group held by a stage, -1 when free
    std::vector<int> reads(wg::kStages, 0);      // consumers done with the held group
    int64_t p = 0;
    std::vector<int64_t> c(wg::kConsumers, 0);
    int steps = 0;
    while (p < groups || c[0] < groups || c[1] < groups) {
      ASSERT_LT(++steps, 100000) << "deadlock";
      const int who = rng() % (1 + wg::kConsumers);
      if (who == 0 && p < groups) {
        const int s = wg::stage_of(p);
        if (!empty[s].ready(wg::empty_parity(p))) continue;
        ASSERT_EQ(slot[s], -1) << "producer overwrote an unread stage";
        slot[s] = p;
        reads[s] = 0;
        full[s].arrive();  // expect_tx + the TMA bytes complete the phase
        ++p;
      } else if (who > 0 && c[who - 1] < groups) {
        int64_t& i = c[who - 1];
        const int s = wg::stage_of(i);
        if (!full[s].ready(wg::full_parity(i))) continue;
        ASSERT_EQ(slot[s], i) << "consumer read the wrong group";
        if (++reads[s] == wg::kConsumers) slot[s] = -1;
        empty[s].arrive();
        ++i;
      }
    }
  }
}

TEST(CudaWgmmaLogic, TileOrderIsABijection) {
  for (int64_t tm_count : {1, 3, 8, 9, 17, 32}) {
    for (int64_t tn_count : {1, 5, 56}) {
      std::set<std::pair<int64_t, int64_t>> seen;
      for (int64_t b = 0; b < tm_count * tn_count; ++b) {
        int64_t tm, tn;
        wg::tile_of(b, tm_count, tn_count, &tm, &tn);
        ASSERT_TRUE(tm >= 0 && tm < tm_count && tn >= 0 && tn < tn_count);
        seen.insert({tm, tn});
      }
      EXPECT_EQ(seen.size(), static_cast<size_t>(tm_count * tn_count));
    }
  }
}

TEST(CudaWgmmaLogic, ShapeFitsOnlyWholeGroupsAndAlignedRows) {
  EXPECT_TRUE(wg::shape_fits(4096, 7168, 7168, 7168, 7168, 0x1000, 0x2000));
  EXPECT_TRUE(wg::shape_fits(64, 1, 128, 128, 128, 0, 0));
  EXPECT_FALSE(wg::shape_fits(63, 128, 128, 128, 128, 0, 0));       // M < 64: mma.sync decode
  EXPECT_FALSE(wg::shape_fits(128, 128, 129, 256, 256, 0, 0));      // K tail
  EXPECT_FALSE(wg::shape_fits(128, 128, 128, 128, 136 + 1, 0, 0));  // unaligned weight rows
  EXPECT_FALSE(wg::shape_fits(128, 128, 128, 128, 128, 8, 0));      // unaligned xq
  EXPECT_FALSE(wg::shape_fits(128, 128, 128, 128, 128, 0, 4));      // unaligned w
  EXPECT_FALSE(wg::shape_fits(128, 0, 128, 128, 128, 0, 0));
  EXPECT_EQ(wg::x_scale_index(5, 3, 56), 5 * 56 + 3);
  EXPECT_EQ(wg::w_scale_index(255, 3, 56), 1 * 56 + 3);
  EXPECT_EQ(wg::w_scale_index(256, 0, 56), 2 * 56);
}

// The kernel's algorithm on the host: banded CTA order, TMA images of each K group (swizzled,
// zero rows past M / N), wgmma reads through descriptors at the fragment's (row, col), promotion
// by x_scale * w_scale per group, the bounded epilogue. Against the block-scaled formula.
TEST(CudaWgmmaLogic, MirrorOfTheKernelMatchesTheBlockScaledFormula) {
  const int64_t M = 150, N = 200, K = 384, KB = K / 128;
  std::mt19937 rng(11);
  std::vector<uint8_t> xq(M * K), w(N * K);
  auto code = [&] {  // any e4m3 code but NaN
    const uint8_t v = static_cast<uint8_t>(rng() & 0xff);
    return (v & 0x7f) == 0x7f ? uint8_t{0} : v;
  };
  for (auto& v : xq) v = code();
  for (auto& v : w) v = code();
  std::uniform_real_distribution<float> sd(0.01f, 2.0f);
  std::vector<float> xs(M * KB), ws(fp8::ceil_div(N, 128) * KB);
  for (auto& v : xs) v = sd(rng);
  for (auto& v : ws) v = sd(rng);

  std::vector<float> out(M * N, NAN);
  std::vector<int> written(M * N, 0);
  const int64_t tiles_m = fp8::ceil_div(M, wg::kBM), tiles_n = fp8::ceil_div(N, wg::kBN);
  std::vector<uint8_t> stage(wg::kStageBytes);
  for (int64_t b = 0; b < tiles_m * tiles_n; ++b) {
    int64_t tm, tn;
    wg::tile_of(b, tiles_m, tiles_n, &tm, &tn);
    const int64_t m0 = tm * wg::kBM, n0 = tn * wg::kBN;
    std::vector<float> acc(wg::kThreads * wg::kAccRegs, 0.0f);
    for (int64_t i = 0; i < K / wg::kBK; ++i) {
      for (int r = 0; r < wg::kBM; ++r) {  // TMA: A then B, zero-filled out of bounds
        for (int k = 0; k < wg::kBK; ++k) {
          stage[wg::tile_offset(r, k)] = m0 + r < M ? xq[(m0 + r) * K + i * 128 + k] : 0;
          stage[wg::kTileBytes + wg::tile_offset(r, k)] =
              n0 + r < N ? w[(n0 + r) * K + i * 128 + k] : 0;
        }
      }
      for (int t = 128; t < wg::kThreads; ++t) {
        const int cw = t / 128 - 1, warp = (t >> 5) & 3, lane = t & 31;
        const int64_t r0 = m0 + cw * 64 + wg::acc_row(warp, lane, 0);
        const int64_t r1 = m0 + cw * 64 + wg::acc_row(warp, lane, 2);
        const float sw = ws[wg::w_scale_index(n0, i, KB)];
        const float s0 = r0 < M ? xs[wg::x_scale_index(r0, i, KB)] * sw : 0.0f;
        const float s1 = r1 < M ? xs[wg::x_scale_index(r1, i, KB)] * sw : 0.0f;
        for (int j = 0; j < wg::kAccRegs; ++j) {
          const int row = wg::acc_row(warp, lane, j), col = wg::acc_col(lane, j);
          float part = 0.0f;
          for (int kk = 0; kk < wg::kKSteps; ++kk) {
            const uint32_t a0 = cw * wg::kWgRows * wg::kBK + 32 * kk;
            const uint32_t b0 = 32 * kk;
            for (int q = 0; q < 32; ++q) {
              part += fp8::e4m3_decode(stage[wg::desc_read_offset(a0, wg::kAtomBytes, row, q)]) *
                      fp8::e4m3_decode(
                          stage[wg::kTileBytes + wg::desc_read_offset(b0, wg::kAtomBytes, col, q)]);
            }
          }
          float& a = acc[t * wg::kAccRegs + j];
          a = std::fma(part, ((j >> 1) & 1) ? s1 : s0, a);
        }
      }
    }
    for (int t = 128; t < wg::kThreads; ++t) {
      const int cw = t / 128 - 1, warp = (t >> 5) & 3, lane = t & 31;
      for (int j = 0; j < wg::kAccRegs; ++j) {
        const int64_t m = m0 + cw * 64 + wg::acc_row(warp, lane, j);
        const int64_t n = n0 + wg::acc_col(lane, j);
        if (m >= M || n >= N) continue;
        out[m * N + n] = acc[t * wg::kAccRegs + j];
        ++written[m * N + n];
      }
    }
  }
  double err = 0.0, ref2 = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double want = 0.0;
      for (int64_t kb = 0; kb < KB; ++kb) {
        double s = 0.0;
        for (int64_t k = kb * 128; k < kb * 128 + 128; ++k) {
          s +=
              static_cast<double>(fp8::e4m3_decode(xq[m * K + k])) * fp8::e4m3_decode(w[n * K + k]);
        }
        want += s * xs[m * KB + kb] * ws[(n / 128) * KB + kb];
      }
      ASSERT_EQ(written[m * N + n], 1) << m << " " << n;
      err += (out[m * N + n] - want) * (out[m * N + n] - want);
      ref2 += want * want;
    }
  }
  EXPECT_LT(err / ref2, 1e-10);
}

}  // namespace
}  // namespace tessera
