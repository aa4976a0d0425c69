// Shape/dtype contracts for every Backend op. Messages name the op, the operand and its shape
// ("rms_norm: weight f32[575] must have 576 values (x f32[4, 576])") so a caller can fix it.
#include "tessera/backend/op_checks.h"

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace tessera::backend {
namespace {

bool is_plain_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// Present, `ndim` dims, innermost contiguous, strides whole positive multiples of the element
// (or block) size, and no dim empty unless allowed.
Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int min_ndim,
                    int max_ndim) {
  if (t.empty()) return invalid_argument("{}: {} has no data", op, name);
  if (t.ndim() < min_ndim || t.ndim() > max_ndim) {
    if (min_ndim == max_ndim) {
      return invalid_argument("{}: {} {} must have {} dims", op, name, t.describe(), min_ndim);
    }
    return invalid_argument("{}: {} {} must have {} to {} dims", op, name, t.describe(),
                            min_ndim, max_ndim);
  }
  const DTypeInfo& info = dtype_info(t.dtype());
  if (t.stride_bytes(-1) != info.block_bytes) {
    return invalid_argument("{}: {} {} must be contiguous in its last dim (stride {} bytes)", op,
                            name, t.describe(), t.stride_bytes(-1));
  }
  if (t.dim(-1) % info.block_elems != 0) {
    return invalid_argument("{}: {} {} last dim must be a multiple of the {} block size {}", op,
                            name, t.describe(), info.name, info.block_elems);
  }
  for (int d = 0; d + 1 < t.ndim(); ++d) {
    if (t.stride_bytes(d) <= 0 || t.stride_bytes(d) % info.block_bytes != 0) {
      return invalid_argument("{}: {} {} stride {} of dim {} is not a positive multiple of {} bytes",
                              op, name, t.describe(), t.stride_bytes(d), d, info.block_bytes);
    }
  }
  return Status::ok_status();
}

Status check_dtype(std::string_view op, std::string_view name, const Tensor& t, DType want) {
  if (t.dtype() != want) {
    return invalid_argument("{}: {} {} must be {}", op, name, t.describe(), dtype_name(want));
  }
  return Status::ok_status();
}

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim() != b.ndim()) return false;
  for (int d = 0; d < a.ndim(); ++d) {
    if (a.dim(d) != b.dim(d)) return false;
  }
  return true;
}

Status check_same_shape(std::string_view op, std::string_view a_name, const Tensor& a,
                        std::string_view b_name, const Tensor& b) {
  if (!same_shape(a, b)) {
    return invalid_argument("{}: {} {} and {} {} must have the same shape", op, a_name,
                            a.describe(), b_name, b.describe());
  }
  return Status::ok_status();
}

Status check_elementwise_f32(std::string_view op, std::string_view a_name, const Tensor& a,
                             std::string_view b_name, const Tensor& b, const Tensor& out) {
  TESSERA_RETURN_IF_ERROR(check_layout(op, a_name, a, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_layout(op, b_name, b, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_layout(op, "out", out, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_dtype(op, a_name, a, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(op, b_name, b, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(op, "out", out, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_same_shape(op, a_name, a, b_name, b));
  return check_same_shape(op, a_name, a, "out", out);
}

}  // namespace

Status check_embedding(const Tensor& table, std::span<const int32_t> ids, const Tensor& out) {
  constexpr std::string_view kOp = "embedding";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "table", table, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (out.dim(0) != static_cast<int64_t>(ids.size()) || out.dim(1) != table.dim(1)) {
    return invalid_argument("embedding: out {} must be f32[{}, {}] for {} ids and table {}",
                            out.describe(), ids.size(), table.dim(1), ids.size(),
                            table.describe());
  }
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.dim(0)) {
      return invalid_argument("embedding: id {} at index {} is outside the table {} (vocab {})",
                              ids[t], t, table.describe(), table.dim(0));
    }
  }
  return Status::ok_status();
}

Status check_matmul(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr std::string_view kOp = "matmul";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "w", w, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (x.dim(1) != w.dim(1)) {
    return invalid_argument("matmul: x {} and w {} disagree on K ({} vs {})", x.describe(),
                            w.describe(), x.dim(1), w.dim(1));
  }
  if (out.dim(0) != x.dim(0) || out.dim(1) != w.dim(0)) {
    return invalid_argument("matmul: out {} must be f32[{}, {}] for x {} and w {}",
                            out.describe(), x.dim(0), w.dim(0), x.describe(), w.describe());
  }
  return Status::ok_status();
}

Status check_rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  constexpr std::string_view kOp = "rms_norm";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "weight", weight, 1, 1));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "weight", weight, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_same_shape(kOp, "x", x, "out", out));
  if (weight.dim(0) != x.dim(-1)) {
    return invalid_argument("rms_norm: weight {} must have {} values (x {})", weight.describe(),
                            x.dim(-1), x.describe());
  }
  if (x.dim(-1) == 0) return invalid_argument("rms_norm: x {} has empty rows", x.describe());
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return invalid_argument("rms_norm: eps {} must be finite and >= 0", eps);
  }
  return Status::ok_status();
}

