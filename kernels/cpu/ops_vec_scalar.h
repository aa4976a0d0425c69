// Width-1 "vector" traits for the generic op kernels in ops_simd.h: the baseline x86-64 path
// (no intrinsics; the compiler may still auto-vectorise with SSE2).
// Invariant: same interface as VecAvx2 / VecAvx512, so one kernel body serves every ISA.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::cpu {
namespace {  // NOTE: internal linkage: each ISA's instantiations stay in their own object file.

struct VecScalar {
  using Reg = float;
  static constexpr int kWidth = 1;

  static Reg zero() { return 0.0f; }
  static Reg set1(float v) { return v; }
  static Reg load(const float* p) { return *p; }
  static Reg load_partial(const float* p, int) { return *p; }
  static void store(float* p, Reg v) { *p = v; }
  static void store_partial(float* p, Reg v, int) { *p = v; }
  static Reg load_f16(const uint16_t* p) { return f16_to_f32(*p); }
  static Reg load_f16_partial(const uint16_t* p, int) { return f16_to_f32(*p); }
  static void store_f16(uint16_t* p, Reg v) { *p = f32_to_f16(v); }
  static void store_f16_partial(uint16_t* p, Reg v, int) { *p = f32_to_f16(v); }
  static void store_bf16(uint16_t* p, Reg v) { *p = f32_to_bf16(v); }
  static void store_bf16_partial(uint16_t* p, Reg v, int) { *p = f32_to_bf16(v); }

  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg sub(Reg a, Reg b) { return a - b; }
  static Reg mul(Reg a, Reg b) { return a * b; }
  static Reg div(Reg a, Reg b) { return a / b; }
  static Reg fmadd(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg max(Reg a, Reg b) { return a > b ? a : b; }
  static Reg exp(Reg x) { return std::exp(x); }
  static float reduce_add(Reg v) { return v; }
  static float reduce_max(Reg v) { return v; }
};

}  // namespace
}  // namespace tessera::kernels::cpu
