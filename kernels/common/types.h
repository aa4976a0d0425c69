// Element types and GGUF block layouts shared by every kernel family (ref, cpu, cuda).
// Kernels see raw pointers only; this header is the one vocabulary they share with core/.
// Invariant: the enum values of ElemType equal GGML's type ids, so a GGUF tensor's type id
// maps to ElemType by a checked cast (see core/dtype.h).
#pragma once

#include <cstdint>
#include <cstring>

namespace tessera::kernels {

// NOTE: numbered as ggml_type so GGUF files map one-to-one; types ggml lacks use ids >= 200.
enum class ElemType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ4_K = 12,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kF64 = 28,
  kBF16 = 30,
  kFP8_E4M3 = 200,
  kFP8_E5M2 = 201,
  kU8 = 202,
  kBool = 203,
  kI64 = 204,
};

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleSize = 12;

using f16_bits = uint16_t;
using bf16_bits = uint16_t;

// Block layouts, byte-identical to GGUF on disk. Each block covers `kQK*` consecutive
// values of one row.
struct BlockQ4_0 {
  f16_bits d;               // scale
  uint8_t qs[kQK4_0 / 2];  // nibbles: low = element j, high = element j + 16
};
struct BlockQ4_1 {
  f16_bits d;  // scale
  f16_bits m;  // min
  uint8_t qs[kQK4_1 / 2];
};
struct BlockQ8_0 {
  f16_bits d;
  int8_t qs[kQK8_0];
};
// Activation block for Q4_1 / Q4_0 dot products: s = d * sum(qs).
struct BlockQ8_1 {
  float d;
  float s;
  int8_t qs[kQK8_1];
};
struct BlockQ4_K {
  f16_bits d;                  // super-block scale for quantized scales
  f16_bits dmin;               // super-block scale for quantized mins
  uint8_t scales[kKScaleSize];  // 8 scales + 8 mins, 6 bits each
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // 8-bit scales per 16 values
  f16_bits d;
};
// Activation block for K-quant dot products.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of groups of 16
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 40);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Values per block (1 for plain types) and bytes per block.
struct ElemTraits {
  int64_t block_elems;
  int64_t block_bytes;
  bool known;
};

constexpr ElemTraits elem_traits(ElemType t) {
  switch (t) {
    case ElemType::kF32: return {1, 4, true};
    case ElemType::kF16: return {1, 2, true};
    case ElemType::kBF16: return {1, 2, true};
    case ElemType::kF64: return {1, 8, true};
    case ElemType::kI8: return {1, 1, true};
    case ElemType::kU8: return {1, 1, true};
    case ElemType::kBool: return {1, 1, true};
    case ElemType::kI16: return {1, 2, true};
    case ElemType::kI32: return {1, 4, true};
    case ElemType::kI64: return {1, 8, true};
    case ElemType::kFP8_E4M3: return {1, 1, true};
    case ElemType::kFP8_E5M2: return {1, 1, true};
    case ElemType::kQ4_0: return {kQK4_0, sizeof(BlockQ4_0), true};
    case ElemType::kQ4_1: return {kQK4_1, sizeof(BlockQ4_1), true};
    case ElemType::kQ8_0: return {kQK8_0, sizeof(BlockQ8_0), true};
    case ElemType::kQ8_1: return {kQK8_1, sizeof(BlockQ8_1), true};
    case ElemType::kQ4_K: return {kQK_K, sizeof(BlockQ4_K), true};
    case ElemType::kQ6_K: return {kQK_K, sizeof(BlockQ6_K), true};
    case ElemType::kQ8_K: return {kQK_K, sizeof(BlockQ8_K), true};
  }
  return {0, 0, false};
}

// ---- scalar conversions (exact, round-to-nearest-even where narrowing) ----

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float f16_to_f32(f16_bits h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_to_f32(sign);
    // subnormal: value = mant * 2^-24
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

inline f16_bits f32_to_f16(float f) {
  const uint32_t x = f32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) {  // inf or nan
    return static_cast<f16_bits>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
  }
  if (absx >= 0x477ff000u) return static_cast<f16_bits>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // subnormal or zero in f16
    // value in units of 2^-24, rounded to nearest even
    const float a = bits_to_f32(absx);
    float scaled = a * 16777216.0f;  // 2^24
    uint32_t r = static_cast<uint32_t>(scaled);
    const float frac = scaled - static_cast<float>(r);
    if (frac > 0.5f || (frac == 0.5f && (r & 1u))) ++r;
    return static_cast<f16_bits>(sign | r);
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<f16_bits>(sign | h);
}

inline float bf16_to_f32(bf16_bits b) { return bits_to_f32(static_cast<uint32_t>(b) << 16); }

inline bf16_bits f32_to_bf16(float f) {
  uint32_t x = f32_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_bits>((x >> 16) | 0x40u);  // nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<bf16_bits>(x >> 16);
}

// FP8 E4M3 (OCP "fn" variant): bias 7, no infinities, 0x7f/0xff are NaN, max 448.
inline float fp8_e4m3_to_f32(uint8_t v) {
  const uint32_t sign = (v & 0x80u) << 24;
  const uint32_t exp = (v >> 3) & 0xf;
  const uint32_t mant = v & 0x7;
  if (exp == 0xf && mant == 0x7) return bits_to_f32(sign | 0x7fc00000u);
  if (exp == 0) {
    const float m = static_cast<float>(mant) * 0.001953125f;  // mant * 2^-9
    return sign ? -m : m;
  }
  return bits_to_f32(sign | ((exp + 120) << 23) | (mant << 20));
}

// FP8 E5M2: bias 15, IEEE-like with inf/nan; the top byte of an f16.
inline float fp8_e5m2_to_f32(uint8_t v) { return f16_to_f32(static_cast<f16_bits>(v) << 8); }

// Round-to-nearest-even, saturating to +-448 (as torch's float8_e4m3fn cast with clamping).
uint8_t f32_to_fp8_e4m3(float f);
// Round-to-nearest-even; overflow goes to inf as in IEEE.
uint8_t f32_to_fp8_e5m2(float f);

}  // namespace tessera::kernels
