// CpuFp8Matmul: column split of the dense block-scaled matmul over the thread pool, and the
// counting sort / gather / per-expert call / scatter of its grouped MoE form.
#include "src/backend/cpu_fp8.h"

#include "kernels/cpu/fp8_matmul.h"
#include "kernels/cpu/ops.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

namespace kc = kernels::cpu;

// NOTE: below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;
// Column chunks are whole 16-row tiles so each thread reads a contiguous slab of weight rows.
constexpr int64_t kColumnGrain = 16;

void run_columns(ThreadPool& pool, kc::Isa isa, const kernels::BlockScaledMatmulArgs& a) {
  if (a.m == 0 || a.n == 0) return;
  if (a.m * a.n * a.k < kMinParallelMacs || pool.num_threads() == 1) {
    kc::matmul_block_scaled_columns(isa, a, 0, a.n);
    return;
  }
  pool.parallel_for(a.n, kColumnGrain, [&](int64_t j0, int64_t j1) {
    kc::matmul_block_scaled_columns(isa, a, j0, j1);
  });
}

}  // namespace

CpuFp8Matmul::CpuFp8Matmul(kc::Isa isa)
    : isa_(kc::isa_supported(isa) ? isa : kc::best_supported_isa()) {}

kc::Isa CpuFp8Matmul::isa() const { return isa_ ? *isa_ : kc::ops_isa(); }

Status CpuFp8Matmul::run(ThreadPool& pool, const Tensor& x, const Tensor& w,
                         const Tensor& w_scale_inv, const BlockScaleParams& block, Tensor out) {
  run_columns(pool, isa(), to_block_scaled_args(x, w, w_scale_inv, block, out));
  return Status::ok_status();
}

Status CpuFp8Matmul::run_grouped(ThreadPool& pool, const Tensor& x, const Tensor& w,
                                 const Tensor& w_scale_inv, const Tensor& ids,
                                 const BlockScaleParams& block, Tensor out) {
  return grouper_.run_grouped(x, ids, w.dim(0), w.dim(1), out,
                              [&](int64_t e, const Tensor& xe, Tensor oe) {
                                run_columns(pool, isa(),
                                            to_block_scaled_args(xe, w.row(e), w_scale_inv.row(e),
                                                                 block, oe));
                                return Status::ok_status();
                              });
}

}  // namespace tessera::backend
