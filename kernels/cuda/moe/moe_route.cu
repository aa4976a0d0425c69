// CUDA MoE router: one warp per token. Lanes score their strided experts into shared memory,
// group scores and the group / expert top-k run as repeated warp argmax reductions under the
// (value desc, index asc) order of moe_logic.h, and lane 0 writes ids and weights.
// Invariant: the steps are moe_logic.h's lane functions in the order of kernels/ref/moe.cc, so
// ids equal the reference's bit for bit (ties included) and weights match within rounding.
#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/moe/moe.h"

namespace tessera::kernels::cuda {
namespace {

constexpr int kMaxWarpsPerBlock = 4;
constexpr int64_t kMaxSharedBytes = 48 * 1024;

__device__ __forceinline__ moe::Candidate warp_pick(moe::Candidate c) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const moe::Candidate other{__shfl_xor_sync(0xffffffffu, c.v, o),
                               __shfl_xor_sync(0xffffffffu, c.i, o)};
    c = moe::pick(c, other);
  }
  return c;
}

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Shared memory of one warp: score [E], choice [E], gscore [G] (f32), sel [top_k] (i32),
// kept [G] (u8), padded to 16 bytes.
int64_t warp_shared_bytes(const moe::RouteParams& p) {
  const int64_t words = 2ll * p.num_experts + p.n_group + p.top_k;
  return (words * 4 + p.n_group + 15) / 16 * 16;
}

__global__ void route_kernel(const float* logits, int64_t logits_stride, const float* bias,
                             moe::RouteParams p, int32_t* ids, int64_t ids_stride, float* weights,
                             int64_t weights_stride, int64_t num_tokens, int64_t warp_bytes) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + warp;
  if (t >= num_tokens) return;  // whole warps leave; no block-wide barrier follows
  float* score = reinterpret_cast<float*>(smem + warp * warp_bytes);
  float* choice = score + p.num_experts;
  float* gscore = choice + p.num_experts;
  int32_t* sel = reinterpret_cast<int32_t*>(gscore + p.n_group);
  uint8_t* kept = reinterpret_cast<uint8_t*>(sel + p.top_k);
  const float* lg = logits + t * logits_stride;

  if (p.sigmoid) {
    moe::lane_sigmoid_scores(lane, lg, bias, p.num_experts, score, choice);
  } else {
    float m = warp_max(moe::lane_max_logit(lane, lg, p.num_experts));
    const double sum = warp_sum_f64(moe::lane_exp_sum(lane, lg, p.num_experts, m));
    moe::lane_softmax_scores(lane, lg, p.num_experts, m, sum, score, choice);
  }
  __syncwarp();

  if (p.n_group > 1) {
    moe::lane_group_scores(lane, choice, p, gscore);
    __syncwarp();
    uint32_t kept_mask = 0;
    for (int k = 0; k < p.topk_group; ++k) {
      const moe::Candidate c = warp_pick(moe::lane_best(lane, gscore, p.n_group, kept_mask));
      moe::mark_taken(lane, c.i, &kept_mask);
    }
    for (int g = lane; g < p.n_group; g += 32) kept[g] = (kept_mask >> (g / 32)) & 1u;
    __syncwarp();
    moe::lane_mask_dropped(lane, p, kept, choice);
    __syncwarp();
  }

  uint32_t taken = 0;
  int32_t* out_ids = ids + t * ids_stride;
  for (int k = 0; k < p.top_k; ++k) {
    const moe::Candidate c = warp_pick(moe::lane_best(lane, choice, p.num_experts, taken));
    moe::mark_taken(lane, c.i, &taken);
    if (lane == 0) {
      sel[k] = c.i;
      out_ids[k] = c.i;
    }
  }
  __syncwarp();
  if (lane == 0) moe::finish_weights(p, score, sel, weights + t * weights_stride, 1);
}

}  // namespace

cudaError_t moe_route(const float* logits, int64_t logits_stride, const float* bias,
                      const moe::RouteParams& params, int32_t* ids, int64_t ids_stride,
                      float* weights, int64_t weights_stride, int64_t num_tokens,
                      cudaStream_t stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (params.num_experts > moe::kMaxRouteExperts || params.n_group > moe::kMaxRouteExperts ||
      params.num_experts < 1 || params.n_group < 1 || params.top_k < 1) {
    return cudaErrorNotSupported;
  }
  const int64_t warp_bytes = warp_shared_bytes(params);
  int warps = kMaxWarpsPerBlock;
  while (warps > 1 && warps * warp_bytes > kMaxSharedBytes) --warps;
  if (warps * warp_bytes > kMaxSharedBytes) return cudaErrorNotSupported;
  const int64_t blocks = (num_tokens + warps - 1) / warps;
  route_kernel<<<static_cast<unsigned>(blocks), warps * 32, static_cast<size_t>(warps * warp_bytes),
                 stream>>>(logits, logits_stride, bias, params, ids, ids_stride, weights,
                           weights_stride, num_tokens, warp_bytes);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda
