// Reference MoE routing: each step of the HF routers spelled out over plain arrays.
// Masked (dropped-group) experts: -inf for sigmoid scoring (DeepseekV3TopkRouter), 0.0 for
// softmax scoring (DeepseekV2TopkRouter); see docs/ops.md "moe_route".
#include "kernels/ref/moe.h"

#include <cmath>
#include <limits>
#include <vector>

namespace tessera::kernels::ref {
namespace {

// Index of the largest value among those with taken[i] == 0; ties pick the lower index.
int64_t argmax_untaken(const std::vector<float>& v, const std::vector<char>& taken) {
  int64_t best = -1;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    if (taken[i]) continue;
    if (best < 0 || v[i] > v[best]) best = i;
  }
  return best;
}

}  // namespace

void moe_route_token(const float* logits, const float* bias, const MoeRouteSpec& spec,
                     int32_t* ids, float* weights) {
  const int64_t e_count = spec.num_experts;
  std::vector<float> score(e_count);   // unbiased: the weights come from these
  std::vector<float> choice(e_count);  // what selection ranks
  if (spec.sigmoid) {
    for (int64_t e = 0; e < e_count; ++e) {
      score[e] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[e]))));
      choice[e] = bias != nullptr ? score[e] + bias[e] : score[e];  // f32 add, as torch
    }
  } else {
    double max_logit = -std::numeric_limits<double>::infinity();
    for (int64_t e = 0; e < e_count; ++e) max_logit = std::fmax(max_logit, logits[e]);
    double sum = 0.0;
    for (int64_t e = 0; e < e_count; ++e) sum += std::exp(logits[e] - max_logit);
    for (int64_t e = 0; e < e_count; ++e) {
      score[e] = static_cast<float>(std::exp(logits[e] - max_logit) / sum);
      choice[e] = score[e];
    }
  }

  if (spec.n_group > 1) {
    const int64_t per_group = e_count / spec.n_group;
    std::vector<float> group_score(spec.n_group);
    for (int g = 0; g < spec.n_group; ++g) {
      const float* c = choice.data() + g * per_group;
      if (spec.sigmoid) {  // sum of the two largest (f32, as torch's topk(2).sum())
        float first = -std::numeric_limits<float>::infinity(), second = first;
        for (int64_t i = 0; i < per_group; ++i) {
          if (c[i] > first) {
            second = first;
            first = c[i];
          } else if (c[i] > second) {
            second = c[i];
          }
        }
        group_score[g] = first + second;
      } else {  // the largest
        float best = c[0];
        for (int64_t i = 1; i < per_group; ++i) best = std::fmax(best, c[i]);
        group_score[g] = best;
      }
    }
    std::vector<char> kept(spec.n_group, 0);
    for (int k = 0; k < spec.topk_group; ++k) kept[argmax_untaken(group_score, kept)] = 1;
    const float masked = spec.sigmoid ? -std::numeric_limits<float>::infinity() : 0.0f;
    for (int g = 0; g < spec.n_group; ++g) {
      if (kept[g]) continue;
      for (int64_t i = 0; i < per_group; ++i) choice[g * per_group + i] = masked;
    }
  }

  std::vector<char> taken(e_count, 0);
  double sum = 0.0;
  for (int k = 0; k < spec.top_k; ++k) {
    const int64_t e = argmax_untaken(choice, taken);
    taken[e] = 1;
    ids[k] = static_cast<int32_t>(e);
    sum += score[e];
  }
  for (int k = 0; k < spec.top_k; ++k) {
    double w = score[ids[k]];
    if (spec.norm_topk_prob) w /= sum + 1e-20;
    weights[k] = static_cast<float>(w * spec.routed_scaling_factor);
  }
}

}  // namespace tessera::kernels::ref
