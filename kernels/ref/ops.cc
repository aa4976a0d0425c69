// Reference non-matmul ops, written from their definitions (HF formulas for rope scaling).
// Everything accumulates in double; each output is rounded to f32 once.
#include "kernels/ref/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/ref/quant.h"

namespace tessera::kernels::ref {
namespace {

constexpr double kPi = std::numbers::pi;

// YaRN: the (fractional) dimension index at which a frequency completes `num_rotations`
// turns over the original context.
double yarn_correction_dim(double num_rotations, int dim, double base, int max_pos) {
  return dim * std::log(max_pos / (num_rotations * 2.0 * kPi)) / (2.0 * std::log(base));
}

void apply_llama3(const RopeSpec& s, int half, double* inv_freq) {
  const double old_len = s.original_max_position_embeddings;
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  for (int i = 0; i < half; ++i) {
    const double f = inv_freq[i];
    const double wavelen = 2.0 * kPi / f;
    if (wavelen < high_freq_wavelen) continue;  // high frequency: unchanged
    if (wavelen > low_freq_wavelen) {            // low frequency: fully interpolated
      inv_freq[i] = f / s.factor;
      continue;
    }
    const double smooth =
        (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    inv_freq[i] = (1.0 - smooth) * f / s.factor + smooth * f;
  }
}

void apply_yarn(const RopeSpec& s, int half, double* inv_freq) {
  const int dim = s.rot_dim;
  const int max_pos = s.original_max_position_embeddings;
  double low = std::floor(yarn_correction_dim(s.beta_fast, dim, s.theta, max_pos));
  double high = std::ceil(yarn_correction_dim(s.beta_slow, dim, s.theta, max_pos));
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int i = 0; i < half; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double extrapolated = inv_freq[i];
    const double interpolated = inv_freq[i] / s.factor;
    inv_freq[i] = interpolated * (1.0 - extrapolation_weight) + extrapolated * extrapolation_weight;
  }
}

void rotate_pair(float* a, float* b, double c, double s) {
  const double x0 = *a;
  const double x1 = *b;
  *a = static_cast<float>(x0 * c - x1 * s);
  *b = static_cast<float>(x0 * s + x1 * c);
}

double load_kv(ElemType type, const void* base, int64_t index) {
  if (type == ElemType::kF16) return f16_to_f32(static_cast<const f16_bits*>(base)[index]);
  return static_cast<const float*>(base)[index];
}

}  // namespace

double rope_inv_freq(const RopeSpec& s, double* inv_freq) {
  const int half = s.rot_dim / 2;
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(s.theta, static_cast<double>(2 * i) / s.rot_dim);
  }
  switch (s.scaling) {
    case RopeSpec::Scaling::kNone:
      return 1.0;
    case RopeSpec::Scaling::kLinear:
      for (int i = 0; i < half; ++i) inv_freq[i] /= s.factor;
      return 1.0;
    case RopeSpec::Scaling::kLlama3:
      apply_llama3(s, half, inv_freq);
      return 1.0;
    case RopeSpec::Scaling::kYarn:
      apply_yarn(s, half, inv_freq);
      return s.mscale;
  }
  return 1.0;
}

bool embedding_row(ElemType type, const void* row, float* out, int64_t n) {
  return dequantize_row(type, row, out, n);
}

void rms_norm_row(const float* x, const float* weight, float eps, float* out, int64_t n) {
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(static_cast<double>(x[i]) * inv_rms * weight[i]);
  }
}

void rope_token(float* x, int64_t num_heads, int64_t head_dim, int64_t head_stride,
                int32_t position, const RopeSpec& spec) {
  const int half = spec.rot_dim / 2;
  std::vector<double> inv_freq(half);
  const double attention_factor = rope_inv_freq(spec, inv_freq.data());
  for (int64_t h = 0; h < num_heads; ++h) {
    float* head = x + h * head_stride;
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position) * inv_freq[i];
      const double c = std::cos(angle) * attention_factor;
      const double s = std::sin(angle) * attention_factor;
      if (spec.style == RopeSpec::Style::kNeox) {
        rotate_pair(&head[i], &head[i + half], c, s);
      } else {
        rotate_pair(&head[2 * i], &head[2 * i + 1], c, s);
      }
    }
  }
}

