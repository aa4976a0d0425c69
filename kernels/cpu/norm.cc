// CPU RMS norm: dispatch to the avx512 / avx2 / scalar instantiations of ops_simd.h.
// Baseline x86-64 code: no intrinsics. Invariant: one row per call; threading is the caller's.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_scalar.h"

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_DEFINE_NORM_OPS(VecScalar)
}  // namespace scalar

void rms_norm_row(const float* x, const float* weight, float eps, float* out, int64_t n) {
  switch (ops_isa()) {
    case Isa::kAvx512: return avx512::rms_norm_row(x, weight, eps, out, n);
    case Isa::kAvx2: return avx2::rms_norm_row(x, weight, eps, out, n);
    case Isa::kScalar: return scalar::rms_norm_row(x, weight, eps, out, n);
  }
}

}  // namespace tessera::kernels::cpu
