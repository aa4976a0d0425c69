// CUDA backend memory (cudaMalloc'd BackendTensors, upload, download) and the copy /
// moe_combine ops. Strided transfers use one cudaMemcpy2DAsync when every row sits at a uniform
// pitch, else rows are packed (on the host before an upload, on the device before a download).
// Invariant: upload and download return with the data in place (the stream is synchronised), so
// both are refused while a step graph is captured; copy and moe_combine on device operands only
// enqueue work. copy from a host source stages it (eagerly only: captured, a replay would re-read
// a stale staging copy).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cuda/memory/copy.h"
#include "kernels/cuda/memory/row_pitch.h"
#include "kernels/cuda/moe/moe.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend::cuda {
namespace {

namespace kc = kernels::cuda;

int64_t row_bytes_of(const Tensor& t) { return dtype_row_bytes(t.dtype(), t.dim(-1)); }

// Rows of a checked view in BYTES (the vocabulary of kernels/cuda/memory/copy.h).
kc::RowLayout byte_rows(const Tensor& t) {
  kc::RowLayout l;
  l.outer_ndim = t.ndim() - 1;
  l.row_elems = row_bytes_of(t);
  l.num_rows = 1;
  for (int d = 0; d < l.outer_ndim; ++d) {
    l.shape[d] = t.dim(d);
    l.stride[d] = t.stride_bytes(d);
    l.num_rows *= t.dim(d);
  }
  return l;
}

// Whether row r of `l` starts at r * pitch bytes for every r (then *pitch is set).
bool uniform_pitch(const kc::RowLayout& l, int64_t* pitch) {
  return kc::uniform_row_pitch(l.outer_ndim, l.shape, l.stride, l.row_elems, pitch);
}

// Start of row r of a host view described by `l` (byte strides).
char* host_row(void* base, const kc::RowLayout& l, int64_t r) {
  int64_t off = 0;
  for (int d = l.outer_ndim - 1; d >= 0; --d) {
    off += (r % l.shape[d]) * l.stride[d];
    r /= l.shape[d];
  }
  return static_cast<char*>(base) + off;
}

void host_copy_rows(const Tensor& src, const Tensor& dst) {
  const kc::RowLayout s = byte_rows(src), d = byte_rows(dst);
  for (int64_t r = 0; r < s.num_rows; ++r) {
    std::memcpy(host_row(dst.data(), d, r), host_row(src.data(), s, r),
                static_cast<size_t>(s.row_elems));
  }
}

}  // namespace

Status refuse_while_capturing(const CudaContext& ctx, const char* op, const char* why) {
  if (ctx.arena == nullptr || !ctx.arena->capturing()) return Status::ok_status();
  return invalid_argument("graph capture: {} cannot be recorded: {}", op, why);
}

Result<BackendTensor> cuda_allocate(const CudaContext& ctx, DType dtype,
                                    std::span<const int64_t> shape) {
  TESSERA_RETURN_IF_ERROR(check_allocate(dtype, shape));
  const int ndim = static_cast<int>(shape.size());
  const Tensor probe(nullptr, dtype, shape.data(), ndim);
  // NOTE: zero-size tensors still get a small allocation so their view has non-null data.
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(256, probe.nbytes()));
  TESSERA_CUDA_RETURN(cudaSetDevice(ctx.device), "allocate (set device)");
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return make_error(StatusCode::kResourceExhausted,
                      "cuda allocate: {} bytes for {} failed: {} (free memory or lower "
                      "max_num_batched_tokens / the KV cache size)",
                      bytes, probe.describe(), cudaGetErrorString(err));
  }
  BackendTensor out;
  out.view = Tensor(p, dtype, shape.data(), ndim);
  out.storage = std::shared_ptr<void>(p, [](void* q) { (void)cudaFree(q); });
  return out;
}

