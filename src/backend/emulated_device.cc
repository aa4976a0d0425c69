// The emulated device backend (see emulated_device.h): a host backend behind an arena that is
// PROT_NONE outside its ops. Every op takes the mutex, opens the used part of the arena
// read-write, runs the inner backend's op, and closes it again.
// Invariant: outside an op (and outside upload/download) no arena byte is readable.
#include "tessera/backend/emulated_device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "tessera/core/check.h"

namespace tessera::backend {
namespace {

// One reserved address range with a first-fit free list; all state behind `mu`.
class Arena {
 public:
  static constexpr size_t kReserveBytes = size_t{64} << 30;  // address space only
  static constexpr size_t kAlign = 64;

  Arena() {
    void* p =
        mmap(nullptr, kReserveBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    TESSERA_CHECK(p != MAP_FAILED, "emulated device: cannot reserve {} bytes of address space",
                  kReserveBytes);
    base_ = static_cast<char*>(p);
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }
  ~Arena() { munmap(base_, kReserveBytes); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Under `mu`. nullptr when the reservation is exhausted.
  char* allocate_locked(size_t bytes) {
    bytes = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < bytes) continue;
      const size_t offset = it->first, size = it->second;
      free_.erase(it);
      if (size > bytes) free_[offset + bytes] = size - bytes;
      sizes_[offset] = bytes;
      return base_ + offset;
    }
    if (top_ + bytes > kReserveBytes) return nullptr;
    const size_t offset = top_;
    top_ += bytes;
    sizes_[offset] = bytes;
    return base_ + offset;
  }

  // Under `mu`: returns a block to the free list, merging with its neighbours.
  void free_locked(char* p) {
    const size_t offset = static_cast<size_t>(p - base_);
    auto s = sizes_.find(offset);
    TESSERA_CHECK(s != sizes_.end(), "emulated device: free of an unknown block");
    size_t begin = offset, size = s->second;
    sizes_.erase(s);
    auto next = free_.find(begin + size);
    if (next != free_.end()) {
      size += next->second;
      free_.erase(next);
    }
    auto prev = free_.lower_bound(begin);
    if (prev != free_.begin()) {
      --prev;
      if (prev->first + prev->second == begin) {
        begin = prev->first;
        size += prev->second;
        free_.erase(prev);
      }
    }
    free_[begin] = size;
  }

  // Under `mu`: the used part readable and writable (open) or inaccessible (closed).
  void set_open_locked(bool open) {
    const size_t used = (top_ + page_ - 1) / page_ * page_;
    if (used == 0) return;
    const int rc = mprotect(base_, used, open ? PROT_READ | PROT_WRITE : PROT_NONE);
    TESSERA_CHECK(rc == 0, "emulated device: mprotect of {} bytes failed", used);
  }

  std::mutex mu;

 private:
  char* base_ = nullptr;
  size_t page_ = 4096;
  size_t top_ = 0;                  // bytes handed out so far (high-water mark)
  std::map<size_t, size_t> free_;   // offset -> size of free blocks below top_
  std::map<size_t, size_t> sizes_;  // offset -> size of live blocks
};

// Holds the arena open for the duration of one op.
class OpenScope {
 public:
  explicit OpenScope(Arena& arena) : arena_(arena), lock_(arena.mu) {
    arena_.set_open_locked(true);
  }
  ~OpenScope() { arena_.set_open_locked(false); }
  OpenScope(const OpenScope&) = delete;
  OpenScope& operator=(const OpenScope&) = delete;

 private:
  Arena& arena_;
  std::lock_guard<std::mutex> lock_;
};

class EmulatedDeviceBackend final : public Backend {
 public:
  explicit EmulatedDeviceBackend(std::unique_ptr<Backend> inner)
      : inner_(std::move(inner)),
        arena_(std::make_shared<Arena>()),
        name_("emulated:" + std::string(inner_->name())) {}

  std::string_view name() const override { return name_; }
  bool supports(Op op, DType a, DType b) const override { return inner_->supports(op, a, b); }
  bool is_device() const override { return true; }

