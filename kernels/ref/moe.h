// Reference (scalar, obviously-correct) mixture-of-experts routing for one token, written
// step by step after transformers' routers (DeepseekV3TopkRouter, DeepseekV2TopkRouter,
// MixtralTopKRouter). The oracle of the CPU/CUDA routers in tests/ops.
// Invariant: scores are the f32 values torch would compute (sigmoid/softmax in double, rounded
// once; bias added in f32); every top-k is a repeated argmax where ties pick the lower index.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// Kernel-level router description (mirrors backend::MoeRouteParams).
struct MoeRouteSpec {
  bool sigmoid = false;  // false: softmax
  int64_t num_experts = 0;
  int top_k = 1;
  int n_group = 1;      // divides num_experts
  int topk_group = 1;   // <= n_group
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
};

namespace ref {

// Routes one token.   logits f32 [E]; bias f32 [E] or null (sigmoid only);
// ids i32 [top_k] in descending selection score; weights f32 [top_k].
void moe_route_token(const float* logits, const float* bias, const MoeRouteSpec& spec,
                     int32_t* ids, float* weights);

}  // namespace ref
}  // namespace tessera::kernels