Result<BackendTensor> cuda_upload(const CudaContext& ctx, const Tensor& host) {
  TESSERA_RETURN_IF_ERROR(
      refuse_while_capturing(ctx, "upload", "it waits for the copy (use copy() into a tensor)"));
  if (host.empty()) return invalid_argument("upload: the tensor has no data");
  const int ndim = host.ndim();
  std::vector<int64_t> shape(host.shape().begin(), host.shape().begin() + ndim);
  TESSERA_ASSIGN_OR_RETURN(BackendTensor dev, cuda_allocate(ctx, host.dtype(), shape));
  TESSERA_RETURN_IF_ERROR(check_copy(host, dev.view));
  if (host.numel() == 0) return dev;
  if (is_device_pointer(host.data())) {  // already on a device: a device-side copy
    TESSERA_RETURN_IF_ERROR(cuda_copy(ctx, host, dev.view));
    TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "upload");
    return dev;
  }
  const kc::RowLayout l = byte_rows(host);
  int64_t pitch = 0;
  if (uniform_pitch(l, &pitch)) {
    TESSERA_CUDA_RETURN(
        cudaMemcpy2DAsync(dev.view.data(), static_cast<size_t>(l.row_elems), host.data(),
                          static_cast<size_t>(pitch), static_cast<size_t>(l.row_elems),
                          static_cast<size_t>(l.num_rows), cudaMemcpyHostToDevice, ctx.stream),
        "upload");
  } else {  // pack on the host first
    std::vector<char> packed(static_cast<size_t>(l.num_rows * l.row_elems));
    for (int64_t r = 0; r < l.num_rows; ++r) {
      std::memcpy(packed.data() + r * l.row_elems, host_row(host.data(), l, r),
                  static_cast<size_t>(l.row_elems));
    }
    TESSERA_CUDA_RETURN(cudaMemcpyAsync(dev.view.data(), packed.data(), packed.size(),
                                        cudaMemcpyHostToDevice, ctx.stream),
                        "upload");
    TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "upload");  // before packed dies
    return dev;
  }
  TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "upload");
  return dev;
}

Status cuda_download(const CudaContext& ctx, const Tensor& src, Tensor host_dst) {
  TESSERA_RETURN_IF_ERROR(
      refuse_while_capturing(ctx, "download", "it waits for the device (download after replay)"));
  TESSERA_RETURN_IF_ERROR(check_copy(src, host_dst));
  if (src.numel() == 0) return Status::ok_status();
  if (!is_device_pointer(src.data())) {  // a host tensor: nothing to transfer
    host_copy_rows(src, host_dst);
    return Status::ok_status();
  }
  if (is_device_pointer(host_dst.data())) {  // device destination: an ordinary copy
    TESSERA_RETURN_IF_ERROR(cuda_copy(ctx, src, host_dst));
    TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "download");
    return Status::ok_status();
  }
  const kc::RowLayout s = byte_rows(src), d = byte_rows(host_dst);
  int64_t s_pitch = 0, d_pitch = 0;
  const bool s_uniform = uniform_pitch(s, &s_pitch), d_uniform = uniform_pitch(d, &d_pitch);
  if (s_uniform && d_uniform) {
    TESSERA_CUDA_RETURN(
        cudaMemcpy2DAsync(host_dst.data(), static_cast<size_t>(d_pitch), src.data(),
                          static_cast<size_t>(s_pitch), static_cast<size_t>(s.row_elems),
                          static_cast<size_t>(s.num_rows), cudaMemcpyDeviceToHost, ctx.stream),
        "download");
    TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "download");
    return Status::ok_status();
  }
  // Pack on the device (when src is not uniform), bring the rows over, unpack on the host.
  const int64_t packed_bytes = s.num_rows * s.row_elems;
  Staging st(ctx.stream, ctx.arena, "download");
  const void* rows = src.data();
  int64_t rows_pitch = s_pitch;
  if (!s_uniform) {
    TESSERA_ASSIGN_OR_RETURN(void* packed, st.scratch(packed_bytes));
    kc::RowLayout p;
    p.outer_ndim = 1;
    p.shape[0] = s.num_rows;
    p.stride[0] = s.row_elems;
    p.num_rows = s.num_rows;
    p.row_elems = s.row_elems;
    TESSERA_CUDA_RETURN(kc::copy_rows(src.data(), s, packed, p, ctx.stream), "download pack");
    rows = packed;
    rows_pitch = s.row_elems;
  }
  std::vector<char> host(static_cast<size_t>(packed_bytes));
  TESSERA_CUDA_RETURN(
      cudaMemcpy2DAsync(host.data(), static_cast<size_t>(s.row_elems), rows,
                        static_cast<size_t>(rows_pitch), static_cast<size_t>(s.row_elems),
                        static_cast<size_t>(s.num_rows), cudaMemcpyDeviceToHost, ctx.stream),
      "download");
  TESSERA_CUDA_RETURN(cudaStreamSynchronize(ctx.stream), "download");
  for (int64_t r = 0; r < d.num_rows; ++r) {
    std::memcpy(host_row(host_dst.data(), d, r), host.data() + r * s.row_elems,
                static_cast<size_t>(s.row_elems));
  }
  return st.finish();
}

