// AVX2 + FMA INT8 matmul: int8_matmul_simd.h with the maddubs W8A8 dot (sign trick).
// Built with -mavx2 -mfma -mf16c; called only when cpu_features reports them.
#include "kernels/cpu/int8_matmul_isa.h"
#include "kernels/cpu/int8_matmul_simd.h"

namespace tessera::kernels::cpu::avx2 {

void quantize_rows_int8(const float* x, int64_t x_stride, int64_t k, int8_t* q, int64_t q_stride,
                        float* scale, int64_t r_begin, int64_t r_end) {
  simd_quantize_rows(x, x_stride, k, q, q_stride, scale, r_begin, r_end);
}

void matmul_int8_w8a8_columns(const Int8MatmulArgs& a, const Int8Activations& xq, int64_t n_begin,
                              int64_t n_end) {
  simd_w8a8_columns(a, xq, n_begin, n_end);
}

void matmul_int8_weight_only_columns(const Int8MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  simd_weight_only_columns(a, n_begin, n_end);
}

}  // namespace tessera::kernels::cpu::avx2
