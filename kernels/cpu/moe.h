// CPU mixture-of-experts routing (one token per call; the backend threads over tokens).
// Routing is O(E log E) per token next to the expert matmuls, so it is scalar: the selection
// is a partial sort of expert indices, not the reference's repeated argmax.
// Invariant: same ids (bitwise) and weights (within the ops tolerance) as kernels/ref/moe.h;
// after warm-up no call allocates (thread_local scratch only grows).
#pragma once

#include <cstdint>

#include "kernels/ref/moe.h"

namespace tessera::kernels::cpu {

// logits f32 [E]; bias f32 [E] or null; ids i32 [top_k]; weights f32 [top_k].
void moe_route_token(const float* logits, const float* bias, const MoeRouteSpec& spec,
                     int32_t* ids, float* weights);

}  // namespace tessera::kernels::cpu
