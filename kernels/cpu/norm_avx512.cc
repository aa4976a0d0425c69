// AVX512 instantiation of the CPU RMS norm; built with AVX512 flags (see
// CMakeLists.txt). Invariant: called only when ops_isa() is avx512.
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_avx512.h"

namespace tessera::kernels::cpu::avx512 {
TESSERA_DEFINE_NORM_OPS(VecAvx512)
}  // namespace tessera::kernels::cpu::avx512
