// Index math and selection rules of the CUDA MoE kernels, shared with their host tests: the
// routing order (score descending, expert index ascending), per-lane routing steps, group
// scores, the expert grouping (counts -> offsets -> row tiles) and the grouped GEMM's tile map.
// Invariant: plain C++ unless nvcc compiles it (TESSERA_MOE_HD is then __host__ __device__), so
// tests/unit/moe_cuda_logic_test.cc runs exactly the code the kernels run against kernels/ref.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_MOE_HD __host__ __device__ __forceinline__
#else
#define TESSERA_MOE_HD inline
#endif

namespace tessera::kernels::cuda::moe {

inline constexpr int kLanes = 32;
// The route kernel keeps each lane's taken experts / kept groups in one 32-bit mask, one bit
// per strided slot (lane + 32 * i): so at most 32 * 32 experts and groups.
inline constexpr int kMaxRouteExperts = 1024;

// Router description (mirrors backend::MoeRouteParams; kernels see no backend types).
struct RouteParams {
  bool sigmoid = false;  // false: softmax
  int num_experts = 0;
  int top_k = 1;
  int n_group = 1;     // divides num_experts
  int topk_group = 1;  // <= n_group
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
};

// A candidate of a selection: value and index (index < 0: none).
struct Candidate {
  float v;
  int i;
};

// The selection order of every top-k in the router: larger value first, the lower index on
// ties. A total order on non-NaN values, so any reduction tree picks the same winner as the
// reference's left-to-right repeated argmax. NOTE: a NaN never beats a number (the reference
// would keep a NaN that comes first); NaN logits are outside the contract.
TESSERA_MOE_HD bool better(Candidate a, Candidate b) {
  if (a.i < 0) return false;
  if (b.i < 0) return true;
  return a.v > b.v || (a.v == b.v && a.i < b.i);
}
TESSERA_MOE_HD Candidate pick(Candidate a, Candidate b) { return better(b, a) ? b : a; }

// ---- Per-lane routing steps. Lane `lane` of a warp owns experts lane, lane + 32, ... and
// groups lane, lane + 32, ...; bit i of a lane's mask stands for its i-th slot.

// Sigmoid scoring: score = f32(sigmoid(logit)) computed in double, as the reference; the
// selection value adds the bias in f32.
TESSERA_MOE_HD void lane_sigmoid_scores(int lane, const float* logits, const float* bias,
                                        int e_count, float* score, float* choice) {
  for (int e = lane; e < e_count; e += kLanes) {
    const float s = static_cast<float>(1.0 / (1.0 + exp(-static_cast<double>(logits[e]))));
    score[e] = s;
    choice[e] = bias != nullptr ? s + bias[e] : s;
  }
}

// Softmax, step 1: this lane's max logit (fmax: order-independent). Reduce over lanes with fmax.
TESSERA_MOE_HD float lane_max_logit(int lane, const float* logits, int e_count) {
  float m = -INFINITY;
  for (int e = lane; e < e_count; e += kLanes) m = fmaxf(m, logits[e]);
  return m;
}
// Step 2: this lane's part of sum(exp(logit - max)) in double. Reduce over lanes by addition.
TESSERA_MOE_HD double lane_exp_sum(int lane, const float* logits, int e_count, double max_logit) {
  double s = 0.0;
  for (int e = lane; e < e_count; e += kLanes) s += exp(static_cast<double>(logits[e]) - max_logit);
  return s;
}
// Step 3: the probabilities (rounded once to f32).
TESSERA_MOE_HD void lane_softmax_scores(int lane, const float* logits, int e_count,
                                        double max_logit, double sum, float* score, float* choice) {
  for (int e = lane; e < e_count; e += kLanes) {
    const float p = static_cast<float>(exp(static_cast<double>(logits[e]) - max_logit) / sum);
    score[e] = p;
    choice[e] = p;
  }
}

// One group's score: sigmoid, the f32 sum of its two largest selection values; softmax, the
// largest. c [per_group].
TESSERA_MOE_HD float group_score(const float* c, int per_group, bool sigmoid) {
  if (sigmoid) {
    float first = -INFINITY, second = -INFINITY;
    for (int i = 0; i < per_group; ++i) {
      if (c[i] > first) {
        second = first;
        first = c[i];
      } else if (c[i] > second) {
        second = c[i];
      }
    }
    return first + second;
  }
  float best = c[0];
  for (int i = 1; i < per_group; ++i) best = fmaxf(best, c[i]);
  return best;
}

TESSERA_MOE_HD void lane_group_scores(int lane, const float* choice, const RouteParams& p,
                                      float* gscore) {
  const int per_group = p.num_experts / p.n_group;
  for (int g = lane; g < p.n_group; g += kLanes) {
    gscore[g] = group_score(choice + g * per_group, per_group, p.sigmoid);
  }
}

// This lane's best untaken value among values[lane + 32 i] (i < count); bit i of taken_mask
// marks slot i taken.
TESSERA_MOE_HD Candidate lane_best(int lane, const float* values, int count, uint32_t taken_mask) {
  Candidate best{0.0f, -1};
  int slot = 0;
  for (int e = lane; e < count; e += kLanes, ++slot) {
    if ((taken_mask >> slot) & 1u) continue;
    best = pick(best, Candidate{values[e], e});
  }
  return best;
}

// Marks index `idx` in its owner lane's mask (call on every lane with the reduced winner).
TESSERA_MOE_HD void mark_taken(int lane, int idx, uint32_t* mask) {
  if (idx >= 0 && idx % kLanes == lane) *mask |= 1u << (idx / kLanes);
}

// Dropped groups' experts get the fill value: -inf for sigmoid scoring, 0 for softmax (see
// kernels/ref/moe.cc). kept [n_group]: 1 when the group stays.
TESSERA_MOE_HD void lane_mask_dropped(int lane, const RouteParams& p, const uint8_t* kept,
                                      float* choice) {
  const int per_group = p.num_experts / p.n_group;
  const float fill = p.sigmoid ? -INFINITY : 0.0f;
  for (int e = lane; e < p.num_experts; e += kLanes) {
    if (!kept[e / per_group]) choice[e] = fill;
  }
}

// Weights of the chosen experts, in selection order (one thread): unbiased scores, optionally
// renormalised in double (sum in selection order + 1e-20), times the scaling factor.
TESSERA_MOE_HD void finish_weights(const RouteParams& p, const float* score, const int32_t* ids,
                                   float* weights, int64_t weights_step) {
  double sum = 0.0;
  for (int k = 0; k < p.top_k; ++k) sum += score[ids[k]];
  for (int k = 0; k < p.top_k; ++k) {
    double w = score[ids[k]];
    if (p.norm_topk_prob) w /= sum + 1e-20;
    weights[k * weights_step] = static_cast<float>(w * p.routed_scaling_factor);
  }
}

// ---- Grouped expert GEMM: (token, slot) pairs grouped by expert, then tiles of rows.

TESSERA_MOE_HD bool valid_expert(int32_t id, int64_t e_count) { return id >= 0 && id < e_count; }

TESSERA_MOE_HD int64_t row_tiles(int64_t rows, int64_t tile_rows) {
  return (rows + tile_rows - 1) / tile_rows;
}

// An upper bound of sum_e row_tiles(count[e]) known without reading the counts (the grid size
// of the grouped GEMM, launched with no host synchronisation): each active expert wastes at
// most one partial tile, and at most min(pairs, experts) are active.
TESSERA_MOE_HD int64_t max_row_tiles(int64_t pairs, int64_t e_count, int64_t tile_rows) {
  return pairs / tile_rows + (pairs < e_count ? pairs : e_count);
}

// Exclusive scans of counts [E] into offsets [E + 1] (row starts of each expert) and
// tile_offsets [E + 1] (first row tile of each expert). One thread.
TESSERA_MOE_HD void scan_offsets(const int32_t* counts, int64_t e_count, int64_t tile_rows,
                                 int32_t* offsets, int32_t* tile_offsets) {
  int32_t rows = 0, tiles = 0;
  for (int64_t e = 0; e < e_count; ++e) {
    offsets[e] = rows;
    tile_offsets[e] = tiles;
    rows += counts[e];
    tiles += static_cast<int32_t>(row_tiles(counts[e], tile_rows));
  }
  offsets[e_count] = rows;
  tile_offsets[e_count] = tiles;
}

// The expert owning row tile `tile` (< tile_offsets[E]): the last e with tile_offsets[e] <=
// tile, which is never an empty expert (its next offset is > tile). Binary search.
TESSERA_MOE_HD int64_t tile_expert(const int32_t* tile_offsets, int64_t e_count, int64_t tile) {
  int64_t lo = 0, hi = e_count;  // invariant: tile_offsets[lo] <= tile < tile_offsets[hi]
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (tile_offsets[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// Rows [begin, begin + count) of the sorted pair list that row tile `tile` of expert e covers.
struct TileRows {
  int64_t expert;
  int64_t begin;
  int64_t count;
};
TESSERA_MOE_HD TileRows tile_rows_of(const int32_t* offsets, const int32_t* tile_offsets,
                                     int64_t e_count, int64_t tile, int64_t tile_rows) {
  TileRows r;
  r.expert = tile_expert(tile_offsets, e_count, tile);
  r.begin = offsets[r.expert] + (tile - tile_offsets[r.expert]) * tile_rows;
  const int64_t end = offsets[r.expert + 1];
  r.count = end - r.begin < tile_rows ? end - r.begin : tile_rows;
  return r;
}

}  // namespace tessera::kernels::cuda::moe
