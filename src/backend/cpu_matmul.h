// CPU matmul for the CPU backend: quantizes activations once per call where the weight type
// has an integer dot product (Q8_0/Q8_1/Q8_K, as llama.cpp does), then splits output columns
// across the thread pool; picks AVX-512 / AVX2 / scalar kernels at run time. The batched form
// (matmul_batched) splits all batches' columns in one parallel region.
// Invariant: scratch is grown, never shrunk, so steady-state calls allocate nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {

class CpuMatmul {
 public:
  // Uses kernels::cpu::active_isa() (best supported, or TESSERA_CPU_ISA).
  CpuMatmul();
  // Forces a kernel family (tests, benchmarks); an unsupported one degrades to the best one.
  explicit CpuMatmul(kernels::cpu::Isa isa);

  // Whether weights of this dtype can be multiplied (f32, f16, bf16, q4_0, q4_1, q8_0, q4_k, q6_k).
  static bool supports(DType weight_type);

  // out = x @ w^T.  x f32 [M, K] (row stride may exceed K), w [N, K], out f32 [M, N].
  // Shapes are validated by the caller (op_checks); this re-checks only what it relies on.
  Status run(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor out);

  // out[b] = x[b] @ w[b]^T for every b: one parallel region over all B * N output columns
  // (each thread a contiguous run of (b, column) pairs), not B regions.
  //   x f32 [B, M, K], w f32|f16|bf16 [B, N, K], out f32 [B, M, N]; dims 0 and 1 strided.
  // Validated by check_matmul_batched; float weights need no activation scratch.
  Status run_batched(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor out);

  kernels::cpu::Isa isa() const { return isa_; }

 private:
  kernels::cpu::Isa isa_;
  std::vector<uint8_t, std::allocator<uint8_t>> scratch_;  // quantized activations [M, row_bytes]
};

}  // namespace tessera::backend
