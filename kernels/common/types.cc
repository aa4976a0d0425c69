// Narrowing conversions to the FP8 formats (the widening ones are inline in types.h).
#include "kernels/common/types.h"

#include <cmath>

namespace tessera::kernels {
namespace {

// Round-to-nearest-even encode of |f| into a 1-sign/E/M minifloat; `max_code` is the largest
// finite magnitude code. Codes are monotonic in value, so rounding carries into the exponent.
uint32_t encode_minifloat_abs(float abs_value, int mantissa_bits, int bias) {
  const float min_normal = std::ldexp(1.0f, 1 - bias);
  if (abs_value < min_normal) {
    const double q = std::nearbyint(static_cast<double>(abs_value) /
                                    std::ldexp(1.0, 1 - bias - mantissa_bits));
    return static_cast<uint32_t>(q);
  }
  const uint32_t bits = f32_to_bits(abs_value);
  const uint32_t exponent = (bits >> 23) - 127 + bias;
  const uint32_t mantissa = bits & 0x7fffffu;
  const int shift = 23 - mantissa_bits;
  uint32_t code = (exponent << mantissa_bits) | (mantissa >> shift);
  const uint32_t rem = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (code & 1u))) ++code;
  return code;
}

}  // namespace

uint8_t f32_to_fp8_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  if (std::isnan(f)) return sign | 0x7f;
  const float a = std::fabs(f);
  if (a >= 464.0f) return sign | 0x7e;  // saturate (464 is the rounding midpoint past 448)
  uint32_t code = encode_minifloat_abs(a, 3, 7);
  if (code > 0x7e) code = 0x7e;
  return static_cast<uint8_t>(sign | code);
}

uint8_t f32_to_fp8_e5m2(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  if (std::isnan(f)) return sign | 0x7e;
  const float a = std::fabs(f);
  if (std::isinf(a) || a >= 61440.0f) return sign | 0x7c;  // past max 57344 rounds to inf
  uint32_t code = encode_minifloat_abs(a, 2, 15);
  if (code > 0x7c) code = 0x7c;
  return static_cast<uint8_t>(sign | code);
}

}  // namespace tessera::kernels
