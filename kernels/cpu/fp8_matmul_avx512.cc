// AVX-512 block-scaled FP8 matmul: fp8_matmul_simd.h with 512-bit registers (32 weights per
// decode step). Built with the AVX-512 flag set of every _avx512.cc; called only when
// cpu_features reports them all.
#define TESSERA_FP8_AVX512 1
#include "kernels/cpu/fp8_matmul_isa.h"
#include "kernels/cpu/fp8_matmul_simd.h"

namespace tessera::kernels::cpu::avx512 {

void matmul_block_scaled_columns(const BlockScaledMatmulArgs& a, int64_t n_begin, int64_t n_end) {
  simd_matmul_block_scaled_columns(a, n_begin, n_end);
}

}  // namespace tessera::kernels::cpu::avx512
