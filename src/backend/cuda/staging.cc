// Operand staging for the CUDA backend (see staging.h).
#include "src/backend/cuda/staging.h"

#include <algorithm>

namespace tessera::backend::cuda {

Status cuda_status(cudaError_t err, const char* what) {
  return make_error(StatusCode::kInternal, "cuda {}: {} ({})", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

bool is_device_pointer(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error of an unknown host pointer
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

namespace {

// Bytes from data() to the end of the last element of a strided view.
int64_t extent_bytes(const Tensor& t) {
  int64_t bytes = dtype_row_bytes(t.dtype(), t.dim(-1));
  for (int d = 0; d + 1 < t.ndim(); ++d) {
    if (t.dim(d) == 0) return 0;
    bytes += (t.dim(d) - 1) * t.stride_bytes(d);
  }
  return bytes;
}

}  // namespace

Staging::~Staging() {
  for (void* p : owned_) (void)cudaFreeAsync(p, stream_);
}

int Staging::add(const Tensor& t, bool output) {
  if (t.empty() || t.numel() == 0) return -1;
  Entry e;
  e.t = t;
  e.lo = static_cast<const char*>(t.data());
  e.bytes = extent_bytes(t);
  e.output = output;
  e.on_device = is_device_pointer(t.data());
  entries_.push_back(e);
  return static_cast<int>(entries_.size()) - 1;
}

int Staging::add_ints(std::span<const int32_t> values) {
  if (values.empty()) return -1;
  const int64_t n = static_cast<int64_t>(values.size());
  return add(Tensor(const_cast<int32_t*>(values.data()), DType::kI32, {n}), false);
}

Status Staging::stage() {
  std::vector<int> order;
  for (int i = 0; i < static_cast<int>(entries_.size()); ++i) {
    if (!entries_[i].on_device) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return entries_[a].lo < entries_[b].lo; });
  for (int i : order) {
    Entry& e = entries_[i];
    const char* hi = e.lo + e.bytes;
    if (!spans_.empty() && e.lo < spans_.back().hi) {  // overlaps: one buffer for both views
      spans_.back().hi = std::max(spans_.back().hi, hi);
      spans_.back().output |= e.output;
    } else {
      spans_.push_back({e.lo, hi, e.output});
    }
    e.span = static_cast<int>(spans_.size()) - 1;
  }
  for (Span& s : spans_) {
    any_host_ = true;
    void* p = nullptr;
    TESSERA_CUDA_RETURN(cudaMallocAsync(&p, static_cast<size_t>(s.hi - s.lo), stream_), "staging");
    owned_.push_back(p);
    s.dev = static_cast<char*>(p);
    TESSERA_CUDA_RETURN(cudaMemcpyAsync(s.dev, s.lo, static_cast<size_t>(s.hi - s.lo),
                                        cudaMemcpyHostToDevice, stream_),
                        "staging upload");
  }
  return Status::ok_status();
}

Tensor Staging::dev(int handle) const {
  if (handle < 0) return Tensor();
  const Entry& e = entries_[handle];
  if (e.on_device) return e.t;
  const Span& s = spans_[e.span];
  Tensor t = e.t;
  char* p = s.dev + (e.lo - s.lo);
  // Same shape and strides, device data.
  Tensor moved(p, t.dtype(), t.shape().data(), t.ndim());
  switch (t.ndim()) {
    case 1: return moved.with_strides({t.stride_bytes(0)});
    case 2: return moved.with_strides({t.stride_bytes(0), t.stride_bytes(1)});
    case 3: return moved.with_strides({t.stride_bytes(0), t.stride_bytes(1), t.stride_bytes(2)});
    default:
      return moved.with_strides(
          {t.stride_bytes(0), t.stride_bytes(1), t.stride_bytes(2), t.stride_bytes(3)});
  }
}

const int32_t* Staging::dev_ints(int handle) const {
  return handle < 0 ? nullptr : dev(handle).data_as<const int32_t>();
}

Result<void*> Staging::scratch(int64_t bytes) {
  void* p = nullptr;
  TESSERA_CUDA_RETURN(cudaMallocAsync(&p, static_cast<size_t>(std::max<int64_t>(bytes, 16)),
                                      stream_),
                      "scratch");
  owned_.push_back(p);
  return p;
}

Status Staging::finish() {
  TESSERA_CUDA_RETURN(cudaGetLastError(), "launch");
  for (const Span& s : spans_) {
    if (!s.output) continue;
    TESSERA_CUDA_RETURN(cudaMemcpyAsync(const_cast<char*>(s.lo), s.dev,
                                        static_cast<size_t>(s.hi - s.lo), cudaMemcpyDeviceToHost,
                                        stream_),
                        "staging download");
  }
  if (any_host_) TESSERA_CUDA_RETURN(cudaStreamSynchronize(stream_), "synchronize");
  return Status::ok_status();
}

}  // namespace tessera::backend::cuda