void attention(const AttentionArgs& a) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  std::vector<double> scores;
  std::vector<double> acc(a.v_head_dim);
  for (int64_t t = 0; t < a.num_tokens; ++t) {
    const int64_t num_keys = static_cast<int64_t>(a.positions[t]) + 1;
    scores.assign(num_keys, 0.0);
    for (int64_t h = 0; h < a.num_q_heads; ++h) {
      const int64_t kvh = h / group;
      const float* q = a.q + t * a.q_tok + h * a.q_head;
      double max_score = -INFINITY;
      for (int64_t j = 0; j < num_keys; ++j) {
        const int64_t k_base = j * a.k_tok + kvh * a.k_head;
        double dot = 0.0;
        for (int64_t d = 0; d < a.head_dim; ++d) dot += q[d] * load_kv(a.kv_type, a.k, k_base + d);
        scores[j] = dot * a.scale;
        max_score = std::max(max_score, scores[j]);
      }
      double denom = 0.0;
      for (int64_t j = 0; j < num_keys; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < num_keys; ++j) {
        const int64_t v_base = j * a.v_tok + kvh * a.v_head;
        for (int64_t d = 0; d < a.v_head_dim; ++d) {
          acc[d] += scores[j] * load_kv(a.kv_type, a.v, v_base + d);
        }
      }
      float* out = a.out + t * a.o_tok + h * a.o_head;
      for (int64_t d = 0; d < a.v_head_dim; ++d) out[d] = static_cast<float>(acc[d] / denom);
    }
  }
}

void paged_attention(const PagedAttentionArgs& a) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  std::vector<double> scores;
  std::vector<double> acc(a.v_head_dim);
  for (int64_t s = 0; s < a.num_seqs; ++s) {
    const int64_t n = a.query_start[s + 1] - a.query_start[s];
    const int32_t* table = a.block_tables + s * a.bt_stride;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = a.query_start[s] + i;
      const int64_t num_keys = a.seq_lens[s] - n + i + 1;
      scores.assign(num_keys, 0.0);
      for (int64_t h = 0; h < a.num_q_heads; ++h) {
        const int64_t kvh = h / group;
        const float* q = a.q + t * a.q_tok + h * a.q_head;
        double max_score = -INFINITY;
        for (int64_t j = 0; j < num_keys; ++j) {
          const int64_t block = table[j / a.block_size];
          const int64_t k_base =
              block * a.k_block + (j % a.block_size) * a.k_slot + kvh * a.k_head;
          double dot = 0.0;
          for (int64_t d = 0; d < a.head_dim; ++d) {
            dot += q[d] * load_kv(a.kv_type, a.k, k_base + d);
          }
          scores[j] = dot * a.scale;
          max_score = std::max(max_score, scores[j]);
        }
        double denom = 0.0;
        for (int64_t j = 0; j < num_keys; ++j) {
          scores[j] = std::exp(scores[j] - max_score);
          denom += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < num_keys; ++j) {
          const int64_t block = table[j / a.block_size];
          const int64_t v_base =
              block * a.v_block + (j % a.block_size) * a.v_slot + kvh * a.v_head;
          for (int64_t d = 0; d < a.v_head_dim; ++d) {
            acc[d] += scores[j] * load_kv(a.kv_type, a.v, v_base + d);
          }
        }
        float* out = a.out + t * a.o_tok + h * a.o_head;
        for (int64_t d = 0; d < a.v_head_dim; ++d) out[d] = static_cast<float>(acc[d] / denom);
      }
    }
  }
}

void silu_mul_row(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void add_row(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

bool convert_row(const float* src, ElemType dst_type, void* dst, int64_t n) {
  if (dst_type == ElemType::kF32) {
    for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = src[i];
  } else if (dst_type == ElemType::kF16) {
    for (int64_t i = 0; i < n; ++i) static_cast<f16_bits*>(dst)[i] = f32_to_f16(src[i]);
  } else if (dst_type == ElemType::kBF16) {
    for (int64_t i = 0; i < n; ++i) static_cast<bf16_bits*>(dst)[i] = f32_to_bf16(src[i]);
  } else {
    return false;
  }
  return true;
}

}  // namespace tessera::kernels::ref
