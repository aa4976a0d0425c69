// Shape/dtype contracts for every Backend op. Messages name the op, the operand and its shape
// ("rms_norm: weight f32[575] must have 576 values (x f32[4, 576])") so a caller can fix it.
#include "tessera/backend/op_checks.h"

#include <fmt/format.h>

#include <cmath>
#include <string>

#include "src/backend/op_checks_common.h"

namespace tessera::backend {
namespace {

bool is_plain_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

// The shared checks of src/backend/op_checks_common.h.
Status check_layout(std::string_view op, std::string_view name, const Tensor& t, int min_ndim,
                    int max_ndim) {
  if (t.empty()) return invalid_argument("{}: {} has no data", op, name);
  if (t.ndim() < min_ndim || t.ndim() > max_ndim) {
    if (min_ndim == max_ndim) {
      return invalid_argument("{}: {} {} must have {} dims", op, name, t.describe(), min_ndim);
    }
    return invalid_argument("{}: {} {} must have {} to {} dims", op, name, t.describe(), min_ndim,
                            max_ndim);
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
      return invalid_argument(
          "{}: {} {} stride {} of dim {} is not a positive multiple of {} bytes", op, name,
          t.describe(), t.stride_bytes(d), d, info.block_bytes);
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

namespace {

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

Status check_embedding(const Tensor& table, std::span<const int32_t> ids, const Tensor& out,
                       MetadataAccess access) {
  constexpr std::string_view kOp = "embedding";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "table", table, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (out.dim(0) != static_cast<int64_t>(ids.size()) || out.dim(1) != table.dim(1)) {
    return invalid_argument("embedding: out {} must be f32[{}, {}] for {} ids and table {}",
                            out.describe(), ids.size(), table.dim(1), ids.size(), table.describe());
  }
  if (access == MetadataAccess::kBackend) return Status::ok_status();
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
    return invalid_argument("matmul: out {} must be f32[{}, {}] for x {} and w {}", out.describe(),
                            x.dim(0), w.dim(0), x.describe(), w.describe());
  }
  return Status::ok_status();
}

Status check_matmul_batched(const Tensor& x, const Tensor& w, const Tensor& out) {
  constexpr std::string_view kOp = "matmul_batched";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "w", w, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (!is_plain_float(w.dtype())) {
    return invalid_argument("matmul_batched: w {} must be f32, f16 or bf16", w.describe());
  }
  if (x.dim(0) != w.dim(0) || x.dim(2) != w.dim(2)) {
    return invalid_argument("matmul_batched: x {} and w {} disagree on B or K", x.describe(),
                            w.describe());
  }
  if (out.dim(0) != x.dim(0) || out.dim(1) != x.dim(1) || out.dim(2) != w.dim(1)) {
    return invalid_argument("matmul_batched: out {} must be f32[{}, {}, {}] for x {} and w {}",
                            out.describe(), x.dim(0), x.dim(1), w.dim(1), x.describe(),
                            w.describe());
  }
  if (x.numel() > 0 && out.numel() > 0 && overlaps(x, out)) {
    return invalid_argument("matmul_batched: out {} must not overlap x {}", out.describe(),
                            x.describe());
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
      (p.original_max_position_embeddings <= 0 || !(p.beta_fast > 0.0f) || !(p.beta_slow > 0.0f) ||
       !std::isfinite(p.mscale))) {
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
    return invalid_argument(
        "attention: q {}, k_cache {} and v_cache {} disagree on head_dim, "
        "slots or kv heads",
        q.describe(), k.describe(), v.describe());
  }
  if (hkv == 0 || hq % hkv != 0) {
    return invalid_argument("attention: q heads ({}) must be a multiple of kv heads ({})", hq, hkv);
  }
  if (out.dim(0) != num_tokens || out.dim(1) != hq || out.dim(2) != v.dim(2)) {
    return invalid_argument("attention: out {} must be f32[{}, {}, {}] (q {}, v_cache {})",
                            out.describe(), num_tokens, hq, v.dim(2), q.describe(), v.describe());
  }
  if (static_cast<int64_t>(positions.size()) != num_tokens) {
    return invalid_argument("attention: q {} has {} tokens but {} positions were given",
                            q.describe(), num_tokens, positions.size());
  }
  for (size_t t = 0; t < positions.size(); ++t) {
    if (positions[t] < 0 || positions[t] >= num_slots) {
      return invalid_argument(
          "attention: position {} at token {} is outside the cache {} "
          "({} slots)",
          positions[t], t, k.describe(), num_slots);
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

namespace {

// The paged KV cache pair: 4-D, f32|f16, same dtype, blocks, block size and kv heads. An
// aliased v_cache (MLA) must be a view of k_cache's leading Dv values.
Status check_paged_caches(std::string_view op, const Tensor& k, const Tensor& v) {
  TESSERA_RETURN_IF_ERROR(check_layout(op, "k_cache", k, 4, 4));
  TESSERA_RETURN_IF_ERROR(check_layout(op, "v_cache", v, 4, 4));
  if (k.dtype() != DType::kF32 && k.dtype() != DType::kF16) {
    return invalid_argument("{}: k_cache {} must be f32 or f16", op, k.describe());
  }
  TESSERA_RETURN_IF_ERROR(check_dtype(op, "v_cache", v, k.dtype()));
  if (k.dim(0) != v.dim(0) || k.dim(1) != v.dim(1) || k.dim(2) != v.dim(2)) {
    return invalid_argument(
        "{}: k_cache {} and v_cache {} disagree on blocks, block size or kv "
        "heads",
        op, k.describe(), v.describe());
  }
  if (k.dim(0) <= 0 || k.dim(1) <= 0 || k.dim(2) <= 0) {
    return invalid_argument("{}: k_cache {} needs at least one block, slot and kv head", op,
                            k.describe());
  }
  if (v.data() == k.data()) {
    for (int d = 0; d < 3; ++d) {
      if (v.stride_bytes(d) != k.stride_bytes(d)) {
        return invalid_argument(
            "{}: v_cache {} aliases k_cache {} but is not a view of its "
            "leading values (stride {} vs {} of dim {})",
            op, v.describe(), k.describe(), v.stride_bytes(d), k.stride_bytes(d), d);
      }
    }
    if (v.dim(3) > k.dim(3)) {
      return invalid_argument("{}: v_cache {} aliases k_cache {} so Dv ({}) must be <= D ({})", op,
                              v.describe(), k.describe(), v.dim(3), k.dim(3));
    }
  }
  return Status::ok_status();
}

}  // namespace

Status check_paged_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                             std::span<const int32_t> query_start,
                             std::span<const int32_t> seq_lens, const Tensor& block_tables,
                             float scale, const Tensor& out, MetadataAccess access) {
  constexpr std::string_view kOp = "paged_attention";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "q", q, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "block_tables", block_tables, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "q", q, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "block_tables", block_tables, DType::kI32));
  TESSERA_RETURN_IF_ERROR(check_paged_caches(kOp, k, v));
  const int64_t num_tokens = q.dim(0);
  const int64_t hq = q.dim(1);
  const int64_t num_blocks = k.dim(0);
  const int64_t block_size = k.dim(1);
  const int64_t hkv = k.dim(2);
  if (k.dim(3) != q.dim(2)) {
    return invalid_argument("paged_attention: q {} and k_cache {} disagree on head_dim",
                            q.describe(), k.describe());
  }
  if (hq % hkv != 0) {
    return invalid_argument("paged_attention: q heads ({}) must be a multiple of kv heads ({})", hq,
                            hkv);
  }
  if (out.dim(0) != num_tokens || out.dim(1) != hq || out.dim(2) != v.dim(3)) {
    return invalid_argument("paged_attention: out {} must be f32[{}, {}, {}] (q {}, v_cache {})",
                            out.describe(), num_tokens, hq, v.dim(3), q.describe(), v.describe());
  }
  const int64_t num_seqs = static_cast<int64_t>(seq_lens.size());
  if (static_cast<int64_t>(query_start.size()) != num_seqs + 1) {
    return invalid_argument(
        "paged_attention: query_start has {} entries but {} seq_lens need "
        "{}",
        query_start.size(), num_seqs, num_seqs + 1);
  }
  if (block_tables.dim(0) != num_seqs) {
    return invalid_argument(
        "paged_attention: block_tables {} must have one row per sequence "
        "({})",
        block_tables.describe(), num_seqs);
  }
  if (!std::isfinite(scale)) {
    return invalid_argument("paged_attention: scale {} must be finite", scale);
  }
  if (access == MetadataAccess::kBackend) return Status::ok_status();
  if (query_start[0] != 0 || query_start[num_seqs] != num_tokens) {
    return invalid_argument(
        "paged_attention: query_start must run from 0 to num_tokens {} "
        "(q {}), got {} .. {}",
        num_tokens, q.describe(), query_start[0], query_start[num_seqs]);
  }
  const int64_t max_blocks = block_tables.dim(1);
  const int64_t row_stride = block_tables.stride_bytes(0) / 4;
  const auto* table = block_tables.data_as<const int32_t>();
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t n = static_cast<int64_t>(query_start[s + 1]) - query_start[s];
    if (n < 0) {
      return invalid_argument(
          "paged_attention: query_start is not monotone at sequence {} "
          "({} then {})",
          s, query_start[s], query_start[s + 1]);
    }
    if (seq_lens[s] < n) {
      return invalid_argument(
          "paged_attention: sequence {} has {} new tokens but seq_len {} "
          "(must be >= its new tokens)",
          s, n, seq_lens[s]);
    }
    const int64_t used_blocks = (static_cast<int64_t>(seq_lens[s]) + block_size - 1) / block_size;
    if (used_blocks > max_blocks) {
      return invalid_argument(
          "paged_attention: sequence {} (seq_len {}) needs {} blocks of {} "
          "but block_tables {} has {} per sequence",
          s, seq_lens[s], used_blocks, block_size, block_tables.describe(), max_blocks);
    }
    for (int64_t b = 0; b < used_blocks; ++b) {
      const int32_t id = table[s * row_stride + b];
      if (id < 0 || id >= num_blocks) {
        return invalid_argument(
            "paged_attention: block id {} (sequence {}, logical block {}) is "
            "outside the cache {} ({} blocks)",
            id, s, b, k.describe(), num_blocks);
      }
    }
  }
  return Status::ok_status();
}

Status check_kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                       const Tensor& k_cache, const Tensor& v_cache, MetadataAccess access) {
  constexpr std::string_view kOp = "kv_append";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "k", k, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "v", v, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "k", k, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "v", v, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_paged_caches(kOp, k_cache, v_cache));
  const int64_t num_tokens = k.dim(0);
  if (v.dim(0) != num_tokens || k.dim(1) != k_cache.dim(2) || v.dim(1) != v_cache.dim(2) ||
      k.dim(2) != k_cache.dim(3) || v.dim(2) != v_cache.dim(3)) {
    return invalid_argument(
        "kv_append: k {} and v {} must be [num_tokens, kv heads, head_dim] "
        "of k_cache {} and v_cache {}",
        k.describe(), v.describe(), k_cache.describe(), v_cache.describe());
  }
  if (static_cast<int64_t>(slot_mapping.size()) != num_tokens) {
    return invalid_argument("kv_append: k {} has {} tokens but {} slots were given", k.describe(),
                            num_tokens, slot_mapping.size());
  }
  if (access == MetadataAccess::kBackend) return Status::ok_status();
  const int64_t num_slots = k_cache.dim(0) * k_cache.dim(1);
  for (size_t t = 0; t < slot_mapping.size(); ++t) {
    if (slot_mapping[t] >= num_slots) {
      return invalid_argument(
          "kv_append: slot {} at token {} is outside the cache {} ({} "
          "slots)",
          slot_mapping[t], t, k_cache.describe(), num_slots);
    }
  }
  return Status::ok_status();
}

Status check_moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                       const Tensor& out_ids, const Tensor& out_weights) {
  constexpr std::string_view kOp = "moe_route";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "logits", logits, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out_ids", out_ids, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out_weights", out_weights, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "logits", logits, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out_ids", out_ids, DType::kI32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out_weights", out_weights, DType::kF32));
  const int64_t tokens = logits.dim(0), experts = logits.dim(1);
  if (!bias.empty()) {
    TESSERA_RETURN_IF_ERROR(check_layout(kOp, "bias", bias, 1, 1));
    TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "bias", bias, DType::kF32));
    if (bias.dim(0) != experts) {
      return invalid_argument("moe_route: bias {} must have {} values (logits {})", bias.describe(),
                              experts, logits.describe());
    }
    if (params.scoring != MoeRouteParams::Scoring::kSigmoid) {
      return invalid_argument("moe_route: a selection bias needs sigmoid scoring");
    }
  }
  if (params.top_k < 1 || params.top_k > experts) {
    return invalid_argument("moe_route: top_k {} must be in [1, {}] (logits {})", params.top_k,
                            experts, logits.describe());
  }
  if (params.n_group < 1 || experts % params.n_group != 0) {
    return invalid_argument("moe_route: n_group {} must divide the {} experts", params.n_group,
                            experts);
  }
  if (params.topk_group < 1 || params.topk_group > params.n_group) {
    return invalid_argument("moe_route: topk_group {} must be in [1, n_group {}]",
                            params.topk_group, params.n_group);
  }
  if (params.top_k > params.topk_group * (experts / params.n_group)) {
    return invalid_argument("moe_route: top_k {} exceeds the {} experts of {} kept groups",
                            params.top_k, params.topk_group * (experts / params.n_group),
                            params.topk_group);
  }
  if (params.scoring == MoeRouteParams::Scoring::kSigmoid && params.n_group > 1 &&
      experts / params.n_group < 2) {
    return invalid_argument("moe_route: sigmoid group scores need >= 2 experts per group ({} / {})",
                            experts, params.n_group);
  }
  if (!std::isfinite(params.routed_scaling_factor)) {
    return invalid_argument("moe_route: routed_scaling_factor {} is not finite",
                            params.routed_scaling_factor);
  }
  for (const Tensor* o : {&out_ids, &out_weights}) {
    if (o->dim(0) != tokens || o->dim(1) != params.top_k) {
      return invalid_argument("moe_route: {} must be [{}, {}] for logits {} and top_k {}",
                              o->describe(), tokens, params.top_k, logits.describe(), params.top_k);
    }
  }
  return Status::ok_status();
}

