// CPU MoE routing: scores, group filter and top-k by partial sort over index arrays with the
// (score desc, index asc) order, which is the reference's tie rule.
#include "kernels/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tessera::kernels::cpu {
namespace {

struct Scratch {
  std::vector<float> score, choice, group_score;
  std::vector<int32_t> order, group_order;
};

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Puts the k best of idx[0..n) (by value desc, index asc) first, in that order.
void top_indices(const float* value, int32_t* idx, int64_t n, int64_t k) {
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx, idx + k, idx + n, [value](int32_t a, int32_t b) {
    return value[a] > value[b] || (value[a] == value[b] && a < b);
  });
}

}  // namespace

void moe_route_token(const float* logits, const float* bias, const MoeRouteSpec& spec,
                     int32_t* ids, float* weights) {
  thread_local Scratch s;
  const int64_t n = spec.num_experts;
  float* score = grow(s.score, n);
  float* choice = grow(s.choice, n);
  int32_t* order = grow(s.order, n);
  if (spec.sigmoid) {
    for (int64_t e = 0; e < n; ++e) {
      // NOTE: double, rounded once, so the CPU and reference scores agree bit for bit and a
      // near-tie can never order differently; E exps per token are negligible.
      score[e] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[e]))));
      choice[e] = bias != nullptr ? score[e] + bias[e] : score[e];
    }
  } else {
    const float max_logit = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int64_t e = 0; e < n; ++e) sum += std::exp(static_cast<double>(logits[e]) - max_logit);
    const double inv = 1.0 / sum;
    for (int64_t e = 0; e < n; ++e) {
      score[e] = static_cast<float>(std::exp(static_cast<double>(logits[e]) - max_logit) * inv);
      choice[e] = score[e];
    }
  }

  if (spec.n_group > 1) {
    const int64_t per = n / spec.n_group;
    float* gscore = grow(s.group_score, spec.n_group);
    int32_t* gorder = grow(s.group_order, spec.n_group);
    for (int g = 0; g < spec.n_group; ++g) {
      const float* c = choice + g * per;
      if (spec.sigmoid) {
        top_indices(c, order, per, 2);
        gscore[g] = c[order[0]] + c[order[1]];
      } else {
        gscore[g] = *std::max_element(c, c + per);
      }
    }
    top_indices(gscore, gorder, spec.n_group, spec.topk_group);
    // Dropped groups: the ones outside the first topk_group of gorder.
    const float masked = spec.sigmoid ? -std::numeric_limits<float>::infinity() : 0.0f;
    for (int i = spec.topk_group; i < spec.n_group; ++i) {
      std::fill(choice + gorder[i] * per, choice + (gorder[i] + 1) * per, masked);
    }
  }

  top_indices(choice, order, n, spec.top_k);
  double sum = 0.0;
  for (int k = 0; k < spec.top_k; ++k) sum += score[order[k]];
  const double scale =
      (spec.norm_topk_prob ? 1.0 / (sum + 1e-20) : 1.0) * spec.routed_scaling_factor;
  for (int k = 0; k < spec.top_k; ++k) {
    ids[k] = order[k];
    weights[k] = static_cast<float>(score[order[k]] * scale);
  }
}

}  // namespace tessera::kernels::cpu
