// Contract of matmul_int8: x f32 [M, K], w i8 [N, K], w_scale f32 [N], out f32 [M, N], rows of
// x, w and out may be strided; W8A8 needs K <= kernels::kInt8MaxK so int32 dots cannot overflow.
#include "kernels/ref/int8_matmul.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {

Status check_matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                         const Tensor& out) {
  if (w.dtype() != DType::kI8) {
    return invalid_argument("matmul_int8: w {} must be i8", w.describe());
  }
  TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
  if (w_scale.empty()) return invalid_argument("matmul_int8: w_scale has no data");
  if (w_scale.dtype() != DType::kF32 || w_scale.ndim() != 1 || w_scale.dim(0) != w.dim(0) ||
      w_scale.stride_bytes(0) != 4) {
    return invalid_argument("matmul_int8: w_scale {} must be a contiguous f32[{}] (w {})",
                            w_scale.describe(), w.dim(0), w.describe());
  }
  switch (mode) {
    case Int8Mode::kW8A8:
      if (x.dim(1) > kernels::kInt8MaxK) {
        return invalid_argument("matmul_int8: K {} exceeds {} in W8A8 mode (int32 overflow)",
                                x.dim(1), kernels::kInt8MaxK);
      }
      return Status::ok_status();
    case Int8Mode::kWeightOnly:
      return Status::ok_status();
  }
  return invalid_argument("matmul_int8: unknown mode {}", static_cast<int>(mode));
}

kernels::Int8MatmulArgs to_int8_matmul_args(const Tensor& x, const Tensor& w,
                                            const Tensor& w_scale, const Tensor& out) {
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
  return a;
}

}  // namespace tessera::backend
