// Operand staging for the CUDA backend (see staging.h).
#include "src/backend/cuda/staging.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

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

// Pinned host memory that host inputs are copied through before their upload. NOTE: a
// cudaMemcpyAsync from pageable memory first waits for the stream (CUDA's documented
// behaviour), which would put a host synchronisation into every op with a host span (token ids,
// positions, block tables); from pinned memory the copy is truly asynchronous. A ring per
// stream: each upload's region is reused only after an event recorded behind its copy has
// completed (normally long ago, so the wait is free).
class PinnedRing {
 public:
  static constexpr size_t kBytes = 32u << 20;

  ~PinnedRing() {
    for (const Region& r : inflight_) cudaEventDestroy(r.done);
    for (cudaEvent_t e : spare_) cudaEventDestroy(e);
    if (base_ != nullptr) cudaFreeHost(base_);
  }

  // A pinned region of `bytes`, free to overwrite now (nullptr: too large or no pinned memory;
  // the caller then uploads from pageable memory). Call uploaded() once its copy is enqueued.
  char* reserve(size_t bytes) {
    if (bytes > kBytes) return nullptr;
    if (base_ == nullptr &&
        cudaMallocHost(reinterpret_cast<void**>(&base_), kBytes) != cudaSuccess) {
      (void)cudaGetLastError();
      base_ = nullptr;
      return nullptr;
    }
    bytes = (bytes + 255) / 256 * 256;
    if (head_ + bytes > kBytes) head_ = 0;
    const size_t begin = head_, end = head_ + bytes;
    for (auto it = inflight_.begin(); it != inflight_.end();) {
      const bool overlaps = it->begin < end && begin < it->end;
      if (overlaps) (void)cudaEventSynchronize(it->done);
      if (overlaps || cudaEventQuery(it->done) == cudaSuccess) {
        spare_.push_back(it->done);
        it = inflight_.erase(it);
      } else {
        (void)cudaGetLastError();  // cudaErrorNotReady is not an error here
        ++it;
      }
    }
    head_ = end;
    reserved_ = {begin, end, nullptr};
    return base_ + begin;
  }

  // The region of the last reserve() stays in use until `stream` passes this point.
  void uploaded(cudaStream_t stream) {
    cudaEvent_t e = nullptr;
    if (!spare_.empty()) {
      e = spare_.back();
      spare_.pop_back();
    } else if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
      (void)cudaGetLastError();
      (void)cudaStreamSynchronize(stream);  // no event: free the region the slow way
      return;
    }
    (void)cudaEventRecord(e, stream);
    reserved_.done = e;
    inflight_.push_back(reserved_);
  }

 private:
  struct Region {
    size_t begin, end;
    cudaEvent_t done;
  };
  char* base_ = nullptr;
  size_t head_ = 0;
  Region reserved_{0, 0, nullptr};
  std::deque<Region> inflight_;
  std::vector<cudaEvent_t> spare_;
};

// One ring per stream, for the process's lifetime; ops on a stream come from one thread at a
// time (the backend's callers serialise), the map itself is locked.
PinnedRing& ring_for(cudaStream_t stream) {
  static std::mutex mutex;
  static std::map<cudaStream_t, std::unique_ptr<PinnedRing>>* rings =
      new std::map<cudaStream_t, std::unique_ptr<PinnedRing>>();
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<PinnedRing>& r = (*rings)[stream];
  if (!r) r = std::make_unique<PinnedRing>();
  return *r;
}

}  // namespace

CaptureArena::~CaptureArena() {
  for (void* p : chunks_) (void)cudaFree(p);
}

Status CaptureArena::add_chunk(int64_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return make_error(StatusCode::kResourceExhausted,
                      "graph capture: {} bytes of capture scratch: {} (free device memory)", bytes,
                      cudaGetErrorString(err));
  }
  chunks_.push_back(p);
  plan_.add_chunk(bytes);
  return Status::ok_status();
}

Status CaptureArena::presize() {
  const int64_t bytes = plan_.presize_bytes();
  return bytes > 0 ? add_chunk(bytes) : Status::ok_status();
}

