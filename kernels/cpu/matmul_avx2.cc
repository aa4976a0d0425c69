// AVX2 + FMA + F16C matmul: the 256-bit kernels of matmul_simd.h with maddubs dot products.
// Built with -mavx2 -mfma -mf16c; called only when cpu_features reports them.
#include "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/matmul_simd.h"

namespace tessera::kernels::cpu::avx2 {

void quantize_activations(ElemType act_type, const float* x, int64_t x_stride, void* dst,
                          int64_t dst_row_bytes, int64_t row_begin, int64_t row_end, int64_t k) {
  simd_quantize_activations(act_type, x, x_stride, dst, dst_row_bytes, row_begin, row_end, k);
}

void matmul_columns(ElemType w_type, const void* w, int64_t w_row_bytes, const void* acts,
                    int64_t act_stride_bytes, float* out, int64_t out_stride, int64_t m,
                    int64_t n_begin, int64_t n_end, int64_t k) {
  simd_matmul_columns(w_type, w, w_row_bytes, acts, act_stride_bytes, out, out_stride, m,
                      n_begin, n_end, k);
}

}  // namespace tessera::kernels::cpu::avx2
