// HostBackend::matmul_int8 over kernels/ref (the reference's op; the CPU backend overrides it
// with its SIMD kernel). Single-threaded, on the calling thread.
#include "kernels/ref/int8_matmul.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

Status HostBackend::matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale,
                                Int8Mode mode, Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_matmul_int8(x, w, w_scale, mode, out));
  kernels::Int8MatmulArgs a;
  a.x = x.data_as<const float>();
  a.x_stride = x.stride_bytes(0) / 4;
  a.w = static_cast<const int8_t*>(w.data());
  a.w_stride = w.stride_bytes(0);
  a.w_scale = w_scale.data_as<const float>();
  a.out = out.data_as<float>();
  a.out_stride = out.stride_bytes(0) / 4;
  a.m = x.dim(0);
  a.n = w.dim(0);
  a.k = x.dim(1);
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
