// AVX2 + FMA + F16C block-scaled FP8 matmul: fp8_matmul_simd.h with 256-bit registers.
// Built with -mavx2 -mfma -mf16c; called only when cpu_features reports them.
#include "kernels/cpu/fp8_matmul_isa.h"
#include "kernels/cpu/fp8_matmul_simd.h"

namespace tessera::kernels::cpu::avx2 {

void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end) {
  simd_matmul_block_scaled_columns(a, n_begin, n_end);
}

}  // namespace tessera::kernels::cpu::avx2
