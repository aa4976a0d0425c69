// HostBackend memory (allocate: a 64-byte aligned Buffer owned by the handle; upload: the host
// view itself; download: a strided copy) and the copy / moe_combine ops over kernels/ref.
// Invariant: every op validates through op_checks first; nothing here touches a device.
#include <algorithm>
#include <memory>

#include "kernels/ref/memory.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

// Copies every row of `src` to `dst` (already checked: same dtype and shape).
void copy_checked(const Tensor& src, const Tensor& dst) {
  const RowView s = row_view(src);
  const RowView d = row_view(dst);
  const DTypeInfo& info = dtype_info(src.dtype());
  const int64_t row_bytes = s.row_elems / info.block_elems * info.block_bytes;
  kernels::ref::copy_rows(
      s.num_rows, row_bytes, [&](int64_t r) { return s.row(r); },
      [&](int64_t r) { return d.row(r); });
}

}  // namespace

Result<BackendTensor> HostBackend::allocate(DType dtype, std::span<const int64_t> shape) {
  TESSERA_RETURN_IF_ERROR(check_allocate(dtype, shape));
  const Tensor probe(nullptr, dtype, shape.data(), static_cast<int>(shape.size()));
  auto buffer =
      std::make_shared<Buffer>(static_cast<size_t>(std::max<int64_t>(64, probe.nbytes())));
  BackendTensor out;
  out.view = Tensor(buffer->data(), dtype, shape.data(), static_cast<int>(shape.size()));
  out.storage = std::move(buffer);
  return out;
}

Result<BackendTensor> HostBackend::upload(const Tensor& host) {
  return BackendTensor{host, nullptr};
}

Status HostBackend::download(const Tensor& src, Tensor host_dst) {
  TESSERA_RETURN_IF_ERROR(check_copy(src, host_dst));
  copy_checked(src, host_dst);
  return {};
}

Status HostBackend::copy(const Tensor& src, Tensor dst) {
  TESSERA_RETURN_IF_ERROR(check_copy(src, dst));
  copy_checked(src, dst);
  return {};
}

Status HostBackend::moe_combine(const Tensor& x, const Tensor& weights, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_moe_combine(x, weights, out));
  const int64_t t_count = x.dim(0), top_k = x.dim(1), n = x.dim(2);
  const int64_t xs0 = x.stride_bytes(0), xs1 = x.stride_bytes(1) / 4;
  const int64_t ws0 = weights.stride_bytes(0), os0 = out.stride_bytes(0);
  const char* xb = static_cast<const char*>(x.data());
  const char* wb = static_cast<const char*>(weights.data());
  char* ob = static_cast<char*>(out.data());
  for (int64_t t = 0; t < t_count; ++t) {
    kernels::ref::moe_combine_token(reinterpret_cast<const float*>(xb + t * xs0), xs1,
                                    reinterpret_cast<const float*>(wb + t * ws0), top_k, n,
                                    reinterpret_cast<float*>(ob + t * os0));
  }
  return {};
}

}  // namespace tessera::backend