Status check_moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                                const Tensor& out) {
  constexpr std::string_view kOp = "moe_grouped_matmul";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "w", w, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "ids", ids, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "ids", ids, DType::kI32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (x.dim(1) != w.dim(2)) {
    return invalid_argument("moe_grouped_matmul: x {} and w {} disagree on K ({} vs {})",
                            x.describe(), w.describe(), x.dim(1), w.dim(2));
  }
  if (ids.dim(0) != x.dim(0)) {
    return invalid_argument("moe_grouped_matmul: ids {} must have {} rows (x {})", ids.describe(),
                            x.dim(0), x.describe());
  }
  if (out.dim(0) != x.dim(0) || out.dim(1) != ids.dim(1) || out.dim(2) != w.dim(1)) {
    return invalid_argument(
        "moe_grouped_matmul: out {} must be f32[{}, {}, {}] for x {}, ids {} "
        "and w {}",
        out.describe(), x.dim(0), ids.dim(1), w.dim(1), x.describe(), ids.describe(), w.describe());
  }
  const int64_t experts = w.dim(0);
  for (int64_t t = 0; t < ids.dim(0); ++t) {
    const auto* row = reinterpret_cast<const int32_t*>(static_cast<const char*>(ids.data()) +
                                                       t * ids.stride_bytes(0));
    for (int64_t j = 0; j < ids.dim(1); ++j) {
      if (row[j] < 0 || row[j] >= experts) {
        return invalid_argument("moe_grouped_matmul: ids[{}, {}] = {} is not an expert of w {}", t,
                                j, row[j], w.describe());
      }
    }
  }
  return Status::ok_status();
}

