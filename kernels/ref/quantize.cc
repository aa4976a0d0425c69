// Scalar round-to-nearest quantizers, written from the GGUF block layouts in types.h.
#include "kernels/ref/quantize.h"

#include <algorithm>
#include <cmath>

namespace tessera::kernels::ref {
namespace {

int round_clamp(float v, int lo, int hi) {
  const int q = static_cast<int>(std::lrintf(v));
  return std::clamp(q, lo, hi);
}

float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax;
}

// Symmetric int8 quantization of n values: returns the scale d, writes q in [-127, 127].
float quantize_sym8(const float* x, int8_t* q, int n) {
  const float amax = abs_max(x, n);
  const float d = amax / 127.0f;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(round_clamp(x[i] * id, -127, 127));
  return d;
}

}  // namespace

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = quantize_sym8(x + b * kQK8_0, y[b].qs, kQK8_0);
    y[b].d = f32_to_f16(d);
  }
}

void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_1; ++b) {
    const float d = quantize_sym8(x + b * kQK8_1, y[b].qs, kQK8_1);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) sum += y[b].qs[j];
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    y[b].d = quantize_sym8(x + b * kQK_K, y[b].qs, kQK_K);
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[b].qs[g * 16 + j];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float* v = x + b * kQK4_0;
    // Signed value of largest magnitude maps to -8 so the full range [-8, 7] is used.
    float vmax = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(v[j]) > std::fabs(vmax)) vmax = v[j];
    }
    const float d = vmax / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int lo = round_clamp(v[j] * id + 8.0f, 0, 15);
      const int hi = round_clamp(v[j + kQK4_0 / 2] * id + 8.0f, 0, 15);
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_1; ++b) {
    const float* v = x + b * kQK4_1;
    const float lo = *std::min_element(v, v + kQK4_1);
    const float hi = *std::max_element(v, v + kQK4_1);
    const float d = (hi - lo) / 15.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(lo);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int q0 = round_clamp((v[j] - lo) * id, 0, 15);
      const int q1 = round_clamp((v[j + kQK4_1 / 2] - lo) * id, 0, 15);
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_k(const float* x, BlockQ4_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* v = x + b * kQK_K;
    float scales[8], mins[8];  // per 32-value sub-block: value = scale * q - min
    for (int j = 0; j < 8; ++j) {
      const float* s = v + 32 * j;
      const float lo = std::min(0.0f, *std::min_element(s, s + 32));
      const float hi = *std::max_element(s, s + 32);
      scales[j] = (hi - lo) / 15.0f;
      mins[j] = -lo;
    }
    const float max_scale = *std::max_element(scales, scales + 8);
    const float max_min = *std::max_element(mins, mins + 8);
    const float d = max_scale / 63.0f;
    const float dmin = max_min / 63.0f;
    y[b].d = f32_to_f16(d);
    y[b].dmin = f32_to_f16(dmin);
    // Use the f16-rounded super-scales so the 6-bit codes fit what dequantization will see.
    const float dq = f16_to_f32(y[b].d);
    const float dmq = f16_to_f32(y[b].dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(dq > 0.0f ? round_clamp(scales[j] / dq, 0, 63) : 0);
      mn[j] = static_cast<uint8_t>(dmq > 0.0f ? round_clamp(mins[j] / dmq, 0, 63) : 0);
    }
    uint8_t* p = y[b].scales;
    for (int j = 0; j < 4; ++j) {
      p[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
      p[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
      p[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
    }
    for (int g = 0; g < 4; ++g) {  // 64 values: sub-block 2g in low nibbles, 2g+1 in high
      for (int l = 0; l < 32; ++l) {
        int q[2];
        for (int h = 0; h < 2; ++h) {
          const int j = 2 * g + h;
          const float step = dq * sc[j];
          const float offset = dmq * mn[j];
          q[h] = step > 0.0f ? round_clamp((v[64 * g + 32 * h + l] + offset) / step, 0, 15) : 0;
        }
        y[b].qs[32 * g + l] = static_cast<uint8_t>(q[0] | (q[1] << 4));
      }
    }
  }
}

void quantize_row_q6_k(const float* x, BlockQ6_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* v = x + b * kQK_K;
    float scales[16];  // per 16 values: value = scale * (q - 32), q - 32 in [-32, 31]
    for (int j = 0; j < 16; ++j) {
      float vmax = 0.0f;
      for (int i = 0; i < 16; ++i) {
        if (std::fabs(v[16 * j + i]) > std::fabs(vmax)) vmax = v[16 * j + i];
      }
      scales[j] = vmax / -32.0f;
    }
    float amax = 0.0f;
    for (float s : scales) amax = std::max(amax, std::fabs(s));
    const float d = amax / 127.0f;
    y[b].d = f32_to_f16(d);
    const float dq = f16_to_f32(y[b].d);
    uint8_t q[kQK_K];
    for (int j = 0; j < 16; ++j) {
      const int sc = dq > 0.0f ? round_clamp(scales[j] / dq, -127, 127) : 0;
      y[b].scales[j] = static_cast<int8_t>(sc);
      const float step = dq * sc;
      for (int i = 0; i < 16; ++i) {
        const int qi = step != 0.0f ? round_clamp(v[16 * j + i] / step, -32, 31) : 0;
        q[16 * j + i] = static_cast<uint8_t>(qi + 32);
      }
    }
    // Layout per 128-value half: ql[l] holds values l (low) and l+64 (high); ql[l+32] holds
    // l+32 and l+96; qh[l] holds the top two bits of l, l+32, l+64, l+96 at bits 0,2,4,6.
    for (int half = 0; half < 2; ++half) {
      const uint8_t* qq = q + 128 * half;
      uint8_t* ql = y[b].ql + 64 * half;
      uint8_t* qh = y[b].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((qq[l] & 0x0f) | ((qq[l + 64] & 0x0f) << 4));
        ql[l + 32] = static_cast<uint8_t>((qq[l + 32] & 0x0f) | ((qq[l + 96] & 0x0f) << 4));
        qh[l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                     ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
      }
    }
  }
}

bool quantize_row(ElemType type, const float* src, void* dst, int64_t n) {
  const ElemTraits t = elem_traits(type);
  if (!t.known || t.block_elems <= 0 || n % t.block_elems != 0) return false;
  switch (type) {
    case ElemType::kF32: std::copy(src, src + n, static_cast<float*>(dst)); return true;
    case ElemType::kF16:
      for (int64_t i = 0; i < n; ++i) static_cast<f16_bits*>(dst)[i] = f32_to_f16(src[i]);
      return true;
    case ElemType::kBF16:
      for (int64_t i = 0; i < n; ++i) static_cast<bf16_bits*>(dst)[i] = f32_to_bf16(src[i]);
      return true;
    case ElemType::kQ4_0: quantize_row_q4_0(src, static_cast<BlockQ4_0*>(dst), n); return true;
    case ElemType::kQ4_1: quantize_row_q4_1(src, static_cast<BlockQ4_1*>(dst), n); return true;
    case ElemType::kQ8_0: quantize_row_q8_0(src, static_cast<BlockQ8_0*>(dst), n); return true;
    case ElemType::kQ8_1: quantize_row_q8_1(src, static_cast<BlockQ8_1*>(dst), n); return true;
    case ElemType::kQ4_K: quantize_row_q4_k(src, static_cast<BlockQ4_K*>(dst), n); return true;
    case ElemType::kQ6_K: quantize_row_q6_k(src, static_cast<BlockQ6_K*>(dst), n); return true;
    case ElemType::kQ8_K: quantize_row_q8_k(src, static_cast<BlockQ8_K*>(dst), n); return true;
    case ElemType::kF64:
    case ElemType::kI8:
    case ElemType::kI16:
    case ElemType::kI32:
    case ElemType::kI64:
    case ElemType::kU8:
    case ElemType::kBool:
    case ElemType::kFP8_E4M3:
    case ElemType::kFP8_E5M2:
      return false;
  }
  return false;
}

}  // namespace tessera::kernels::ref
