// Contract of sample (shapes in backend.h): logits f32 [B, V >= 1] with contiguous rows,
// params.size() == B, out_ids i32 [B] contiguous, and every row's parameters in range.
// Invariant: a call that passes can be sampled row by row with no further checks (a greedy row
// ignores top_k / top_p / min_p, but they must still be valid).
#include <cmath>
#include <string_view>

#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

constexpr std::string_view kOp = "sample";

Status check_row_params(size_t row, const SampleParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    return invalid_argument("{}: row {} temperature must be finite and >= 0, got {}", kOp, row,
                            p.temperature);
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return invalid_argument("{}: row {} top_p must be in (0, 1], got {}", kOp, row, p.top_p);
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return invalid_argument("{}: row {} min_p must be in [0, 1], got {}", kOp, row, p.min_p);
  }
  return {};  // top_k: any value (<= 0 or >= V means no limit)
}

}  // namespace

Status check_sample(const Tensor& logits, std::span<const SampleParams> params,
                    const Tensor& out_ids) {
  if (logits.empty()) return invalid_argument("{}: logits has no data", kOp);
  if (logits.ndim() != 2 || logits.dtype() != DType::kF32) {
    return invalid_argument("{}: logits {} must be f32 [B, V]", kOp, logits.describe());
  }
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (vocab < 1)
    return invalid_argument("{}: logits {} has an empty vocab", kOp, logits.describe());
  if (logits.stride_bytes(1) != 4 || logits.stride_bytes(0) <= 0 ||
      logits.stride_bytes(0) % 4 != 0) {
    return invalid_argument(
        "{}: logits {} rows must be contiguous with a positive row stride of whole f32 "
        "(strides {} and {} bytes)",
        kOp, logits.describe(), logits.stride_bytes(0), logits.stride_bytes(1));
  }
  if (static_cast<int64_t>(params.size()) != rows) {
    return invalid_argument("{}: {} params for logits {} (one per row)", kOp, params.size(),
                            logits.describe());
  }
  if (out_ids.empty()) return invalid_argument("{}: out_ids has no data", kOp);
  if (out_ids.ndim() != 1 || out_ids.dtype() != DType::kI32 || out_ids.dim(0) != rows) {
    return invalid_argument("{}: out_ids {} must be i32 [{}] (logits {})", kOp, out_ids.describe(),
                            rows, logits.describe());
  }
  if (out_ids.stride_bytes(0) != 4) {
    return invalid_argument("{}: out_ids {} must be contiguous (stride {} bytes)", kOp,
                            out_ids.describe(), out_ids.stride_bytes(0));
  }
  for (size_t r = 0; r < params.size(); ++r) {
    TESSERA_RETURN_IF_ERROR(check_row_params(r, params[r]));
  }
  return {};
}

}  // namespace tessera::backend
