// The reference backend: op_checks, then the scalar kernels in kernels/ref, one row at a time
// on the calling thread. It is the oracle of tests/ops; it never shares code with the CPU path
// beyond the contracts and the rope frequency formulas.
#include <memory>
#include <utility>

#include "kernels/ref/fp8_matmul.h"
#include "kernels/ref/matmul.h"
#include "kernels/ref/moe.h"
#include "kernels/ref/ops.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

class ReferenceBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "reference"; }

  bool supports(Op op, DType a, DType b) const override {
    switch (op) {
      case Op::kEmbedding:
      case Op::kMatmul:
      case Op::kMoeGroupedMatmul:
        return dtype_info(a).is_quantized || a == DType::kF32 || a == DType::kF16 ||
               a == DType::kBF16;
      case Op::kAttention:
      case Op::kPagedAttention:
      case Op::kKvAppend:
        return a == DType::kF32 || a == DType::kF16;
      case Op::kConvert:
        return b == DType::kF32 || b == DType::kF16 || b == DType::kBF16;
      case Op::kRmsNorm:
      case Op::kRope:
      case Op::kSiluMul:
      case Op::kAdd:
      case Op::kMoeRoute:
        return true;
      case Op::kMatmulBlockScaled:
      case Op::kMoeGroupedMatmulBlockScaled:
        return a == DType::kFP8_E4M3 && b == DType::kF32;
      case Op::kCopy:
      case Op::kMoeCombine:
      case Op::kSample:
        return true;
      case Op::kMatmulInt8:
        return a == DType::kI8;
      case Op::kMatmulBatched:
        return a == DType::kF32 || a == DType::kF16 || a == DType::kBF16;
    }
    return false;
  }

  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_embedding(table, ids, out));
    const RowView o = row_view(out);
    const char* base = static_cast<const char*>(table.data());
    for (size_t t = 0; t < ids.size(); ++t) {
      const void* row = base + ids[t] * table.stride_bytes(0);
      if (!kernels::ref::embedding_row(table.dtype(), row, reinterpret_cast<float*>(o.row(t)),
                                       o.row_elems)) {
        return unimplemented("embedding: table dtype {} cannot be dequantized",
                             dtype_name(table.dtype()));
      }
    }
    return Status::ok_status();
  }

  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
    const bool ok = kernels::ref::matmul(
        w.dtype(), w.data(), w.stride_bytes(0), x.data_as<const float>(), x.stride_bytes(0) / 4,
        out.data_as<float>(), out.stride_bytes(0) / 4, x.dim(0), w.dim(0), x.dim(1));
    if (!ok) return unimplemented("matmul: weight {} is not supported", w.describe());
    return Status::ok_status();
  }

  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_rms_norm(x, weight, eps, out));
    const RowView xr = row_view(x);
    const RowView orow = row_view(out);
    for (int64_t r = 0; r < xr.num_rows; ++r) {
      kernels::ref::rms_norm_row(reinterpret_cast<const float*>(xr.row(r)),
                                 weight.data_as<const float>(), eps,
                                 reinterpret_cast<float*>(orow.row(r)), xr.row_elems);
    }
    return Status::ok_status();
  }

  Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) override {
    TESSERA_RETURN_IF_ERROR(check_rope(x, positions, params));
    const kernels::RopeSpec spec = to_rope_spec(params);
    const Strides3 s = elem_strides3(x);
    for (int64_t t = 0; t < x.dim(0); ++t) {
      kernels::ref::rope_token(x.data_as<float>() + t * s.s0, x.dim(1), x.dim(2), s.s1,
                               positions[t], spec);
    }
    return Status::ok_status();
  }

  Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                   std::span<const int32_t> positions, float scale, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_attention(q, k_cache, v_cache, positions, scale, out));
    const kernels::ref::AttentionArgs a =
        to_attention_args(q, k_cache, v_cache, positions, scale, out);
    kernels::ref::attention(a);
    return Status::ok_status();
  }

  Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_paged_attention(q, k_cache, v_cache, query_start, seq_lens,
                                                  block_tables, scale, out));
    const kernels::ref::PagedAttentionArgs a = to_paged_attention_args(
        q, k_cache, v_cache, query_start, seq_lens, block_tables, scale, out);
    kernels::ref::paged_attention(a);
    return Status::ok_status();
  }

  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                   Tensor k_cache, Tensor v_cache) override {
    TESSERA_RETURN_IF_ERROR(check_kv_append(k, v, slot_mapping, k_cache, v_cache));
    const int64_t block_size = k_cache.dim(1);
    for (size_t t = 0; t < slot_mapping.size(); ++t) {
      if (slot_mapping[t] < 0) continue;
      const int64_t block = slot_mapping[t] / block_size;
      const int64_t offset = slot_mapping[t] % block_size;
      for (const auto& [src, dst] : {std::pair<const Tensor*, Tensor*>{&k, &k_cache},
                                     std::pair<const Tensor*, Tensor*>{&v, &v_cache}}) {
        for (int64_t h = 0; h < src->dim(1); ++h) {
          const auto* row =
              reinterpret_cast<const float*>(static_cast<const char*>(src->data()) +
                                             t * src->stride_bytes(0) + h * src->stride_bytes(1));
          char* slot = static_cast<char*>(dst->data()) + block * dst->stride_bytes(0) +
                       offset * dst->stride_bytes(1) + h * dst->stride_bytes(2);
          kernels::ref::convert_row(row, dst->dtype(), slot, src->dim(2));
        }
      }
    }
    return Status::ok_status();
  }

  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_silu_mul(gate, up, out));
    const RowView g = row_view(gate);
    const RowView u = row_view(up);
    const RowView o = row_view(out);
    for (int64_t r = 0; r < g.num_rows; ++r) {
      kernels::ref::silu_mul_row(reinterpret_cast<const float*>(g.row(r)),
                                 reinterpret_cast<const float*>(u.row(r)),
                                 reinterpret_cast<float*>(o.row(r)), g.row_elems);
    }
    return Status::ok_status();
  }

  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_add(a, b, out));
    const RowView ar = row_view(a);
    const RowView br = row_view(b);
    const RowView o = row_view(out);
    for (int64_t r = 0; r < ar.num_rows; ++r) {
      kernels::ref::add_row(reinterpret_cast<const float*>(ar.row(r)),
                            reinterpret_cast<const float*>(br.row(r)),
                            reinterpret_cast<float*>(o.row(r)), ar.row_elems);
    }
    return Status::ok_status();
  }

  Status convert(const Tensor& src, Tensor dst) override {
    TESSERA_RETURN_IF_ERROR(check_convert(src, dst));
    const RowView s = row_view(src);
    const RowView d = row_view(dst);
    for (int64_t r = 0; r < s.num_rows; ++r) {
      if (!kernels::ref::convert_row(reinterpret_cast<const float*>(s.row(r)), dst.dtype(),
                                     d.row(r), s.row_elems)) {
        return unimplemented("convert: dst {} is not supported", dst.describe());
      }
    }
    return Status::ok_status();
  }

  Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                   Tensor out_ids, Tensor out_weights) override {
    TESSERA_RETURN_IF_ERROR(check_moe_route(logits, bias, params, out_ids, out_weights));
    const kernels::MoeRouteSpec spec = to_moe_route_spec(params, logits.dim(1));
    const float* b = bias.empty() ? nullptr : bias.data_as<const float>();
    for (int64_t t = 0; t < logits.dim(0); ++t) {
      kernels::ref::moe_route_token(logits.row(t).data_as<const float>(), b, spec,
                                    out_ids.row(t).data_as<int32_t>(),
                                    out_weights.row(t).data_as<float>());
    }
    return Status::ok_status();
  }

  // One M = 1 matmul per (token, slot): the obviously-correct form the grouped CPU/CUDA paths
  // are compared against.
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_moe_grouped_matmul(x, w, ids, out));
    for (int64_t t = 0; t < x.dim(0); ++t) {
      const int32_t* row_ids = ids.row(t).data_as<const int32_t>();
      for (int64_t j = 0; j < ids.dim(1); ++j) {
        const Tensor we = w.row(row_ids[j]);
        const bool ok = kernels::ref::matmul(
            we.dtype(), we.data(), we.stride_bytes(0), x.row(t).data_as<const float>(), x.dim(1),
            out.row(t).row(j).data_as<float>(), w.dim(1), 1, w.dim(1), x.dim(1));
        if (!ok)
          return unimplemented("moe_grouped_matmul: weight {} is not supported", w.describe());
      }
    }
    return Status::ok_status();
  }

  Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                             const BlockScaleParams& block, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul_block_scaled(x, w, w_scale_inv, block, out));
    kernels::ref::matmul_block_scaled(to_block_scaled_args(x, w, w_scale_inv, block, out));
    return Status::ok_status();
  }

  // One M = 1 call per (token, slot), as moe_grouped_matmul.
  Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                         const Tensor& w_scale_inv, const Tensor& ids,
                                         const BlockScaleParams& block, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(
        check_moe_grouped_matmul_block_scaled(x, w, w_scale_inv, ids, block, out));
    for (int64_t t = 0; t < x.dim(0); ++t) {
      const int32_t* row_ids = ids.row(t).data_as<const int32_t>();
      const Tensor xt = x.row(t).reshape({1, x.dim(1)});
      for (int64_t j = 0; j < ids.dim(1); ++j) {
        const Tensor ot = out.row(t).row(j).reshape({1, w.dim(1)});
        kernels::ref::matmul_block_scaled(to_block_scaled_args(
            xt, w.row(row_ids[j]), w_scale_inv.row(row_ids[j]), block, ot));
      }
    }
    return Status::ok_status();
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace tessera::backend
