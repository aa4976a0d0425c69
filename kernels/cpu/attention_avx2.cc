// AVX2 instantiation of the CPU grouped attention (one token x KV head per call, f32 and f16
// caches), built with its ISA flags. Invariant: called only when ops_isa() is avx2.
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_avx2.h"

namespace tessera::kernels::cpu::avx2 {
TESSERA_DEFINE_ATTENTION_OPS(VecAvx2)
TESSERA_DEFINE_PAGED_ATTENTION_OPS(VecAvx2)
}  // namespace tessera::kernels::cpu::avx2
