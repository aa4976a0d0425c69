// Dispatch from the public CPU matmul entry points to the scalar / AVX2 / AVX-512 files.
// Baseline x86-64 code: it never executes an instruction the chosen ISA file needs unless
// cpu_features says the CPU has it.
#include "kernels/cpu/matmul.h"

#include "kernels/cpu/matmul_isa.h"

namespace tessera::kernels::cpu {
namespace {

// An ISA the CPU lacks degrades to the best one it has (callers may pass any Isa).
Isa usable(Isa isa) {
  if (isa_supported(isa)) return isa;
  return best_supported_isa();
}

}  // namespace

bool matmul_supported(ElemType w_type) {
  switch (w_type) {
    case ElemType::kF32:
    case ElemType::kF16:
    case ElemType::kBF16:
    case ElemType::kQ4_0:
    case ElemType::kQ4_1:
    case ElemType::kQ8_0:
    case ElemType::kQ4_K:
    case ElemType::kQ6_K:
      return true;
    default:
      return false;
  }
}

ElemType activation_type(ElemType w_type) {
  switch (w_type) {
    case ElemType::kQ4_0:
    case ElemType::kQ4_1:
      return ElemType::kQ8_1;
    case ElemType::kQ8_0:
      return ElemType::kQ8_0;
    case ElemType::kQ4_K:
    case ElemType::kQ6_K:
      return ElemType::kQ8_K;
    default:
      return ElemType::kF32;
  }
}

int64_t activation_row_bytes(ElemType w_type, int64_t k) {
  const ElemType act = activation_type(w_type);
  if (act == ElemType::kF32) return 0;
  const ElemTraits t = elem_traits(act);
  return k / t.block_elems * t.block_bytes;
}

void quantize_activations(Isa isa, ElemType w_type, const float* x, int64_t x_stride, void* dst,
                          int64_t row_begin, int64_t row_end, int64_t k) {
  const ElemType act = activation_type(w_type);
  if (act == ElemType::kF32) return;
  const int64_t row_bytes = activation_row_bytes(w_type, k);
  switch (usable(isa)) {
    case Isa::kAvx512:
      avx512::quantize_activations(act, x, x_stride, dst, row_bytes, row_begin, row_end, k);
      return;
    case Isa::kAvx2:
      avx2::quantize_activations(act, x, x_stride, dst, row_bytes, row_begin, row_end, k);
      return;
    case Isa::kScalar:
      scalar::quantize_activations(act, x, x_stride, dst, row_bytes, row_begin, row_end, k);
      return;
  }
}

void matmul_columns(Isa isa, ElemType w_type, const void* w, int64_t w_row_bytes,
                    const void* acts, int64_t act_stride_bytes, float* out, int64_t out_stride,
                    int64_t m, int64_t n_begin, int64_t n_end, int64_t k) {
  switch (usable(isa)) {
    case Isa::kAvx512:
      avx512::matmul_columns(w_type, w, w_row_bytes, acts, act_stride_bytes, out, out_stride, m,
                             n_begin, n_end, k);
      return;
    case Isa::kAvx2:
      avx2::matmul_columns(w_type, w, w_row_bytes, acts, act_stride_bytes, out, out_stride, m,
                           n_begin, n_end, k);
      return;
    case Isa::kScalar:
      scalar::matmul_columns(w_type, w, w_row_bytes, acts, act_stride_bytes, out, out_stride, m,
                             n_begin, n_end, k);
      return;
  }
}

}  // namespace tessera::kernels::cpu
