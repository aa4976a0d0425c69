// CpuMatmul: tensor checks, activation quantization into grown-only scratch, and the split of
// output columns over the thread pool (one contiguous slab of weight rows per thread).
#include "src/backend/cpu_matmul.h"

#include <algorithm>

#include "kernels/cpu/matmul.h"

namespace tessera::backend {
namespace {

namespace kc = kernels::cpu;

// NOTE: below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 16;
// Rows of x quantized per thread before quantization is worth splitting.
constexpr int64_t kMinParallelQuantRows = 8;
// Column chunks are whole column tiles so each thread reads a contiguous slab of weight rows.
constexpr int64_t kColumnGrain = 16;

struct Matrix2d {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride_bytes = 0;
};

// x and out are f32 with contiguous rows; the row stride may exceed the row length.
Result<Matrix2d> as_matrix(const Tensor& t, const char* what) {
  if (t.ndim() == 1) return Matrix2d{1, t.dim(0), t.dim(0) * 4};
  if (t.ndim() != 2) {
    return invalid_argument("matmul: {} must be 1-D or 2-D, got {}", what, t.describe());
  }
  if (t.dim(1) > 1 && t.stride_bytes(1) != 4) {
    return invalid_argument("matmul: {} rows must be contiguous, got {}", what, t.describe());
  }
  if (t.stride_bytes(0) % 4 != 0 || (t.dim(0) > 1 && t.stride_bytes(0) < t.dim(1) * 4)) {
    return invalid_argument("matmul: {} row stride {} bytes is invalid", what, t.stride_bytes(0));
  }
  return Matrix2d{t.dim(0), t.dim(1), t.stride_bytes(0)};
}

}  // namespace

CpuMatmul::CpuMatmul() : isa_(kc::active_isa()) {}

CpuMatmul::CpuMatmul(kc::Isa isa) : isa_(kc::isa_supported(isa) ? isa : kc::best_supported_isa()) {}

bool CpuMatmul::supports(DType weight_type) { return kc::matmul_supported(weight_type); }

Status CpuMatmul::run(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor out) {
  const DType wt = w.dtype();
  if (!supports(wt)) return invalid_argument("matmul: no CPU kernel for weight type {}", dtype_name(wt));
  if (x.dtype() != DType::kF32 || out.dtype() != DType::kF32) {
    return invalid_argument("matmul: x and out must be f32, got {} and {}", x.describe(),
                            out.describe());
  }
  if (w.ndim() != 2) return invalid_argument("matmul: w must be 2-D, got {}", w.describe());
  TESSERA_ASSIGN_OR_RETURN(const Matrix2d xm, as_matrix(x, "x"));
  TESSERA_ASSIGN_OR_RETURN(const Matrix2d om, as_matrix(out, "out"));
  const int64_t m = xm.rows, k = xm.cols, n = w.dim(0);
  const int64_t block = elem_traits(wt).block_elems;
  if (w.dim(1) != k || om.rows != m || om.cols != n) {
    return invalid_argument("matmul: shapes x {} w {} out {} do not match", x.describe(),
                            w.describe(), out.describe());
  }
  if (k % block != 0) {
    return invalid_argument("matmul: K={} is not a multiple of {}'s block size {}", k,
                            dtype_name(wt), block);
  }
  if (m == 0 || n == 0) return Status::ok_status();
  const int64_t x_stride = xm.row_stride_bytes / 4;
  const int64_t out_stride = om.row_stride_bytes / 4;
  const float* xp = x.data_as<const float>();
  float* op = out.data_as<float>();

  const int64_t act_row_bytes = kc::activation_row_bytes(wt, k);
  const void* acts = xp;
  int64_t act_stride = xm.row_stride_bytes;
  if (act_row_bytes > 0) {
    const size_t need = static_cast<size_t>(m * act_row_bytes);
    if (scratch_.size() < need) scratch_.resize(need);
    void* dst = scratch_.data();
    if (m >= kMinParallelQuantRows && pool.num_threads() > 1) {
      pool.parallel_for(m, 1, [&](int64_t r0, int64_t r1) {
        kc::quantize_activations(isa_, wt, xp, x_stride, dst, r0, r1, k);
      });
    } else {
      kc::quantize_activations(isa_, wt, xp, x_stride, dst, 0, m, k);
    }
    acts = dst;
    act_stride = act_row_bytes;
  }

  const int64_t w_row_bytes = w.stride_bytes(0);
  const void* wp = w.data();
  auto columns = [&](int64_t j0, int64_t j1) {
    kc::matmul_columns(isa_, wt, wp, w_row_bytes, acts, act_stride, op, out_stride, m, j0, j1, k);
  };
  if (m * n * k < kMinParallelMacs || pool.num_threads() == 1) {
    columns(0, n);
  } else {
    pool.parallel_for(n, kColumnGrain, columns);
  }
  return Status::ok_status();
}

Status CpuMatmul::run_batched(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor out) {
  const DType wt = w.dtype();
  if (kc::activation_row_bytes(wt, x.dim(2)) != 0 || !supports(wt)) {
    return invalid_argument("matmul_batched: no CPU kernel for weight {}", w.describe());
  }
  const int64_t batch = x.dim(0), m = x.dim(1), k = x.dim(2), n = w.dim(1);
  if (batch == 0 || m == 0 || n == 0) return Status::ok_status();
  const char* xp = static_cast<const char*>(x.data());
  const char* wp = static_cast<const char*>(w.data());
  char* op = static_cast<char*>(out.data());
  const int64_t x_b = x.stride_bytes(0), x_row = x.stride_bytes(1);
  const int64_t w_b = w.stride_bytes(0), w_row = w.stride_bytes(1);
  const int64_t o_b = out.stride_bytes(0), o_row = out.stride_bytes(1) / 4;
  // Columns [c0, c1) of the flattened [B * N] output columns, one call per batch touched.
  auto columns = [&](int64_t c0, int64_t c1) {
    for (int64_t b = c0 / n; b * n < c1; ++b) {
      const int64_t j0 = std::max<int64_t>(c0 - b * n, 0), j1 = std::min<int64_t>(c1 - b * n, n);
      kc::matmul_columns(isa_, wt, wp + b * w_b, w_row, xp + b * x_b, x_row,
                         reinterpret_cast<float*>(op + b * o_b), o_row, m, j0, j1, k);
    }
  };
  if (batch * m * n * k < kMinParallelMacs || pool.num_threads() == 1) {
    columns(0, batch * n);
  } else {
    pool.parallel_for(batch * n, kColumnGrain, columns);
  }
  return Status::ok_status();
}

}  // namespace tessera::backend
