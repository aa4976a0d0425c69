// HostBackend::matmul_batched over kernels/ref (the reference's op; the CPU backend overrides
// it with its threaded SIMD path). Single-threaded, on the calling thread.
// Invariant: each batch entry is exactly ref::matmul, so the batched spec is the dense one.
#include "kernels/ref/matmul.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

Status HostBackend::matmul_batched(const Tensor& x, const Tensor& w, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_batched(x, w, out));
  const Strides3 xs = elem_strides3(x), os = elem_strides3(out);
  const bool ok = kernels::ref::matmul_batched(
      w.dtype(), w.data(), {w.stride_bytes(0), w.stride_bytes(1)}, x.data_as<const float>(),
      {xs.s0, xs.s1}, out.data_as<float>(), {os.s0, os.s1}, x.dim(0), x.dim(1), w.dim(1), x.dim(2));
  if (!ok) return unimplemented("matmul_batched: weight {} is not supported", w.describe());
  return Status::ok_status();
}

}  // namespace tessera::backend