namespace {

// The scale tensor of a block-scaled weight: f32, ceil(N / block_n) x ceil(K / block_k) per
// expert (lead = the expert dim, or none for a dense weight).
Status check_block_scales(std::string_view op, const Tensor& w, const Tensor& s,
                          const BlockScaleParams& block, int lead) {
  TESSERA_RETURN_IF_ERROR(check_dtype(op, "w", w, DType::kFP8_E4M3));
  TESSERA_RETURN_IF_ERROR(check_dtype(op, "w_scale_inv", s, DType::kF32));
  if (block.block_n <= 0 || block.block_k <= 0) {
    return invalid_argument("{}: block shape [{}, {}] must be positive", op, block.block_n,
                            block.block_k);
  }
  const int64_t n = w.dim(lead), k = w.dim(lead + 1);
  const int64_t sn = (n + block.block_n - 1) / block.block_n;
  const int64_t sk = (k + block.block_k - 1) / block.block_k;
  if (s.dim(lead) != sn || s.dim(lead + 1) != sk || (lead == 1 && s.dim(0) != w.dim(0))) {
    return invalid_argument(
        "{}: w_scale_inv {} must be f32[{}{}, {}] for w {} and block [{}, {}] (one scale per "
        "block, partial edge blocks included)",
        op, s.describe(), lead == 1 ? fmt::format("{}, ", w.dim(0)) : "", sn, sk, w.describe(),
        block.block_n, block.block_k);
  }
  return Status::ok_status();
}

}  // namespace

