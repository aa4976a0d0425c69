// Host tests of the CUDA MoE kernels' shared logic (kernels/cuda/moe/moe_logic.h, compiled here
// as plain C++): the router's warp algorithm emulated lane by lane (butterfly reductions as the
// shuffles do them) against kernels/ref/moe.cc, the expert grouping / row-tile map of the
// grouped GEMM against a stable counting sort, and the uniform-pitch test of CUDA copies.
// Invariant: the emulation calls the same lane functions in the same order as moe_route.cu.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/memory/row_pitch.h"
#include "kernels/cuda/moe/moe_logic.h"
#include "kernels/ref/moe.h"

namespace tessera::kernels::cuda::moe {
namespace {

constexpr int kL = kLanes;

// Butterfly over 32 lanes, as __shfl_xor_sync with offsets 16..1; returns every lane's result.
template <typename T, typename Op>
std::array<T, kL> butterfly(std::array<T, kL> v, Op op) {
  for (int o = 16; o > 0; o >>= 1) {
    std::array<T, kL> next = v;
    for (int l = 0; l < kL; ++l) next[l] = op(v[l], v[l ^ o]);
    v = next;
  }
  return v;
}

// One warp-wide argmax step: every lane's candidate, reduced, the winner marked taken.
int warp_select(const float* values, int count, std::array<uint32_t, kL>& masks) {
  std::array<Candidate, kL> c;
  for (int l = 0; l < kL; ++l) c[l] = lane_best(l, values, count, masks[l]);
  c = butterfly(c, [](Candidate a, Candidate b) { return pick(a, b); });
  for (int l = 1; l < kL; ++l) EXPECT_EQ(c[l].i, c[0].i) << "lanes disagree";
  for (int l = 0; l < kL; ++l) mark_taken(l, c[0].i, &masks[l]);
  return c[0].i;
}

// moe_route.cu's route_kernel for one token, lane by lane.
void emulate_route(const float* logits, const float* bias, const RouteParams& p, int32_t* ids,
                   float* weights) {
  const int e_count = p.num_experts;
  std::vector<float> score(e_count), choice(e_count), gscore(p.n_group);
  std::vector<uint8_t> kept(p.n_group);
  if (p.sigmoid) {
    for (int l = 0; l < kL; ++l)
      lane_sigmoid_scores(l, logits, bias, e_count, score.data(), choice.data());
  } else {
    std::array<float, kL> m;
    for (int l = 0; l < kL; ++l) m[l] = lane_max_logit(l, logits, e_count);
    m = butterfly(m, [](float a, float b) { return fmaxf(a, b); });
    std::array<double, kL> s;
    for (int l = 0; l < kL; ++l) s[l] = lane_exp_sum(l, logits, e_count, m[0]);
    s = butterfly(s, [](double a, double b) { return a + b; });
    for (int l = 0; l < kL; ++l) {
      lane_softmax_scores(l, logits, e_count, m[l], s[l], score.data(), choice.data());
    }
  }
  if (p.n_group > 1) {
    for (int l = 0; l < kL; ++l) lane_group_scores(l, choice.data(), p, gscore.data());
    std::array<uint32_t, kL> kept_mask{};
    for (int k = 0; k < p.topk_group; ++k) warp_select(gscore.data(), p.n_group, kept_mask);
    for (int g = 0; g < p.n_group; ++g) kept[g] = (kept_mask[g % kL] >> (g / kL)) & 1u;
    for (int l = 0; l < kL; ++l) lane_mask_dropped(l, p, kept.data(), choice.data());
  }
  std::array<uint32_t, kL> taken{};
  for (int k = 0; k < p.top_k; ++k) ids[k] = warp_select(choice.data(), e_count, taken);
  finish_weights(p, score.data(), ids, weights, 1);
}

struct RouteCase {
  bool sigmoid;
  int experts, top_k, n_group, topk_group;
  bool norm, bias;
  float scaling;
};

void check_route(const RouteCase& rc, int tokens, uint32_t seed, bool ties) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  RouteParams p{rc.sigmoid, rc.experts, rc.top_k, rc.n_group, rc.topk_group, rc.norm, rc.scaling};
  MoeRouteSpec spec{rc.sigmoid,    rc.experts, rc.top_k,  rc.n_group,
                    rc.topk_group, rc.norm,    rc.scaling};
  std::vector<float> bias(rc.experts);
  for (float& b : bias) b = ties ? 0.25f : normal(rng) / 6.0f;
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> logits(rc.experts);
    for (int e = 0; e < rc.experts; ++e) {
      logits[e] = ties ? static_cast<float>((e * 7 + t) % 3) - 1.0f : normal(rng);
    }
    if (!rc.sigmoid && t % 5 == 4) logits[t % rc.experts] = 200.0f;  // others underflow to 0
    const float* b = rc.bias ? bias.data() : nullptr;
    std::vector<int32_t> want_ids(rc.top_k), got_ids(rc.top_k);
    std::vector<float> want_w(rc.top_k), got_w(rc.top_k);
    ref::moe_route_token(logits.data(), b, spec, want_ids.data(), want_w.data());
    emulate_route(logits.data(), b, p, got_ids.data(), got_w.data());
    EXPECT_EQ(got_ids, want_ids) << "E=" << rc.experts << " top_k=" << rc.top_k << " token " << t;
    for (int k = 0; k < rc.top_k; ++k) {
      EXPECT_NEAR(got_w[k], want_w[k], 1e-6f * std::max(1.0f, std::fabs(want_w[k])))
          << "E=" << rc.experts << " slot " << k << " token " << t;
    }
  }
}

