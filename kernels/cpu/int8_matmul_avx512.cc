// AVX-512 VNNI INT8 matmul: int8_matmul_simd.h with the vpdpbusd W8A8 dot (+128 offset).
// Built with the AVX-512 flag set of every _avx512.cc (VNNI included); called only when
// cpu_features reports them all. Quantisation and weight-only run the 256-bit code.
#define TESSERA_INT8_AVX512 1
#include "kernels/cpu/int8_matmul_isa.h"
#include "kernels/cpu/int8_matmul_simd.h"

namespace tessera::kernels::cpu::avx512 {

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

}  // namespace tessera::kernels::cpu::avx512