Status check_rope(const Tensor& x, std::span<const int32_t> positions, const RopeParams& p) {
  constexpr std::string_view kOp = "rope";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  if (x.dim(0) != static_cast<int64_t>(positions.size())) {
    return invalid_argument("rope: x {} has {} tokens but {} positions were given", x.describe(),
                            x.dim(0), positions.size());
  }
  if (p.rot_dim <= 0 || p.rot_dim % 2 != 0 || p.rot_dim > x.dim(2)) {
    return invalid_argument("rope: rot_dim {} must be even and in (0, head_dim {}] (x {})",
                            p.rot_dim, x.dim(2), x.describe());
  }
  if (!(p.theta > 1.0f) || !std::isfinite(p.theta)) {
    return invalid_argument("rope: theta {} must be finite and > 1", p.theta);
  }
  if (p.scaling != RopeParams::Scaling::kNone && (!(p.factor > 0.0f) || !std::isfinite(p.factor))) {
    return invalid_argument("rope: scaling factor {} must be finite and > 0", p.factor);
  }
  if (p.scaling == RopeParams::Scaling::kLlama3 &&
      (!(p.high_freq_factor > p.low_freq_factor) || !(p.low_freq_factor > 0.0f) ||
       p.original_max_position_embeddings <= 0)) {
    return invalid_argument(
        "rope: llama3 needs 0 < low_freq_factor ({}) < high_freq_factor ({}) and "
        "original_max_position_embeddings ({}) > 0",
        p.low_freq_factor, p.high_freq_factor, p.original_max_position_embeddings);
  }
  if (p.scaling == RopeParams::Scaling::kYarn &&
      (p.original_max_position_embeddings <= 0 || !(p.beta_fast > 0.0f) ||
       !(p.beta_slow > 0.0f) || !std::isfinite(p.mscale))) {
    return invalid_argument(
        "rope: yarn needs original_max_position_embeddings ({}) > 0, beta_fast ({}) and "
        "beta_slow ({}) > 0 and a finite mscale ({})",
        p.original_max_position_embeddings, p.beta_fast, p.beta_slow, p.mscale);
  }
  for (size_t t = 0; t < positions.size(); ++t) {
    if (positions[t] < 0) {
      return invalid_argument("rope: position {} at token {} is negative", positions[t], t);
    }
  }
  return Status::ok_status();
}

