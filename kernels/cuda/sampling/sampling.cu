// CUDA token sampling (see sampling.h). Per row: block argmax; then, unless greedy, up to three
// radix selections of kRadixPasses passes each (top-k by count, top-p by mass, the draw by mass)
// over the row in global memory; ties at a selected key are resolved by id with a chunked scan.
// Invariant: every per-pass decision is made by one thread with the shared sampling_math.h
// helpers, so the host emulation in tests/unit/sampling_device_op_test.cc follows the same path.
#include <cfloat>

#include "kernels/cuda/common/device_utils.cuh"
#include "kernels/cuda/sampling/sampling.h"

namespace tessera::kernels::cuda {
namespace {

namespace ks = tessera::kernels::sampling;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

struct Shared {
  uint32_t hist[ks::kRadixBins];
  double mass[ks::kRadixBins];
  float best_v[kWarps];
  int64_t best_i[kWarps];
  int64_t scan[kWarps];
  int64_t result;
  ks::CountSelect count_sel;
  ks::MassSelect mass_sel;
};

// (value, id) with the larger value, the lower id on ties; id < 0 is "none" (NaN only).
__device__ __forceinline__ void better(float& v, int64_t& i, float ov, int64_t oi) {
  if (oi < 0) return;
  if (i < 0 || ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__device__ int64_t block_argmax(const float* x, int64_t vocab, Shared& sh) {
  float v = -FLT_MAX;
  int64_t id = -1;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float xi = x[i];
    if (xi == xi) better(v, id, xi, i);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, id, o);
    better(v, id, ov, oi);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sh.best_v[warp] = v;
    sh.best_i[warp] = id;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) better(v, id, sh.best_v[w], sh.best_i[w]);
    sh.result = id < 0 ? 0 : id;
  }
  __syncthreads();
  const int64_t result = sh.result;
  __syncthreads();
  return result;
}

// Which elements a selection considers: those inside the prefix of the order ending at
// (end_key, end_id) and, with min_p > 0, of weight >= min_p.
struct Filter {
  uint32_t end_key = 0;
  int64_t end_id = INT64_MAX;
  float min_p = 0.0f;
  __device__ bool in_prefix(uint32_t key, int64_t i) const {
    return ks::in_prefix(key, i, end_key, end_id);
  }
  __device__ bool weight_ok(double w) const { return min_p <= 0.0f || w >= double(min_p); }
};

struct RowCtx {
  const float* x;
  int64_t vocab;
  float temperature;
  float s_max;
  __device__ double weight(float xi) const { return ks::logit_weight(xi, temperature, s_max); }
};

// The nth (1-based) smallest id among considered elements with key `key`: each thread scans a
// contiguous chunk of ids, a block scan of the chunk counts finds the owner.
__device__ int64_t select_tie_id(const RowCtx& row, const Filter& f, uint32_t key, int64_t nth,
                                 Shared& sh) {
  const int64_t chunk = (row.vocab + blockDim.x - 1) / blockDim.x;
  const int64_t lo = min(row.vocab, int64_t(threadIdx.x) * chunk);
  const int64_t hi = min(row.vocab, lo + chunk);
  auto is_tie = [&](int64_t i) {
    const float xi = row.x[i];
    const uint32_t k = ks::order_key(xi);
    return k == key && f.in_prefix(k, i) && f.weight_ok(row.weight(xi));
  };
  int64_t c = 0;
  for (int64_t i = lo; i < hi; ++i) c += is_tie(i);
  // Inclusive scan of c over the block.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int64_t incl = c;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int64_t n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  if (threadIdx.x == 0) sh.result = -1;
  if (lane == 31) sh.scan[warp] = incl;
  __syncthreads();
  int64_t warp_off = 0;
  for (int w = 0; w < warp; ++w) warp_off += sh.scan[w];
  const int64_t before = warp_off + incl - c;
  if (before < nth && nth <= before + c) {
    int64_t seen = before;
    for (int64_t i = lo; i < hi; ++i) {
      if (is_tie(i) && ++seen == nth) {
        sh.result = i;
        break;
      }
    }
  }
  __syncthreads();
  const int64_t result = sh.result;
  __syncthreads();
  return result;
}

// Runs the passes of a CountSelect (kMass = false) or MassSelect (kMass = true) held in sh.
template <bool kMass>
__device__ void radix_select(const RowCtx& row, const Filter& f, Shared& sh) {
  for (int pass = 0; pass < ks::kRadixPasses; ++pass) {
    for (int b = threadIdx.x; b < ks::kRadixBins; b += blockDim.x) {
      sh.hist[b] = 0;
      if (kMass) sh.mass[b] = 0.0;
    }
    __syncthreads();
    const uint32_t prefix = kMass ? sh.mass_sel.prefix : sh.count_sel.prefix;
    const uint32_t mask = kMass ? sh.mass_sel.mask : sh.count_sel.mask;
    const int shift = 24 - 8 * pass;
    for (int64_t i = threadIdx.x; i < row.vocab; i += blockDim.x) {
      const float xi = row.x[i];
      const uint32_t key = ks::order_key(xi);
      if ((key & mask) != prefix) continue;
      if (!f.in_prefix(key, i)) continue;
      const double w = (kMass || f.min_p > 0.0f) ? row.weight(xi) : 0.0;
      if (!f.weight_ok(w)) continue;
      const int bin = (key >> shift) & 0xff;
      atomicAdd(&sh.hist[bin], 1u);
      if (kMass) atomicAdd(&sh.mass[bin], w);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if (kMass) {
        sh.mass_sel.step(sh.mass, sh.hist);
      } else {
        sh.count_sel.step(sh.hist);
      }
    }
    __syncthreads();
  }
}

__global__ void sample_kernel(const float* logits, int64_t row_stride, int64_t vocab,
                              const ks::SampleRowSpec* specs, int32_t* out_ids) {
  // NOTE: raw storage: __shared__ variables cannot have constructors.
  __shared__ __align__(16) unsigned char sh_raw[sizeof(Shared)];
  Shared& sh = *reinterpret_cast<Shared*>(sh_raw);
  const int64_t r = blockIdx.x;
  const ks::SampleRowSpec spec = specs[r];
  RowCtx row{logits + r * row_stride, vocab, spec.temperature, 0.0f};
  const int64_t argmax = block_argmax(row.x, vocab, sh);
  const float x_max = row.x[argmax];
  const bool greedy = !(spec.temperature > 0.0f) || !isfinite(x_max) ||
                      !isfinite(ks::fdiv(x_max, spec.temperature));
  if (greedy) {
    if (threadIdx.x == 0) out_ids[r] = static_cast<int32_t>(argmax);
    return;
  }
  row.s_max = ks::fdiv(x_max, spec.temperature);
  Filter f;
  // top_k: the prefix ends at the k-th element of the order.
  if (spec.top_k > 0 && spec.top_k < vocab) {
    if (threadIdx.x == 0) {
      sh.count_sel = ks::CountSelect{};
      sh.count_sel.rank = static_cast<uint32_t>(spec.top_k);
    }
    __syncthreads();
    radix_select<false>(row, f, sh);
    const ks::CountSelect sel = sh.count_sel;
    f.end_id = sel.tie_rank() == sel.tie_count
                   ? INT64_MAX
                   : select_tie_id(row, f, sel.prefix, sel.tie_rank(), sh);
    f.end_key = sel.prefix;
  }
  // top_p: the prefix ends at the first element whose cumulative mass reaches top_p * mass.
  if (spec.top_p < 1.0f) {
    if (threadIdx.x == 0) {
      sh.mass_sel = ks::MassSelect{};
      sh.mass_sel.scale = double(spec.top_p);
      sh.mass_sel.strict = false;
    }
    __syncthreads();
    radix_select<true>(row, f, sh);
    const ks::MassSelect sel = sh.mass_sel;
    if (sel.any) {  // (a later pass may miss the target by rounding: then its last bin)
      const double w = row.weight(ks::key_logit(sel.prefix));
      const int64_t nth = int64_t(sel.tie_index(w)) + 1;
      f.end_id = select_tie_id(row, f, sel.prefix, nth, sh);
      f.end_key = sel.prefix;
    }
  }
  // min_p, then the draw: the first kept element whose cumulative mass exceeds u * total.
  f.min_p = spec.min_p;
  __syncthreads();  // every thread has read mass_sel before it is reset
  if (threadIdx.x == 0) {
    sh.mass_sel = ks::MassSelect{};
    sh.mass_sel.scale = ks::philox_uniform(spec.seed, spec.step);
    sh.mass_sel.strict = true;
  }
  __syncthreads();
  radix_select<true>(row, f, sh);
  const ks::MassSelect sel = sh.mass_sel;
  int64_t id = argmax;
  if (sel.any) {
    const double w = row.weight(ks::key_logit(sel.prefix));
    id = select_tie_id(row, f, sel.prefix, int64_t(sel.tie_index(w)) + 1, sh);
    if (id < 0) id = argmax;
  }
  if (threadIdx.x == 0) out_ids[r] = static_cast<int32_t>(id);
}

}  // namespace

cudaError_t sample_rows(const float* logits, int64_t num_rows, int64_t row_stride, int64_t vocab,
                        const sampling::SampleRowSpec* specs, int32_t* out_ids,
                        cudaStream_t stream) {
  if (num_rows == 0) return cudaSuccess;
  if (vocab < 1 || vocab > INT32_MAX || num_rows > INT32_MAX) return cudaErrorInvalidValue;
  sample_kernel<<<static_cast<unsigned>(num_rows), kThreads, 0, stream>>>(logits, row_stride, vocab,
                                                                          specs, out_ids);
  return cudaGetLastError();
}

}  // namespace tessera::kernels::cuda
