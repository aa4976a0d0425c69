// CPU INT8 matmul for the CPU backend (docs/ops.md "INT8 matmul"): W8A8 quantises x per row
// into thread-local scratch, then both modes split output columns (weight rows) over the pool.
// Invariant: arguments were validated by check_matmul_int8; scratch only grows, so steady state
// allocates nothing; W8A8 results are bit-identical to the reference on every ISA.
#pragma once

#include <optional>

#include "kernels/cpu/cpu_features.h"
#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {

class CpuInt8Matmul {
 public:
  // Uses kernels::cpu::ops_isa() at each call (active_isa(), or the ISA a test forced).
  CpuInt8Matmul() = default;
  // Forces a kernel family (tests, benchmarks); an unsupported one degrades to the best one.
  explicit CpuInt8Matmul(kernels::cpu::Isa isa);

  // x f32 [M, K]; w i8 [N, K]; w_scale f32 [N]; out f32 [M, N] (see Backend::matmul_int8).
  Status run(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor& w_scale,
             Int8Mode mode, Tensor out);

  kernels::cpu::Isa isa() const;

 private:
  std::optional<kernels::cpu::Isa> isa_;  // set: fixed by the constructor
};

}  // namespace tessera::backend
