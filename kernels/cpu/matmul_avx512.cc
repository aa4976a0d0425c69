// AVX-512 matmul: the kernels of matmul_simd.h with the u8 x s8 dot step as one VNNI vpdpbusd
// on 256-bit registers (AVX512VL), which is what bounds the Q4_0/Q4_1/Q8_0 decode loops.
// Built with AVX-512 F/BW/VL/DQ/VNNI/BF16; called only when cpu_features reports them all.
#define TESSERA_SIMD_VNNI 1
#include "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/matmul_simd.h"

namespace tessera::kernels::cpu::avx512 {

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

}  // namespace tessera::kernels::cpu::avx512
