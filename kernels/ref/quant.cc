// Scalar dequantization for plain and GGUF block types, written from the GGUF block layouts.
#include "kernels/ref/quant.h"

namespace tessera::kernels::ref {
namespace {

void dequant_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[b * kQK4_0 + j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
      y[b * kQK4_0 + j + kQK4_0 / 2] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_1; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      y[b * kQK4_1 + j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
      y[b * kQK4_1 + j + kQK4_1 / 2] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) y[b * kQK8_0 + j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void dequant_q8_1(const BlockQ8_1* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_1; ++b) {
    for (int j = 0; j < kQK8_1; ++j) y[b * kQK8_1 + j] = static_cast<float>(x[b].qs[j]) * x[b].d;
  }
}

// Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes: entries 0..3 use the low six
// bits of bytes 0..3 (scales) and 4..7 (mins); entries 4..7 take their low four bits from
// bytes 8..11 and their top two bits from the spare high bits of bytes 0..7.
void q4_k_scale_min(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequant_q4_k(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float dmin = f16_to_f32(x[b].dmin);
    const uint8_t* q = x[b].qs;
    float* out = y + b * kQK_K;
    for (int group = 0; group < 4; ++group) {  // 64 values per group: two sub-blocks of 32
      uint8_t sc0, m0, sc1, m1;
      q4_k_scale_min(2 * group, x[b].scales, &sc0, &m0);
      q4_k_scale_min(2 * group + 1, x[b].scales, &sc1, &m1);
      for (int l = 0; l < 32; ++l) out[l] = d * sc0 * (q[l] & 0x0f) - dmin * m0;
      for (int l = 0; l < 32; ++l) out[32 + l] = d * sc1 * (q[l] >> 4) - dmin * m1;
      q += 32;
      out += 64;
    }
  }
}

void dequant_q6_k(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = f16_to_f32(x[b].d);
    const uint8_t* ql = x[b].ql;
    const uint8_t* qh = x[b].qh;
    const int8_t* sc = x[b].scales;
    float* out = y + b * kQK_K;
    for (int half = 0; half < 2; ++half) {  // 128 values per half
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * sc[is + 0] * q1;
        out[l + 32] = d * sc[is + 2] * q2;
        out[l + 64] = d * sc[is + 4] * q3;
        out[l + 96] = d * sc[is + 6] * q4;
      }
      out += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void dequant_q8_k(const BlockQ8_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    for (int j = 0; j < kQK_K; ++j) y[b * kQK_K + j] = x[b].d * x[b].qs[j];
  }
}

template <typename T, typename F>
void convert_plain(const void* src, float* dst, int64_t n, F f) {
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = f(s[i]);
}

}  // namespace

bool dequantize_row(ElemType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case ElemType::kF32: convert_plain<float>(src, dst, n, [](float v) { return v; }); return true;
    case ElemType::kF64:
      convert_plain<double>(src, dst, n, [](double v) { return static_cast<float>(v); });
      return true;
    case ElemType::kF16: convert_plain<uint16_t>(src, dst, n, f16_to_f32); return true;
    case ElemType::kBF16: convert_plain<uint16_t>(src, dst, n, bf16_to_f32); return true;
    case ElemType::kFP8_E4M3: convert_plain<uint8_t>(src, dst, n, fp8_e4m3_to_f32); return true;
    case ElemType::kFP8_E5M2: convert_plain<uint8_t>(src, dst, n, fp8_e5m2_to_f32); return true;
    case ElemType::kI8:
      convert_plain<int8_t>(src, dst, n, [](int8_t v) { return static_cast<float>(v); });
      return true;
    case ElemType::kU8:
    case ElemType::kBool:
      convert_plain<uint8_t>(src, dst, n, [](uint8_t v) { return static_cast<float>(v); });
      return true;
    case ElemType::kI16:
      convert_plain<int16_t>(src, dst, n, [](int16_t v) { return static_cast<float>(v); });
      return true;
    case ElemType::kI32:
      convert_plain<int32_t>(src, dst, n, [](int32_t v) { return static_cast<float>(v); });
      return true;
    case ElemType::kI64:
      convert_plain<int64_t>(src, dst, n, [](int64_t v) { return static_cast<float>(v); });
      return true;
    case ElemType::kQ4_0: dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, n); return true;
    case ElemType::kQ4_1: dequant_q4_1(static_cast<const BlockQ4_1*>(src), dst, n); return true;
    case ElemType::kQ8_0: dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, n); return true;
    case ElemType::kQ8_1: dequant_q8_1(static_cast<const BlockQ8_1*>(src), dst, n); return true;
    case ElemType::kQ4_K: dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, n); return true;
    case ElemType::kQ6_K: dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, n); return true;
    case ElemType::kQ8_K: dequant_q8_k(static_cast<const BlockQ8_K*>(src), dst, n); return true;
  }
  return false;
}

}  // namespace tessera::kernels::ref