Status check_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                       std::span<const int32_t> positions, float scale, const Tensor& out) {
  constexpr std::string_view kOp = "attention";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "q", q, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "k_cache", k, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "v_cache", v, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "q", q, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (k.dtype() != DType::kF32 && k.dtype() != DType::kF16) {
    return invalid_argument("attention: k_cache {} must be f32 or f16", k.describe());
  }
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "v_cache", v, k.dtype()));
  const int64_t num_tokens = q.dim(0);
  const int64_t hq = q.dim(1);
  const int64_t hkv = k.dim(1);
  const int64_t num_slots = k.dim(0);
  if (k.dim(2) != q.dim(2) || v.dim(0) != num_slots || v.dim(1) != hkv) {
    return invalid_argument("attention: q {}, k_cache {} and v_cache {} disagree on head_dim, "
                            "slots or kv heads", q.describe(), k.describe(), v.describe());
  }
  if (hkv == 0 || hq % hkv != 0) {
    return invalid_argument("attention: q heads ({}) must be a multiple of kv heads ({})", hq, hkv);
  }
  if (out.dim(0) != num_tokens || out.dim(1) != hq || out.dim(2) != v.dim(2)) {
    return invalid_argument("attention: out {} must be f32[{}, {}, {}] (q {}, v_cache {})",
                            out.describe(), num_tokens, hq, v.dim(2), q.describe(),
                            v.describe());
  }
  if (static_cast<int64_t>(positions.size()) != num_tokens) {
    return invalid_argument("attention: q {} has {} tokens but {} positions were given",
                            q.describe(), num_tokens, positions.size());
  }
  for (size_t t = 0; t < positions.size(); ++t) {
    if (positions[t] < 0 || positions[t] >= num_slots) {
      return invalid_argument("attention: position {} at token {} is outside the cache {} "
                              "({} slots)", positions[t], t, k.describe(), num_slots);
    }
  }
  if (!std::isfinite(scale)) return invalid_argument("attention: scale {} must be finite", scale);
  return Status::ok_status();
}

Status check_silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out) {
  return check_elementwise_f32("silu_mul", "gate", gate, "up", up, out);
}

Status check_add(const Tensor& a, const Tensor& b, const Tensor& out) {
  return check_elementwise_f32("add", "a", a, "b", b, out);
}

Status check_convert(const Tensor& src, const Tensor& dst) {
  constexpr std::string_view kOp = "convert";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "src", src, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "dst", dst, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "src", src, DType::kF32));
  if (!is_plain_float(dst.dtype())) {
    return invalid_argument("convert: dst {} must be f32, f16 or bf16", dst.describe());
  }
  return check_same_shape(kOp, "src", src, "dst", dst);
}

RowView row_view(const Tensor& t) {
  RowView v;
  v.base = static_cast<char*>(t.data());
  v.row_elems = t.dim(-1);
  v.outer_ndim = t.ndim() - 1;
  v.num_rows = 1;
  for (int d = 0; d < v.outer_ndim; ++d) {
    v.shape[d] = t.dim(d);
    v.stride_bytes[d] = t.stride_bytes(d);
    v.num_rows *= t.dim(d);
  }
  return v;
}

Strides3 elem_strides3(const Tensor& t) {
  const int64_t elem = dtype_info(t.dtype()).block_bytes;
  return {t.stride_bytes(0) / elem, t.stride_bytes(1) / elem};
}

kernels::RopeSpec to_rope_spec(const RopeParams& p) {
  kernels::RopeSpec s;
  switch (p.style) {
    case RopeParams::Style::kNeox: s.style = kernels::RopeSpec::Style::kNeox; break;
    case RopeParams::Style::kInterleaved: s.style = kernels::RopeSpec::Style::kInterleaved; break;
  }
  switch (p.scaling) {
    case RopeParams::Scaling::kNone: s.scaling = kernels::RopeSpec::Scaling::kNone; break;
    case RopeParams::Scaling::kLinear: s.scaling = kernels::RopeSpec::Scaling::kLinear; break;
    case RopeParams::Scaling::kLlama3: s.scaling = kernels::RopeSpec::Scaling::kLlama3; break;
    case RopeParams::Scaling::kYarn: s.scaling = kernels::RopeSpec::Scaling::kYarn; break;
  }
  s.rot_dim = p.rot_dim;
  s.theta = p.theta;
  s.factor = p.factor;
  s.low_freq_factor = p.low_freq_factor;
  s.high_freq_factor = p.high_freq_factor;
  s.original_max_position_embeddings = p.original_max_position_embeddings;
  s.beta_fast = p.beta_fast;
  s.beta_slow = p.beta_slow;
  s.mscale = p.mscale;
  return s;
}

}  // namespace tessera::backend
