// CpuMoeMatmul: counting sort of (token, slot) pairs by expert, gather, one matmul per active
// expert, scatter. The gather copies x rows top_k times; that is K floats per pair, small next
// to the N x K weight read it lets each expert do once.
#include "src/backend/cpu_moe.h"

#include <algorithm>
#include <cstring>

namespace tessera::backend {

Status CpuMoeMatmul::run(ThreadPool& pool, CpuMatmul& matmul, const Tensor& x, const Tensor& w,
                         const Tensor& ids, Tensor out) {
  return run_grouped(x, ids, w.dim(0), w.dim(1), out,
                     [&](int64_t e, const Tensor& xe, Tensor oe) {
                       return matmul.run(pool, xe, w.row(e), oe);
                     });
}

Status CpuMoeMatmul::run_grouped(const Tensor& x, const Tensor& ids, int64_t experts,
                                 int64_t n_dim, Tensor out, const ExpertMatmul& expert_matmul) {
  const int64_t tokens = x.dim(0), k_dim = x.dim(1);
  const int64_t top_k = ids.dim(1);
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
    TESSERA_RETURN_IF_ERROR(expert_matmul(e, xe, oe));
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
