// Contracts of the memory ops copy and moe_combine (shapes in backend.h). Messages name the op,
// the operand and its shape so a caller can fix the call.
// Invariant: a tensor that passes has a contiguous innermost dim (whole blocks for block
// dtypes) and outer strides that are positive multiples of its element (block) size.
#include <string_view>

#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

Status check_rows(std::string_view op, std::string_view name, const Tensor& t, int min_ndim,
                  int max_ndim) {
  if (t.empty()) return invalid_argument("{}: {} has no data", op, name);
  if (t.ndim() < min_ndim || t.ndim() > max_ndim) {
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
  return {};
}

Status check_f32(std::string_view op, std::string_view name, const Tensor& t) {
  if (t.dtype() != DType::kF32) {
    return invalid_argument("{}: {} {} must be f32", op, name, t.describe());
  }
  return {};
}

// [lo, hi) bytes spanned by a checked tensor.
void byte_extent(const Tensor& t, const char*& lo, const char*& hi) {
  const DTypeInfo& info = dtype_info(t.dtype());
  int64_t last = (t.dim(-1) / info.block_elems) * info.block_bytes;
  for (int d = 0; d + 1 < t.ndim(); ++d) last += (t.dim(d) - 1) * t.stride_bytes(d);
  lo = static_cast<const char*>(t.data());
  hi = lo + last;
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const char *a_lo, *a_hi, *b_lo, *b_hi;
  byte_extent(a, a_lo, a_hi);
  byte_extent(b, b_lo, b_hi);
  return a_lo < b_hi && b_lo < a_hi;
}

}  // namespace

Status check_copy(const Tensor& src, const Tensor& dst) {
  constexpr std::string_view kOp = "copy";
  TESSERA_RETURN_IF_ERROR(check_rows(kOp, "src", src, 1, kMaxDims));
  TESSERA_RETURN_IF_ERROR(check_rows(kOp, "dst", dst, 1, kMaxDims));
  if (src.dtype() != dst.dtype()) {
    return invalid_argument("copy: src {} and dst {} must have the same dtype", src.describe(),
                            dst.describe());
  }
  bool same = src.ndim() == dst.ndim();
  for (int d = 0; same && d < src.ndim(); ++d) same = src.dim(d) == dst.dim(d);
  if (!same) {
    return invalid_argument("copy: src {} and dst {} must have the same shape", src.describe(),
                            dst.describe());
  }
  if (src.numel() > 0 && overlaps(src, dst)) {
    return invalid_argument("copy: src {} and dst {} overlap in memory", src.describe(),
                            dst.describe());
  }
  return {};
}

Status check_moe_combine(const Tensor& x, const Tensor& weights, const Tensor& out) {
  constexpr std::string_view kOp = "moe_combine";
  TESSERA_RETURN_IF_ERROR(check_rows(kOp, "x", x, 3, 3));
  TESSERA_RETURN_IF_ERROR(check_rows(kOp, "weights", weights, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_rows(kOp, "out", out, 2, 2));
  TESSERA_RETURN_IF_ERROR(check_f32(kOp, "x", x));
  TESSERA_RETURN_IF_ERROR(check_f32(kOp, "weights", weights));
  TESSERA_RETURN_IF_ERROR(check_f32(kOp, "out", out));
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
