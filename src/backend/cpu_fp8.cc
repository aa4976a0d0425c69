// CpuFp8Matmul: column split of the dense block-scaled matmul over the thread pool, and the
// counting sort / gather / per-expert call / scatter of its grouped MoE form.
#include "src/backend/cpu_fp8.h"

#include <cstring>

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
  const int64_t tokens = x.dim(0), k_dim = x.dim(1);
  const int64_t top_k = ids.dim(1), experts = w.dim(0), n_dim = w.dim(1);
  const int64_t pairs = tokens * top_k;
  auto id_at = [&](int64_t t, int64_t j) {
    return reinterpret_cast<const int32_t*>(static_cast<const char*>(ids.data()) +
                                            t * ids.stride_bytes(0))[j];
  };

  offsets_.assign(experts + 1, 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) ++offsets_[id_at(t, j) + 1];
  }
  for (int64_t e = 0; e < experts; ++e) offsets_[e + 1] += offsets_[e];
  fill_.assign(offsets_.begin(), offsets_.end() - 1);
  if (static_cast<int64_t>(slot_of_.size()) < pairs) slot_of_.resize(pairs);
  if (static_cast<int64_t>(x_rows_.size()) < pairs * k_dim) x_rows_.resize(pairs * k_dim);
  if (static_cast<int64_t>(out_rows_.size()) < pairs * n_dim) out_rows_.resize(pairs * n_dim);

  const char* x_base = static_cast<const char*>(x.data());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t row = fill_[id_at(t, j)]++;
      slot_of_[row] = t * top_k + j;
      std::memcpy(x_rows_.data() + row * k_dim, x_base + t * x.stride_bytes(0),
                  static_cast<size_t>(k_dim) * sizeof(float));
    }
  }

  last_expert_calls_ = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t begin = offsets_[e], rows = offsets_[e + 1] - begin;
    if (rows == 0) continue;
    Tensor xe(x_rows_.data() + begin * k_dim, DType::kF32, {rows, k_dim});
    Tensor oe(out_rows_.data() + begin * n_dim, DType::kF32, {rows, n_dim});
    run_columns(pool, isa(), to_block_scaled_args(xe, w.row(e), w_scale_inv.row(e), block, oe));
    ++last_expert_calls_;
  }

  char* out_base = static_cast<char*>(out.data());
  for (int64_t row = 0; row < pairs; ++row) {
    const int64_t t = slot_of_[row] / top_k, j = slot_of_[row] % top_k;
    std::memcpy(out_base + t * out.stride_bytes(0) + j * out.stride_bytes(1),
                out_rows_.data() + row * n_dim, static_cast<size_t>(n_dim) * sizeof(float));
  }
  return Status::ok_status();
}

}  // namespace tessera::backend
