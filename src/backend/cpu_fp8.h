// CPU block-scaled FP8 matmul for the CPU backend: the dense op splits output columns (weight
// rows) over the thread pool; the grouped MoE op gathers each expert's x rows (as CpuMoeMatmul
// does) and runs one dense call per active expert over its [N, K] weight and scale slices.
// Invariant: arguments were validated by op_checks; scratch only grows, so steady state
// allocates nothing; experts with no rows are never touched.
#pragma once

#include <cstdint>
#include <optional>

#include "kernels/cpu/cpu_features.h"
#include "src/backend/cpu_moe.h"
#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {

class CpuFp8Matmul {
 public:
  // Uses kernels::cpu::ops_isa() at each call (active_isa(), or the ISA a test forced).
  CpuFp8Matmul() = default;
  // Forces a kernel family (tests, benchmarks); an unsupported one degrades to the best one.
  explicit CpuFp8Matmul(kernels::cpu::Isa isa);

  // out = x @ dequant(w)^T.   x f32 [M, K]; w fp8_e4m3 [N, K];
  // w_scale_inv f32 [ceil(N / block_n), ceil(K / block_k)]; out f32 [M, N].
  Status run(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
             const BlockScaleParams& block, Tensor out);

  // out[t, j, :] = x[t, :] @ dequant(w[ids[t, j]])^T.   x f32 [T, K]; w fp8_e4m3 [E, N, K];
  // w_scale_inv f32 [E, ceil(N / block_n), ceil(K / block_k)]; ids i32 [T, top_k];
  // out f32 [T, top_k, N].
  Status run_grouped(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                     const Tensor& ids, const BlockScaleParams& block, Tensor out);

  kernels::cpu::Isa isa() const;
  // Dense calls of the last run_grouped (one per active expert); for tests.
  int64_t last_expert_calls() const { return grouper_.last_expert_calls(); }

 private:
  std::optional<kernels::cpu::Isa> isa_;  // set: fixed by the constructor
  CpuMoeMatmul grouper_;                  // the gather / scatter around each expert's call
};

}  // namespace tessera::backend