Result<void*> CaptureArena::take(int64_t bytes) {
  // NOTE: growing here calls cudaMalloc inside the capture, legal in relaxed capture mode (not
  // a stream operation, so the graph does not record it); presize() makes it rare.
  if (const int64_t grow = plan_.grow_bytes(bytes); grow > 0) {
    TESSERA_RETURN_IF_ERROR(add_chunk(grow));
  }
  const int64_t offset = plan_.place(bytes);
  return static_cast<void*>(static_cast<char*>(chunks_.back()) + offset);
}

Staging::Staging(cudaStream_t stream, CaptureArena* arena, const char* op)
    : stream_(stream), arena_(arena), op_(op) {
  if (arena_ != nullptr) arena_->begin_op();
}

Staging::~Staging() {
  for (void* p : owned_) (void)cudaFreeAsync(p, stream_);  // never arena memory
  if (arena_ != nullptr) {
    if (!arena_->capturing()) arena_->note_eager_op(eager_scratch_bytes_);
    arena_->end_op();
  }
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
  if (!order.empty() && capturing()) {
    // NOTE: a capture records the upload's source address; the pinned ring region (or the
    // caller's host memory) would hold other data by the time a replay reads it.
    const Entry& e = entries_[order.front()];
    return invalid_argument(
        "graph capture: {} operand {} is host memory; a replay would read stale data (give ops "
        "backend tensors while capturing)",
        op_, e.t.describe());
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
  PinnedRing* ring = nullptr;
  for (Span& s : spans_) {
    any_host_output_ |= s.output;
    const size_t bytes = static_cast<size_t>(s.hi - s.lo);
    void* p = nullptr;
    TESSERA_CUDA_RETURN(cudaMallocAsync(&p, bytes, stream_), "staging");
    owned_.push_back(p);
    s.dev = static_cast<char*>(p);
    // Inputs go through pinned memory (no implicit stream wait); an output span's old contents
    // matter only for the parts the op leaves untouched, so it is staged the same way.
    if (ring == nullptr) ring = &ring_for(stream_);
    char* pinned = ring->reserve(bytes);
    if (pinned != nullptr) std::memcpy(pinned, s.lo, bytes);
    TESSERA_CUDA_RETURN(cudaMemcpyAsync(s.dev, pinned != nullptr ? pinned : s.lo, bytes,
                                        cudaMemcpyHostToDevice, stream_),
                        "staging upload");
    if (pinned != nullptr) ring->uploaded(stream_);
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
    case 1:
      return moved.with_strides({t.stride_bytes(0)});
    case 2:
      return moved.with_strides({t.stride_bytes(0), t.stride_bytes(1)});
    case 3:
      return moved.with_strides({t.stride_bytes(0), t.stride_bytes(1), t.stride_bytes(2)});
    default:
      return moved.with_strides(
          {t.stride_bytes(0), t.stride_bytes(1), t.stride_bytes(2), t.stride_bytes(3)});
  }
}

const int32_t* Staging::dev_ints(int handle) const {
  return handle < 0 ? nullptr : dev(handle).data_as<const int32_t>();
}

Result<void*> Staging::scratch(int64_t bytes) {
  if (capturing()) return arena_->take(bytes);
  eager_scratch_bytes_ += CaptureScratchPlan::rounded(bytes);
  void* p = nullptr;
  TESSERA_CUDA_RETURN(
      cudaMallocAsync(&p, static_cast<size_t>(std::max<int64_t>(bytes, 16)), stream_), "scratch");
  owned_.push_back(p);
  return p;
}

Status Staging::finish() {
  TESSERA_CUDA_RETURN(cudaGetLastError(), "launch");
  for (const Span& s : spans_) {
    if (!s.output) continue;
    TESSERA_CUDA_RETURN(
        cudaMemcpyAsync(const_cast<char*>(s.lo), s.dev, static_cast<size_t>(s.hi - s.lo),
                        cudaMemcpyDeviceToHost, stream_),
        "staging download");
  }
  // Only host outputs need the wait; host inputs were copied out of the caller's memory already.
  if (any_host_output_) TESSERA_CUDA_RETURN(cudaStreamSynchronize(stream_), "synchronize");
  return Status::ok_status();
}

}  // namespace tessera::backend::cuda