  Result<BackendTensor> allocate(DType dtype, std::span<const int64_t> shape) override {
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
    const Tensor probe(nullptr, dtype, shape.data(), static_cast<int>(shape.size()));
    char* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(arena_->mu);
      p = arena_->allocate_locked(static_cast<size_t>(probe.nbytes()));
    }
    if (p == nullptr) {
      return make_error(StatusCode::kResourceExhausted,
                        "emulated device: out of memory allocating {}", probe.describe());
    }
    std::shared_ptr<Arena> arena = arena_;
    BackendTensor out;
    out.view = Tensor(p, dtype, shape.data(), static_cast<int>(shape.size()));
    out.storage = std::shared_ptr<void>(p, [arena](void* q) {
      std::lock_guard<std::mutex> lock(arena->mu);
      arena->free_locked(static_cast<char*>(q));
    });
    return out;
  }
  using Backend::allocate;

  Result<BackendTensor> upload(const Tensor& host) override {
    const std::span<const int64_t> shape(host.shape().data(), static_cast<size_t>(host.ndim()));
    TESSERA_ASSIGN_OR_RETURN(BackendTensor dev, allocate(host.dtype(), shape));
    OpenScope open(*arena_);
    TESSERA_RETURN_IF_ERROR(inner_->copy(host, dev.view));
    return dev;
  }
  Status download(const Tensor& src, Tensor host_dst) override {
    OpenScope open(*arena_);
    return inner_->download(src, host_dst);
  }
  Status synchronize() override { return inner_->synchronize(); }

  Status copy(const Tensor& src, Tensor dst) override {
    OpenScope open(*arena_);
    return inner_->copy(src, dst);
  }
  Status moe_combine(const Tensor& x, const Tensor& weights, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->moe_combine(x, weights, out);
  }
  Status sample(const Tensor& logits, std::span<const SampleParams> params,
                Tensor out_ids) override {
    OpenScope open(*arena_);
    return inner_->sample(logits, params, out_ids);
  }
  Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                     Tensor out) override {
    OpenScope open(*arena_);
    return inner_->matmul_int8(x, w, w_scale, mode, out);
  }
  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->embedding(table, ids, out);
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->matmul(x, w, out);
  }
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->rms_norm(x, weight, eps, out);
  }
  Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) override {
    OpenScope open(*arena_);
    return inner_->rope(x, positions, params);
  }
  Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                   std::span<const int32_t> positions, float scale, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->attention(q, k_cache, v_cache, positions, scale, out);
  }
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->silu_mul(gate, up, out);
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->add(a, b, out);
  }
  Status convert(const Tensor& src, Tensor dst) override {
    OpenScope open(*arena_);
    return inner_->convert(src, dst);
  }
  Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->paged_attention(q, k_cache, v_cache, query_start, seq_lens, block_tables, scale,
                                   out);
  }
  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                   Tensor k_cache, Tensor v_cache) override {
    OpenScope open(*arena_);
    return inner_->kv_append(k, v, slot_mapping, k_cache, v_cache);
  }
  Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                   Tensor out_ids, Tensor out_weights) override {
    OpenScope open(*arena_);
    return inner_->moe_route(logits, bias, params, out_ids, out_weights);
  }
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    OpenScope open(*arena_);
    return inner_->moe_grouped_matmul(x, w, ids, out);
  }
  Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                             const BlockScaleParams& block, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->matmul_block_scaled(x, w, w_scale_inv, block, out);
  }
  Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                         const Tensor& w_scale_inv, const Tensor& ids,
                                         const BlockScaleParams& block, Tensor out) override {
    OpenScope open(*arena_);
    return inner_->moe_grouped_matmul_block_scaled(x, w, w_scale_inv, ids, block, out);
  }

 private:
  std::unique_ptr<Backend> inner_;
  std::shared_ptr<Arena> arena_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Backend> make_emulated_device_backend(std::unique_ptr<Backend> inner) {
  TESSERA_CHECK(inner != nullptr && !inner->is_device(),
                "the emulated device wraps a host backend");
  return std::make_unique<EmulatedDeviceBackend>(std::move(inner));
}

}  // namespace tessera::backend
