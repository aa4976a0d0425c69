// CPU grouped expert matmul for the CPU backend's moe_grouped_matmul: counts the (token, slot)
// pairs per expert, gathers each expert's x rows into one contiguous block, runs ONE CpuMatmul
// per active expert over its block, and scatters the results back to out[t, slot].
// Invariant: ids were validated by op_checks; scratch only grows, so steady state allocates
// nothing; experts with no rows are never touched.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/backend/cpu_matmul.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {

class CpuMoeMatmul {
 public:
  // out[t, j, :] = x[t, :] @ w[ids[t, j]]^T.
  //   x f32 [T, K]; w [E, N, K]; ids i32 [T, top_k]; out f32 [T, top_k, N].
  Status run(ThreadPool& pool, CpuMatmul& matmul, const Tensor& x, const Tensor& w,
             const Tensor& ids, Tensor out);

  // The grouping for any expert weight format: gathers rows, calls `expert_matmul(e, xe, oe)`
  // once per active expert e (xe f32 [rows_e, K] -> oe f32 [rows_e, N] = xe @ W_e^T), scatters.
  //   x f32 [T, K]; ids i32 [T, top_k] in [0, num_experts); out f32 [T, top_k, N].
  using ExpertMatmul = std::function<Status(int64_t expert, const Tensor& xe, Tensor oe)>;
  Status run_grouped(const Tensor& x, const Tensor& ids, int64_t num_experts, int64_t n_dim,
                     Tensor out, const ExpertMatmul& expert_matmul);

  // Matmul calls of the last run (one per active expert); for tests.
  int64_t last_expert_calls() const { return last_expert_calls_; }

 private:
  std::vector<int64_t> offsets_;  // [E + 1] first gathered row of each expert
  std::vector<int64_t> fill_;     // [E] next free gathered row of each expert
  std::vector<int64_t> slot_of_;  // [T * top_k] gathered row -> t * top_k + j
  std::vector<float> x_rows_;     // [T * top_k, K] gathered activations
  std::vector<float> out_rows_;   // [T * top_k, N] per-expert results
  int64_t last_expert_calls_ = 0;
};

}  // namespace tessera::backend