Status cuda_copy(const CudaContext& ctx, const Tensor& src, Tensor dst) {
  TESSERA_RETURN_IF_ERROR(check_copy(src, dst));
  Staging st(ctx.stream, ctx.arena, "copy");
  const int hs = st.add(src, false), hd = st.add(dst, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (hs < 0) return st.finish();
  const Tensor ds = st.dev(hs);
  Tensor dd = st.dev(hd);
  const kc::RowLayout s = byte_rows(ds), d = byte_rows(dd);
  int64_t s_pitch = 0, d_pitch = 0;
  if (uniform_pitch(s, &s_pitch) && uniform_pitch(d, &d_pitch)) {
    TESSERA_CUDA_RETURN(
        cudaMemcpy2DAsync(dd.data(), static_cast<size_t>(d_pitch), ds.data(),
                          static_cast<size_t>(s_pitch), static_cast<size_t>(s.row_elems),
                          static_cast<size_t>(s.num_rows), cudaMemcpyDeviceToDevice, ctx.stream),
        "copy");
  } else {
    TESSERA_CUDA_RETURN(kc::copy_rows(ds.data(), s, dd.data(), d, ctx.stream), "copy");
  }
  return st.finish();
}

Status cuda_moe_combine(const CudaContext& ctx, const Tensor& x, const Tensor& weights,
                        Tensor out) {
  TESSERA_RETURN_IF_ERROR(check_moe_combine(x, weights, out));
  Staging st(ctx.stream, ctx.arena, "moe_combine");
  const int hx = st.add(x, false), hw = st.add(weights, false), ho = st.add(out, true);
  TESSERA_RETURN_IF_ERROR(st.stage());
  if (ho < 0) return st.finish();
  Tensor dout = st.dev(ho);
  if (hx < 0) {  // top_k == 0: every sum is empty
    for (int64_t t = 0; t < out.dim(0); ++t) {
      TESSERA_CUDA_RETURN(
          cudaMemsetAsync(dout.row(t).data(), 0, static_cast<size_t>(out.dim(1)) * 4, ctx.stream),
          "moe_combine");
    }
    return st.finish();
  }
  const Tensor dx = st.dev(hx), dw = st.dev(hw);
  TESSERA_CUDA_RETURN(
      kc::moe_combine(dx.data_as<const float>(), dx.stride_bytes(0) / 4, dx.stride_bytes(1) / 4,
                      dw.data_as<const float>(), dw.stride_bytes(0) / 4, dout.data_as<float>(),
                      dout.stride_bytes(0) / 4, x.dim(0), x.dim(1), x.dim(2), ctx.stream),
      "moe_combine");
  return st.finish();
}

}  // namespace tessera::backend::cuda
