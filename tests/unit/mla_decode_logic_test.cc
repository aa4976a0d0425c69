// Host tests of the MLA decode kernel's shared logic (kernels/cuda/attention/mla_decode_logic.h):
// partition ranges and key tiles, the warp / thread roles of its three phases, the split choice,
// and a host mirror of the kernel's per-CTA algorithm (partial scores per dim split, exp2 online
// softmax, Q and P split hi + lo, partials merged as paged_attention's reduction does) against
// kernels::ref::paged_attention on MLA shapes (V = first Dv values of each latent row, Hkv = 1).
// Invariant: needs no GPU and no CUDA headers; the roles under test are the kernel's own.
#include "kernels/cuda/attention/mla_decode_logic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/common/types.h"
#include "kernels/cuda/attention/flash_tile_logic.h"
#include "kernels/ref/ops.h"

namespace tessera {
namespace {

namespace mla = kernels::cuda::mla;
namespace flash = kernels::cuda::flash;

TEST(MlaDecodeLogic, SharedMemoryFitsEveryTensorCoreArch) {
  // sm_80 grants 163 KiB per block (opt-in), sm_90 227 KiB.
  EXPECT_LE(mla::kSmemBytes, 166912);
  EXPECT_EQ(mla::kSmemQ % 16, 0);
  EXPECT_EQ(mla::kSmemK % 16, 0);
  EXPECT_EQ((mla::kPitch * 2 / 16) % 2, 1);  // odd 16-byte row stride: ldmatrix conflict-free
}

TEST(MlaDecodeLogic, PartitionsAndTilesCoverEveryKeyOnce) {
  for (int64_t num_keys : {1, 31, 32, 33, 255, 256, 257, 1000, 4096}) {
    for (int64_t pk : {0, 64, 256, 512}) {
      const int64_t parts = pk > 0 ? (num_keys + pk - 1) / pk + 2 : 1;  // extra: past the keys
      std::vector<int> seen(num_keys, 0);
      for (int part = 0; part < parts; ++part) {
        int64_t b, e;
        mla::partition_range(num_keys, part, pk, &b, &e);
        ASSERT_LE(b, e);
        if (b == e) continue;
        EXPECT_EQ(b % mla::kKeys, 0);
        const int64_t tiles = (e - b + mla::kKeys - 1) / mla::kKeys;
        for (int64_t kt = 0; kt < tiles; ++kt) {
          for (int j = 0; j < mla::kKeys; ++j) {
            const int64_t key = b + kt * mla::kKeys + j;
            if (key < e) ++seen[key];
          }
        }
      }
      for (int64_t j = 0; j < num_keys; ++j) ASSERT_EQ(seen[j], 1) << num_keys << " " << pk;
    }
  }
}

TEST(MlaDecodeLogic, RolesCoverTheirWorkOnce) {
  for (int mt : {1, 2}) {
    // Phase A: (head tile, key half, dim split) <-> warp, both ways.
    std::set<std::tuple<int, int, int>> roles;
    for (int w = 0; w < mla::kWarps; ++w) {
      const mla::ScoreRole r = mla::score_role(w, mt);
      EXPECT_LT(r.mt_idx, mt);
      EXPECT_EQ(r.splits * 2 * mt, mla::kWarps);
      EXPECT_EQ(mla::score_warp(r.mt_idx, r.key_half, r.dim_split, mt), w);
      roles.insert({r.mt_idx, r.key_half, r.dim_split});
    }
    EXPECT_EQ(static_cast<int>(roles.size()), mla::kWarps);
    // Phase B: every (row, key) once; a row's threads are an aligned lane group of one warp.
    const int tpr = mla::softmax_threads_per_row(mt), kpt = mla::softmax_keys_per_thread(mt);
    EXPECT_EQ(32 % tpr, 0);
    EXPECT_EQ(16 % kpt, 0);  // a thread's keys sit in one key half
    std::vector<int> cover(16 * mt * mla::kKeys, 0);
    for (int tid = 0; tid < mla::kThreads; ++tid) {
      int row, key0;
      mla::softmax_role(tid, mt, &row, &key0);
      EXPECT_EQ(key0 == 0, tid % tpr == 0);
      for (int i = 0; i < kpt; ++i) ++cover[row * mla::kKeys + key0 + i];
    }
    for (int c : cover) EXPECT_EQ(c, 1);
    // Phase C: every (head tile, value column) once.
    std::vector<int> cols(mt * mla::kMaxVDim, 0);
    for (int w = 0; w < mla::kWarps; ++w) {
      int mi, col0;
      mla::pv_role(w, mt, &mi, &col0);
      EXPECT_EQ(col0 % 16, 0);
      for (int c = 0; c < mla::pv_width(mt); ++c) ++cols[mi * mla::kMaxVDim + col0 + c];
    }
    for (int c : cols) EXPECT_EQ(c, 1);
  }
  EXPECT_EQ(mla::m_tiles(16), 1);
  EXPECT_EQ(mla::m_tiles(128), 2);
  EXPECT_EQ(mla::head_blocks(128, 2), 4);
  EXPECT_EQ(mla::head_blocks(40, 2), 2);
}

TEST(MlaDecodeLogic, SplitFillsTheMachineWithoutShortPartitions) {
  EXPECT_EQ(mla::choose_partitions(4, 132, 32768), 66);   // V3 decode, batch 1
  EXPECT_EQ(mla::choose_partitions(4, 132, 4096), 16);    // capped: >= 256 keys each
  EXPECT_EQ(mla::choose_partitions(256, 132, 32768), 2);  // batch 64
  EXPECT_EQ(mla::choose_partitions(4096, 132, 4096), 1);
  EXPECT_EQ(mla::choose_partitions(4, 132, 10), 1);
}

// ---- Host mirror of mla_decode_kernel ----

struct MirrorCase {
  bool bf16;
  int64_t hq, d, dv, bs;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (cached, new)
  int64_t partition_keys;                         // 0: one partition
  float q_gain;
  uint32_t seed;
};

double mla_mirror_nmse(const MirrorCase& mc) {
  const bool bf16 = mc.bf16;
  auto round_t = [&](float v) {
    return bf16 ? kernels::bf16_to_f32(kernels::f32_to_bf16(v))
                : kernels::f16_to_f32(kernels::f32_to_f16(v));
  };
  auto encode_t = [&](float v) { return bf16 ? kernels::f32_to_bf16(v) : kernels::f32_to_f16(v); };
  auto dec = [&](uint16_t b) { return bf16 ? kernels::bf16_to_f32(b) : kernels::f16_to_f32(b); };
  std::mt19937 rng(mc.seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t hq = mc.hq, d = mc.d, dv = mc.dv, bs = mc.bs;
  const int64_t num_seqs = static_cast<int64_t>(mc.seqs.size());
  std::vector<int32_t> qs(1, 0), lens;
  int64_t max_blocks = 0, total_blocks = 0, max_len = 0;
  for (const auto& [cached, n] : mc.seqs) {
    qs.push_back(qs.back() + n);
    lens.push_back(cached + n);
    max_len = std::max<int64_t>(max_len, cached + n);
    max_blocks = std::max<int64_t>(max_blocks, (cached + n + bs - 1) / bs);
    total_blocks += (cached + n + bs - 1) / bs;
  }
  const int64_t T = qs.back();
  std::vector<int32_t> perm(total_blocks), table(num_seqs * max_blocks, -1);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t s = 0, next = 0; s < num_seqs; ++s) {
    for (int64_t b = 0; b < (lens[s] + bs - 1) / bs; ++b) table[s * max_blocks + b] = perm[next++];
  }
  std::vector<float> q(T * hq * d), want(T * hq * dv, 0.0f), got(T * hq * dv, NAN);
  std::vector<uint16_t> k(total_blocks * bs * d);  // [blocks, bs, 1, d]; V = first dv values
  for (float& x : q) x = u(rng) * mc.q_gain;
  for (uint16_t& x : k) x = encode_t(u(rng));
  std::vector<float> kf(k.size());
  for (size_t e = 0; e < k.size(); ++e) kf[e] = dec(k[e]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  kernels::ref::PagedAttentionArgs a{};
  a.q = q.data();
  a.q_tok = hq * d;
  a.q_head = d;
  a.k = a.v = kf.data();
  a.k_block = a.v_block = bs * d;
  a.k_slot = a.v_slot = d;
  a.k_head = a.v_head = d;
  a.kv_type = kernels::ElemType::kF32;
  a.out = want.data();
  a.o_tok = hq * dv;
  a.o_head = dv;
  a.num_seqs = num_seqs;
  a.num_q_heads = hq;
  a.num_kv_heads = 1;
  a.head_dim = d;
  a.v_head_dim = dv;
  a.block_size = bs;
  a.query_start = qs.data();
  a.seq_lens = lens.data();
  a.block_tables = table.data();
  a.bt_stride = max_blocks;
  a.scale = scale;
  kernels::ref::paged_attention(a);

  const int mt = mla::m_tiles(hq);
  const int rows = 16 * mt;
  const int64_t kd16 = (d + 15) / 16;
  const int64_t parts =
      mc.partition_keys > 0 ? (max_len + mc.partition_keys - 1) / mc.partition_keys : 1;
  const float scale_log2 = scale * 1.4426950408889634f;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t n = qs[s + 1] - qs[s];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = qs[s] + i;
      const int64_t num_keys = flash::key_limit(lens[s], n, i);
      for (int64_t z = 0; z < mla::head_blocks(hq, mt); ++z) {
        const int64_t h0 = z * rows;
        // Partials per partition: (m in natural-log units, l, acc [rows][dv]).
        std::vector<float> pm, pl;
        std::vector<std::vector<float>> pacc;
        for (int part = 0; part < parts; ++part) {
          int64_t kb, ke;
          mla::partition_range(num_keys, part, mc.partition_keys, &kb, &ke);
          if (kb >= ke) continue;
          std::vector<float> qh(rows * kd16 * 16, 0.0f), ql(qh.size(), 0.0f);
          for (int r = 0; r < rows; ++r) {
            for (int64_t e = 0; e < d; ++e) {
              const float v = h0 + r < hq ? q[t * hq * d + (h0 + r) * d + e] : 0.0f;
              qh[r * kd16 * 16 + e] = round_t(v);
              ql[r * kd16 * 16 + e] = round_t(v - round_t(v));
            }
          }
          std::vector<float> m_s(rows, -INFINITY), l_s(rows, 0.0f), alpha_s(rows, 0.0f);
          std::vector<float> o(rows * mla::kMaxVDim, 0.0f);
          for (int64_t kt0 = kb; kt0 < ke; kt0 += mla::kKeys) {
            // The staged tile: keys past the partition zero-filled, columns past d zero.
            std::vector<float> tile(mla::kKeys * kd16 * 16, 0.0f);
            for (int j = 0; j < mla::kKeys && kt0 + j < ke; ++j) {
              int64_t blk, sl;
              flash::key_block_slot(&table[s * max_blocks], kt0 + j, bs, &blk, &sl);
              for (int64_t e = 0; e < d; ++e)
                tile[j * kd16 * 16 + e] = kf[blk * bs * d + sl * d + e];
            }
            // Phase A: each warp's partial scores (16 rows x 16 keys), f32 accumulation per mma.
            std::vector<float> sp(mla::kWarps * 16 * 16, 0.0f);
            for (int w = 0; w < mla::kWarps; ++w) {
              const mla::ScoreRole r = mla::score_role(w, mt);
              for (int rr = 0; rr < 16; ++rr) {
                for (int kc = 0; kc < 16; ++kc) {
                  const int row = r.mt_idx * 16 + rr, key = r.key_half * 16 + kc;
                  float acc = 0.0f;
                  for (int64_t kk = r.dim_split; kk < kd16; kk += r.splits) {
                    double hi = 0, lo = 0;
                    for (int e = 0; e < 16; ++e) {
                      const double kv = tile[key * kd16 * 16 + kk * 16 + e];
                      hi += qh[row * kd16 * 16 + kk * 16 + e] * kv;
                      lo += ql[row * kd16 * 16 + kk * 16 + e] * kv;
                    }
                    acc = static_cast<float>(acc + hi);
                    acc = static_cast<float>(acc + lo);
                  }
                  sp[(w * 16 + rr) * 16 + kc] = acc;
                }
              }
            }
            // Phase B: per row, the softmax threads' work (order of the max is immaterial).
            std::vector<float> p(rows * mla::kKeys, 0.0f);
            const int splits = mla::kWarps / mt / 2;
            for (int row = 0; row < rows; ++row) {
              const int mi = row / 16, rr = row % 16;
              std::vector<float> sv(mla::kKeys);
              float mx = -INFINITY;
              for (int key = 0; key < mla::kKeys; ++key) {
                float acc = 0.0f;
                for (int ds = 0; ds < splits; ++ds) {
                  acc += sp[(mla::score_warp(mi, key / 16, ds, mt) * 16 + rr) * 16 + key % 16];
                }
                sv[key] = kt0 + key < ke ? acc * scale_log2 : -INFINITY;
                mx = std::max(mx, sv[key]);
              }
              const float m_new = std::max(m_s[row], mx);
              const float base = m_new == -INFINITY ? 0.0f : m_new;
              float sum = 0.0f;
              for (int key = 0; key < mla::kKeys; ++key) {
                p[row * mla::kKeys + key] = std::exp2(sv[key] - base);
                sum += p[row * mla::kKeys + key];
              }
              alpha_s[row] = std::exp2(m_s[row] - base);
              l_s[row] = l_s[row] * alpha_s[row] + sum;
              m_s[row] = m_new;
            }
            // Phase C: each warp's value columns, P = hi + lo, two 16-key mma steps.
            for (int w = 0; w < mla::kWarps; ++w) {
              int mi, col0;
              mla::pv_role(w, mt, &mi, &col0);
              for (int rr = 0; rr < 16; ++rr) {
                const int row = mi * 16 + rr;
                for (int c = col0; c < col0 + mla::pv_width(mt); ++c) {
                  if (c / 16 * 16 >= dv) break;  // the kernel's column-pair guard
                  float acc = o[row * mla::kMaxVDim + c] * alpha_s[row];
                  for (int kk = 0; kk < mla::kKeys / 16; ++kk) {
                    double hi = 0, lo = 0;
                    for (int e = 0; e < 16; ++e) {
                      const float pv = p[row * mla::kKeys + kk * 16 + e];
                      const double vv = tile[(kk * 16 + e) * kd16 * 16 + c];
                      hi += round_t(pv) * vv;
                      lo += round_t(pv - round_t(pv)) * vv;
                    }
                    acc = static_cast<float>(acc + hi);
                    acc = static_cast<float>(acc + lo);
                  }
                  o[row * mla::kMaxVDim + c] = acc;
                }
              }
            }
          }
          pacc.emplace_back(o);
          for (int row = 0; row < rows; ++row) {
            pm.push_back(m_s[row] * 0.6931471805599453f);
            pl.push_back(l_s[row]);
          }
        }
        // Merge (paged_attention's reduction; one partition: o / l directly).
        const int64_t used = static_cast<int64_t>(pacc.size());
        for (int row = 0; row < rows && h0 + row < hq; ++row) {
          float m = -INFINITY, l = 0.0f;
          for (int64_t pi = 0; pi < used; ++pi) m = std::max(m, pm[pi * rows + row]);
          for (int64_t pi = 0; pi < used; ++pi) {
            l += pl[pi * rows + row] * std::exp(pm[pi * rows + row] - m);
          }
          for (int64_t c = 0; c < dv; ++c) {
            float ov = 0.0f;
            for (int64_t pi = 0; pi < used; ++pi) {
              ov += pacc[pi][row * mla::kMaxVDim + c] * std::exp(pm[pi * rows + row] - m);
            }
            got[t * hq * dv + (h0 + row) * dv + c] =
                used == 1 ? pacc[0][row * mla::kMaxVDim + c] / pl[row] : ov / l;
          }
        }
      }
    }
  }
  double err2 = 0, ref2 = 0;
  for (size_t e = 0; e < got.size(); ++e) {
    if (std::isnan(got[e])) return INFINITY;  // a row the mirror never wrote
    err2 += (double(got[e]) - want[e]) * (double(got[e]) - want[e]);
    ref2 += double(want[e]) * want[e];
  }
  return err2 / ref2;
}

TEST(MlaDecodeLogic, MirrorOfTheKernelMatchesTheReference) {
  // V2-Lite heads (one m16 tile), decodes and a short query run over a split context; 40 heads
  // (two head blocks, the second partial) with one partition; odd latent dims (D 72, Dv 40).
  const std::vector<MirrorCase> cases = {
      {false, 16, 576, 512, 16, {{1100, 1}, {300, 3}, {40, 1}}, 256, 1.0f, 1},
      {true, 16, 576, 512, 16, {{1100, 1}, {300, 3}, {40, 1}}, 256, 1.0f, 2},
      {false, 40, 576, 512, 7, {{90, 1}, {0, 2}}, 0, 4.0f, 3},
      {true, 40, 576, 512, 7, {{90, 1}, {0, 2}}, 0, 4.0f, 4},
      {false, 20, 72, 40, 5, {{200, 1}, {33, 2}}, 64, 8.0f, 5},
  };
  for (const MirrorCase& mc : cases) {
    const double e = mla_mirror_nmse(mc);
    std::printf("mla mirror %s hq %lld d %lld dv %lld: NMSE %.2e\n", mc.bf16 ? "bf16" : "f16",
                static_cast<long long>(mc.hq), static_cast<long long>(mc.d),
                static_cast<long long>(mc.dv), e);
    EXPECT_LT(e, 1e-9) << (mc.bf16 ? "bf16" : "f16") << " hq " << mc.hq << " d " << mc.d;
  }
}

}  // namespace
}  // namespace tessera