const RouteCase kRouteCases[] = {
    {true, 256, 8, 8, 4, true, true, 2.5f},      // DeepSeek-V3
    {false, 64, 6, 1, 1, false, false, 1.0f},    // DeepSeek-V2-Lite
    {false, 160, 6, 8, 3, false, false, 16.0f},  // DeepSeek-V2 group-limited
    {false, 8, 2, 1, 1, true, false, 1.0f},      // Mixtral
    {true, 384, 8, 1, 1, true, true, 2.827f},    // Kimi-K2-like: no groups
    {true, 16, 2, 4, 2, true, true, 2.5f},
    {true, 64, 8, 4, 2, false, true, 1.0f},
    {true, 16, 4, 1, 1, true, false, 1.0f},
    {false, 32, 6, 8, 3, false, false, 16.0f},
    {false, 1024, 16, 64, 40, true, false, 1.0f},  // the largest E; groups past 32 lanes
    {true, 1024, 8, 64, 8, true, true, 1.0f},
    {false, 7, 7, 1, 1, true, false, 1.0f},  // top_k == E, E < 32 lanes
};

TEST(MoeCudaLogic, RouteMatchesReference) {
  uint32_t seed = 1;
  for (const RouteCase& rc : kRouteCases) check_route(rc, 40, seed++, false);
}

TEST(MoeCudaLogic, RouteTiesPickTheLowerIndexLikeTheReference) {
  uint32_t seed = 100;
  for (const RouteCase& rc : kRouteCases) check_route(rc, 12, seed++, true);
}

TEST(MoeCudaLogic, SelectionOrder) {
  EXPECT_TRUE(better({1.0f, 5}, {0.5f, 1}));
  EXPECT_TRUE(better({1.0f, 1}, {1.0f, 5}));  // tie: lower index
  EXPECT_FALSE(better({1.0f, 5}, {1.0f, 1}));
  EXPECT_TRUE(better({-INFINITY, 3}, {0.0f, -1}));  // anything beats "none"
  EXPECT_FALSE(better({0.0f, -1}, {-INFINITY, 3}));
  EXPECT_TRUE(better({-INFINITY, 2}, {-INFINITY, 3}));
  EXPECT_EQ(pick({2.0f, 4}, {2.0f, 3}).i, 3);
  EXPECT_EQ(pick({2.0f, 3}, {2.0f, 4}).i, 3);
}

// ---- grouping and tiles

// moe_grouped_gemm.cu's count / scan / permute kernels on the host.
struct Grouping {
  std::vector<int32_t> counts, offsets, tile_offsets, sorted;
};
Grouping emulate_grouping(const std::vector<int32_t>& ids, int64_t e_count, int64_t tile_rows) {
  Grouping g;
  g.counts.assign(e_count, 0);
  for (int32_t id : ids) {
    if (valid_expert(id, e_count)) ++g.counts[id];
  }
  g.offsets.resize(e_count + 1);
  g.tile_offsets.resize(e_count + 1);
  scan_offsets(g.counts.data(), e_count, tile_rows, g.offsets.data(), g.tile_offsets.data());
  g.sorted.assign(g.offsets[e_count], -1);
  for (int64_t e = 0; e < e_count; ++e) {  // one CTA per expert, pairs in order
    int32_t next = g.offsets[e];
    for (int64_t p = 0; p < static_cast<int64_t>(ids.size()); ++p) {
      if (ids[p] == e) g.sorted[next++] = static_cast<int32_t>(p);
    }
    EXPECT_EQ(next, g.offsets[e + 1]);
  }
  return g;
}

