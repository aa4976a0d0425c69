// CPU elementwise ops (silu_mul, add, convert) and the op-kernel ISA choice: dispatch to the
// avx512 / avx2 / scalar instantiations of ops_simd.h. Baseline x86-64 code: no intrinsics.
// Invariant: a forced ISA is never one this CPU lacks.
#include <atomic>
#include <cstring>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_isa.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/ops_vec_scalar.h"

namespace tessera::kernels::cpu {
namespace scalar {
TESSERA_DEFINE_ELEMENTWISE_OPS(VecScalar)
}  // namespace scalar

namespace {
std::atomic<int> g_forced_isa{-1};
}  // namespace

Isa ops_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced < 0 ? active_isa() : static_cast<Isa>(forced);
}

bool force_ops_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

void reset_ops_isa() { g_forced_isa.store(-1, std::memory_order_relaxed); }

void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  switch (ops_isa()) {
    case Isa::kAvx512: return avx512::silu_mul_row(gate, up, out, n);
    case Isa::kAvx2: return avx2::silu_mul_row(gate, up, out, n);
    case Isa::kScalar: return scalar::silu_mul_row(gate, up, out, n);
  }
}

void add_row(const float* a, const float* b, float* out, int64_t n) {
  switch (ops_isa()) {
    case Isa::kAvx512: return avx512::add_row(a, b, out, n);
    case Isa::kAvx2: return avx2::add_row(a, b, out, n);
    case Isa::kScalar: return scalar::add_row(a, b, out, n);
  }
}

bool convert_row(const float* src, ElemType dst_type, void* dst, int64_t n) {
  if (dst_type == ElemType::kF32) {
    if (dst != src) std::memmove(dst, src, static_cast<size_t>(n) * sizeof(float));
    return true;
  }
  auto* out = static_cast<uint16_t*>(dst);
  const Isa isa = ops_isa();
  if (dst_type == ElemType::kF16) {
    switch (isa) {
      case Isa::kAvx512: avx512::convert_f16_row(src, out, n); return true;
      case Isa::kAvx2: avx2::convert_f16_row(src, out, n); return true;
      case Isa::kScalar: scalar::convert_f16_row(src, out, n); return true;
    }
  }
  if (dst_type == ElemType::kBF16) {
    switch (isa) {
      case Isa::kAvx512: avx512::convert_bf16_row(src, out, n); return true;
      case Isa::kAvx2: avx2::convert_bf16_row(src, out, n); return true;
      case Isa::kScalar: scalar::convert_bf16_row(src, out, n); return true;
    }
  }
  return false;
}

}  // namespace tessera::kernels::cpu
