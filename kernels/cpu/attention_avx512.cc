// AVX512 instantiation of the CPU grouped attention (one token x KV head per call, f32 and f16
// caches), built with its ISA flags. Invariant: called only when ops_isa() is avx512.
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_avx512.h"

namespace tessera::kernels::cpu::avx512 {
TESSERA_DEFINE_ATTENTION_OPS(VecAvx512)
TESSERA_DEFINE_PAGED_ATTENTION_OPS(VecAvx512)
}  // namespace tessera::kernels::cpu::avx512