TEST(MoeCudaLogic, GroupingAndTilesCoverEveryPairOnce) {
  std::mt19937 rng(7);
  struct Shape {
    int64_t tokens, top_k, experts, tile_rows;
  };
  const Shape shapes[] = {{1, 8, 256, 32},  {16, 8, 256, 32}, {256, 8, 256, 32},
                          {256, 6, 64, 32}, {33, 4, 8, 7},    {7, 2, 4, 1},
                          {1, 1, 1, 32},    {100, 8, 3, 16},  {5, 3, 1000, 32}};
  for (const Shape& s : shapes) {
    const int64_t pairs = s.tokens * s.top_k;
    std::vector<int32_t> ids(pairs);
    std::uniform_int_distribution<int32_t> pick_e(0, static_cast<int32_t>(s.experts) - 1);
    for (int32_t& id : ids) id = pick_e(rng);
    if (pairs > 3) {  // device ids may be out of range: they are skipped
      ids[1] = -1;
      ids[2] = static_cast<int32_t>(s.experts);
    }
    const Grouping g = emulate_grouping(ids, s.experts, s.tile_rows);

    // The sorted list equals a stable counting sort by expert (the CPU backend's order).
    std::vector<int32_t> want;
    for (int64_t e = 0; e < s.experts; ++e) {
      for (int64_t p = 0; p < pairs; ++p) {
        if (ids[p] == e) want.push_back(static_cast<int32_t>(p));
      }
    }
    EXPECT_EQ(g.sorted, want);

    const int64_t total = g.tile_offsets[s.experts];
    EXPECT_LE(total, max_row_tiles(pairs, s.experts, s.tile_rows));
    std::vector<int> covered(g.sorted.size(), 0);
    for (int64_t tile = 0; tile < total; ++tile) {
      const TileRows tr =
          tile_rows_of(g.offsets.data(), g.tile_offsets.data(), s.experts, tile, s.tile_rows);
      ASSERT_GE(tr.expert, 0);
      ASSERT_LT(tr.expert, s.experts);
      EXPECT_GT(g.counts[tr.expert], 0) << "a tile of an empty expert";
      EXPECT_GE(tr.count, 1);
      EXPECT_LE(tr.count, s.tile_rows);
      for (int64_t r = tr.begin; r < tr.begin + tr.count; ++r) {
        ++covered[r];
        EXPECT_EQ(ids[g.sorted[r]], tr.expert);
      }
    }
    for (int c : covered) EXPECT_EQ(c, 1);
  }
}

TEST(MoeCudaLogic, TileExpertSkipsEmptyExperts) {
  const int32_t tile_offsets[] = {0, 0, 2, 2, 2, 5, 5};  // experts 0, 2, 3, 5 empty
  const int64_t want[] = {1, 1, 4, 4, 4};
  for (int64_t tile = 0; tile < 5; ++tile) {
    EXPECT_EQ(tile_expert(tile_offsets, 6, tile), want[tile]) << "tile " << tile;
  }
  EXPECT_EQ(max_row_tiles(1, 256, 32), 1);
  EXPECT_EQ(max_row_tiles(2048, 256, 32), 64 + 256);
  EXPECT_EQ(row_tiles(0, 32), 0);
  EXPECT_EQ(row_tiles(33, 32), 2);
}

// ---- copies: uniform_row_pitch against the row offsets walked one by one

TEST(CudaMemoryLogic, UniformPitchMatchesBruteForce) {
  std::mt19937 rng(11);
  int uniform = 0, irregular = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const int outer = static_cast<int>(rng() % 4);  // 0..3 outer dims
    const int64_t row_bytes = 1 + rng() % 24;
    int64_t shape[3], stride[3];
    for (int d = 0; d < outer; ++d) shape[d] = 1 + rng() % 4;
    // Build strides inner to outer: mostly packed or padded, sometimes arbitrary.
    int64_t inner = row_bytes;
    for (int d = outer - 1; d >= 0; --d) {
      const int kind = static_cast<int>(rng() % 4);
      stride[d] = kind == 0 ? inner : kind == 1 ? inner + rng() % 8 : 1 + rng() % 64;
      inner = stride[d] * shape[d];
    }
    int64_t rows = 1;
    for (int d = 0; d < outer; ++d) rows *= shape[d];
    bool want = true;
    int64_t want_pitch = -1;
    for (int64_t r = 0; r < rows; ++r) {
      int64_t off = 0, rem = r;
      for (int d = outer - 1; d >= 0; --d) {
        off += (rem % shape[d]) * stride[d];
        rem /= shape[d];
      }
      if (r == 1) want_pitch = off;
      if (r > 0 && off != r * want_pitch) want = false;
    }
    if (rows == 1) want_pitch = row_bytes;
    if (want_pitch < row_bytes) want = false;
    int64_t pitch = -1;
    const bool got = uniform_row_pitch(outer, shape, stride, row_bytes, &pitch);
    ASSERT_EQ(got, want) << "trial " << trial;
    if (got) {
      EXPECT_EQ(pitch, want_pitch);
      ++uniform;
    } else {
      ++irregular;
    }
  }
  EXPECT_GT(uniform, 100);
  EXPECT_GT(irregular, 100);
}

}  // namespace
}  // namespace tessera::kernels::cuda::moe
