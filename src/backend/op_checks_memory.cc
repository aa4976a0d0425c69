// Contracts of the memory ops copy and moe_combine (shapes in backend.h). Messages name the op,
// the operand and its shape so a caller can fix the call.
// Invariant: a tensor that passes has a contiguous innermost dim (whole blocks for block
// dtypes) and outer strides that are positive multiples of its element (block) size.
#include <string_view>

#include "src/backend/op_checks_common.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

// [lo, hi) bytes spanned by a checked tensor.
void byte_extent(const Tensor& t, const char*& lo, const char*& hi) {
  const DTypeInfo& info = dtype_info(t.dtype());
  int64_t last = (t.dim(-1) / info.block_elems) * info.block_bytes;
  for (int d = 0; d + 1 < t.ndim(); ++d) last += (t.dim(d) - 1) * t.stride_bytes(d);
  lo = static_cast<const char*>(t.data());
  hi = lo + last;
}

}  // namespace

bool overlaps(const Tensor& a, const Tensor& b) {
  const char *a_lo, *a_hi, *b_lo, *b_hi;
  byte_extent(a, a_lo, a_hi);
  byte_extent(b, b_lo, b_hi);
  return a_lo < b_hi && b_lo < a_hi;
}

Status check_allocate(DType dtype, std::span<const int64_t> shape) {
  if (shape.empty() || shape.size() > static_cast<size_t>(kMaxDims)) {
    return invalid_argument("allocate: {} dims (1 to {} allowed)", shape.size(), kMaxDims);
  }
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("allocate: negative dim {}", d);
  }
  const DTypeInfo& info = dtype_info(dtype);
  if (shape.back() % info.block_elems != 0) {
    return invalid_argument("allocate: last dim {} is not a multiple of the {} block size {}",
                            shape.back(), info.name, info.block_elems);
  }
  return Status::ok_status();
}

Status check_copy(const Tensor& src, const Tensor& dst) {
  constexpr std::string_view kOp = "copy";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "src", src, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "dst", dst, 1, kMaxDims));
  if (src.dtype() != dst.dtype()) {
    return invalid_argument("copy: src {} and dst {} must have the same dtype", src.describe(),
                            dst.describe());
  }
  TESSERA_RETURN_IF_ERROR(check_same_shape(kOp, "src", src, "dst", dst));
  if (src.numel() > 0 && overlaps(src, dst)) {
    return invalid_argument("copy: src {} and dst {} overlap in memory", src.describe(),
                            dst.describe());
  }
  return {};
}

Status check_moe_combine(const Tensor& x, const Tensor& weights, const Tensor& out) {
  constexpr std::string_view kOp = "moe_combine";
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "x", x, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "weights", weights, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_layout(kOp, "out", out, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "x", x, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "weights", weights, DType::kF32));
  TESSERA_RETURN_IF_ERROR(check_dtype(kOp, "out", out, DType::kF32));
  if (weights.dim(0) != x.dim(0) || weights.dim(1) != x.dim(1)) {
    return invalid_argument("moe_combine: weights {} must be [T, top_k] of x {} ([T, top_k, N])",
                            weights.describe(), x.describe());
  }
  if (out.dim(0) != x.dim(0) || out.dim(1) != x.dim(2)) {
    return invalid_argument("moe_combine: out {} must be [T, N] of x {} ([T, top_k, N])",
                            out.describe(), x.describe());
  }
  if (x.numel() > 0 && overlaps(x, out)) {
    return invalid_argument("moe_combine: out {} must not overlap x {}", out.describe(),
                            x.describe());
  }
  return {};
}

}  // namespace tessera::backend