Status check_matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                                 const BlockScaleParams& block, const Tensor& out) {
  constexpr std::string_view kOp = "matmul_block_scaled";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "w_scale_inv", w_scale_inv, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
  return check_block_scales(kOp, w, w_scale_inv, block, 0);
}

Status check_moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                             const Tensor& w_scale_inv, const Tensor& ids,
                                             const BlockScaleParams& block, const Tensor& out) {
  constexpr std::string_view kOp = "moe_grouped_matmul_block_scaled";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "w_scale_inv", w_scale_inv, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_moe_grouped_matmul(x, w, ids, out));
  return check_block_scales(kOp, w, w_scale_inv, block, 1);
}

kernels::BlockScaledMatmulArgs to_block_scaled_args(const Tensor& x, const Tensor& w,
                                                    const Tensor& w_scale_inv,
                                                    const BlockScaleParams& block,
                                                    const Tensor& out_rows) {
  kernels::BlockScaledMatmulArgs a;
  a.x = x.data_as<const float>();
  a.x_stride = x.stride_bytes(0) / 4;
  a.w = static_cast<const uint8_t*>(w.data());
  a.w_stride = w.stride_bytes(0);
  a.scale_inv = w_scale_inv.data_as<const float>();
  a.scale_stride = w_scale_inv.stride_bytes(0) / 4;
  a.out = out_rows.data_as<float>();
  a.out_stride = out_rows.stride_bytes(0) / 4;
  a.m = x.dim(0);
  a.n = w.dim(0);
  a.k = w.dim(1);
  a.block_n = block.block_n;
  a.block_k = block.block_k;
  return a;
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

Strides4 elem_strides4(const Tensor& t) {
  const int64_t elem = dtype_info(t.dtype()).block_bytes;
  return {t.stride_bytes(0) / elem, t.stride_bytes(1) / elem, t.stride_bytes(2) / elem};
}

kernels::RopeSpec to_rope_spec(const RopeParams& p) {
  kernels::RopeSpec s;
  switch (p.style) {
    case RopeParams::Style::kNeox:
      s.style = kernels::RopeSpec::Style::kNeox;
      break;
    case RopeParams::Style::kInterleaved:
      s.style = kernels::RopeSpec::Style::kInterleaved;
      break;
  }
  switch (p.scaling) {
    case RopeParams::Scaling::kNone:
      s.scaling = kernels::RopeSpec::Scaling::kNone;
      break;
    case RopeParams::Scaling::kLinear:
      s.scaling = kernels::RopeSpec::Scaling::kLinear;
      break;
    case RopeParams::Scaling::kLlama3:
      s.scaling = kernels::RopeSpec::Scaling::kLlama3;
      break;
    case RopeParams::Scaling::kYarn:
      s.scaling = kernels::RopeSpec::Scaling::kYarn;
      break;
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

kernels::MoeRouteSpec to_moe_route_spec(const MoeRouteParams& params, int64_t num_experts) {
  kernels::MoeRouteSpec spec;
  spec.sigmoid = params.scoring == MoeRouteParams::Scoring::kSigmoid;
  spec.num_experts = num_experts;
  spec.top_k = params.top_k;
  spec.n_group = params.n_group;
  spec.topk_group = params.topk_group;
  spec.norm_topk_prob = params.norm_topk_prob;
  spec.routed_scaling_factor = params.routed_scaling_factor;
  return spec;
}

kernels::ref::AttentionArgs to_attention_args(const Tensor& q, const Tensor& k_cache,
                                              const Tensor& v_cache,
                                              std::span<const int32_t> positions, float scale,
                                              const Tensor& out) {
  const Strides3 qs = elem_strides3(q);
  const Strides3 ks = elem_strides3(k_cache);
  const Strides3 vs = elem_strides3(v_cache);
  const Strides3 os = elem_strides3(out);
  kernels::ref::AttentionArgs a{};
  a.q = q.data_as<const float>();
  a.q_tok = qs.s0;
  a.q_head = qs.s1;
  a.k = k_cache.data();
  a.k_tok = ks.s0;
  a.k_head = ks.s1;
  a.v = v_cache.data();
  a.v_tok = vs.s0;
  a.v_head = vs.s1;
  a.kv_type = k_cache.dtype();
  a.out = out.data_as<float>();
  a.o_tok = os.s0;
  a.o_head = os.s1;
  a.num_tokens = q.dim(0);
  a.num_q_heads = q.dim(1);
  a.num_kv_heads = k_cache.dim(1);
  a.head_dim = q.dim(2);
  a.v_head_dim = v_cache.dim(2);
  a.positions = positions.data();
  a.scale = scale;
  return a;
}

kernels::ref::PagedAttentionArgs to_paged_attention_args(const Tensor& q, const Tensor& k_cache,
                                                         const Tensor& v_cache,
                                                         std::span<const int32_t> query_start,
                                                         std::span<const int32_t> seq_lens,
                                                         const Tensor& block_tables, float scale,
                                                         const Tensor& out) {
  const Strides3 qs = elem_strides3(q);
  const Strides4 ks = elem_strides4(k_cache);
  const Strides4 vs = elem_strides4(v_cache);
  const Strides3 os = elem_strides3(out);
  kernels::ref::PagedAttentionArgs a{};
  a.q = q.data_as<const float>();
  a.q_tok = qs.s0;
  a.q_head = qs.s1;
  a.k = k_cache.data();
  a.k_block = ks.s0;
  a.k_slot = ks.s1;
  a.k_head = ks.s2;
  a.v = v_cache.data();
  a.v_block = vs.s0;
  a.v_slot = vs.s1;
  a.v_head = vs.s2;
  a.kv_type = k_cache.dtype();
  a.out = out.data_as<float>();
  a.o_tok = os.s0;
  a.o_head = os.s1;
  a.num_seqs = static_cast<int64_t>(seq_lens.size());
  a.num_q_heads = q.dim(1);
  a.num_kv_heads = k_cache.dim(2);
  a.head_dim = q.dim(2);
  a.v_head_dim = v_cache.dim(3);
  a.block_size = k_cache.dim(1);
  a.query_start = query_start.data();
  a.seq_lens = seq_lens.data();
  a.block_tables = block_tables.data_as<const int32_t>();
  a.bt_stride = block_tables.stride_bytes(0) / 4;
  a.scale = scale;
  return a;
}

}  // namespace tessera::backend
