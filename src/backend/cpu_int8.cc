// CpuInt8Matmul: per-row activation quantisation (W8A8) and the column split of both INT8
// matmul modes over the thread pool.
#include "src/backend/cpu_int8.h"

#include <vector>

#include "kernels/cpu/int8_matmul.h"
#include "kernels/cpu/ops.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

namespace kc = kernels::cpu;

// NOTE: below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;
// Column chunks are whole 16-row tiles so each thread reads a contiguous slab of weight rows.
constexpr int64_t kColumnGrain = 16;
// Rows of x per quantisation chunk: enough values that the hand-off pays.
constexpr int64_t kMinQuantElems = 1 << 15;

template <class Fn>
void run_columns(ThreadPool& pool, const kernels::Int8MatmulArgs& a, const Fn& fn) {
  if (a.m == 0 || a.n == 0) return;
  if (a.m * a.n * a.k < kMinParallelMacs || pool.num_threads() == 1) return fn(0, a.n);
  pool.parallel_for(a.n, kColumnGrain, [&](int64_t j0, int64_t j1) { fn(j0, j1); });
}

}  // namespace

CpuInt8Matmul::CpuInt8Matmul(kc::Isa isa)
    : isa_(kc::isa_supported(isa) ? isa : kc::best_supported_isa()) {}

kc::Isa CpuInt8Matmul::isa() const { return isa_ ? *isa_ : kc::ops_isa(); }

Status CpuInt8Matmul::run(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor& w_scale,
                          Int8Mode mode, Tensor out) {
  const kernels::Int8MatmulArgs a = to_int8_matmul_args(x, w, w_scale, out);
  const kc::Isa use = isa();
  switch (mode) {
    case Int8Mode::kWeightOnly:
      run_columns(pool, a, [&](int64_t j0, int64_t j1) {
        kc::matmul_int8_weight_only_columns(use, a, j0, j1);
      });
      return Status::ok_status();
    case Int8Mode::kW8A8: {
      // NOTE: thread_local on the calling thread; the pool's workers only read it during run.
      thread_local std::vector<int8_t> q_buf;
      thread_local std::vector<float> scale_buf;
      const int64_t q_stride = kc::int8_q_stride(a.k);
      if (q_buf.size() < static_cast<size_t>(a.m * q_stride)) q_buf.resize(a.m * q_stride);
      if (scale_buf.size() < static_cast<size_t>(a.m)) scale_buf.resize(a.m);
      int8_t* q = q_buf.data();
      float* scale = scale_buf.data();
      const int64_t grain = std::max<int64_t>(1, kMinQuantElems / std::max<int64_t>(1, a.k));
      if (a.m > grain && pool.num_threads() > 1) {
        pool.parallel_for(a.m, grain, [&](int64_t r0, int64_t r1) {
          kc::quantize_rows_int8(use, a.x, a.x_stride, a.k, q, q_stride, scale, r0, r1);
        });
      } else {
        kc::quantize_rows_int8(use, a.x, a.x_stride, a.k, q, q_stride, scale, 0, a.m);
      }
      const kc::Int8Activations xq{q, q_stride, scale};
      run_columns(pool, a, [&](int64_t j0, int64_t j1) {
        kc::matmul_int8_w8a8_columns(use, a, xq, j0, j1);
      });
      return Status::ok_status();
    }
  }
  return invalid_argument("matmul_int8: unknown mode");
}

}  // namespace tessera::backend
