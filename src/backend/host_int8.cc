// HostBackend::matmul_int8 over kernels/ref (the reference's op; the CPU backend overrides it
// with its SIMD kernel). Single-threaded, on the calling thread.
#include "kernels/ref/int8_matmul.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

Status HostBackend::matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale,
                                Int8Mode mode, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_int8(x, w, w_scale, mode, out));
  const kernels::Int8MatmulArgs a = to_int8_matmul_args(x, w, w_scale, out);
  switch (mode) {
    case Int8Mode::kW8A8:
      kernels::ref::matmul_int8_w8a8(a);
      return Status::ok_status();
    case Int8Mode::kWeightOnly:
      kernels::ref::matmul_int8_weight_only(a);
      return Status::ok_status();
  }
  return invalid_argument("matmul_int8: unknown mode");
}

}  // namespace tessera::backend
