// The emulated device backend (see emulated_device.h): a host backend behind an arena that is
// PROT_NONE outside its ops. Every op takes the mutex, opens the used part of the arena
// read-write, runs the inner backend's op, and closes it again; while capturing a step graph,
// ops are recorded (operands must be arena memory) and run only by replay.
// Invariant: outside an op (and outside upload/download/replay) no arena byte is readable.
#include "tessera/backend/emulated_device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tessera/backend/op_checks.h"
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

  // Under `mu`: whether [begin, end) lies inside the part handed out so far.
  bool contains_locked(const char* begin, const char* end) const {
    return begin >= base_ && begin <= end && end <= base_ + top_;
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

// One operand of an op as the byte range it reaches, for the capture-time residency check.
struct Operand {
  const char* name;
  const char* begin = nullptr;  // null: empty, nothing to check
  const char* end = nullptr;
};

Operand arg(const char* name, const Tensor& t) {
  if (t.empty() || t.numel() == 0) return {name};
  const DTypeInfo& info = dtype_info(t.dtype());
  const char* lo = static_cast<const char*>(t.data());
  const char* hi = lo;
  // A block dtype's innermost dim is whole blocks, not strided elements.
  const int strided_dims = info.block_elems == 1 ? t.ndim() : t.ndim() - 1;
  for (int d = 0; d < strided_dims; ++d) {
    const int64_t reach = (t.dim(d) - 1) * t.stride_bytes(d);
    (reach < 0 ? lo : hi) += reach;
  }
  hi += info.block_elems == 1
            ? info.block_bytes
            : (t.dim(-1) + info.block_elems - 1) / info.block_elems * info.block_bytes;
  return {name, lo, hi};
}

Operand arg(const char* name, std::span<const int32_t> s) {
  if (s.empty()) return {name};
  const char* begin = reinterpret_cast<const char*>(s.data());
  return {name, begin, begin + s.size_bytes()};
}

// A recorded op: its name and a closure holding its operands by value (tensor views, spans as
// pointer + size, parameter structs), so a replay reads what the memory holds then.
struct RecordedOp {
  const char* name;
  std::function<Status()> run;
};

class EmulatedStepGraph final : public StepGraph {
 public:
  EmulatedStepGraph(uint64_t owner, std::vector<RecordedOp> ops)
      : owner_(owner), ops_(std::move(ops)) {}
  uint64_t owner() const { return owner_; }
  const std::vector<RecordedOp>& ops() const { return ops_; }

 private:
  uint64_t owner_;  // EmulatedDeviceBackend::id_ of the backend that captured it
  std::vector<RecordedOp> ops_;
};

uint64_t next_backend_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

constexpr auto kNoCheck = [] { return Status::ok_status(); };

class EmulatedDeviceBackend final : public Backend {
 public:
  explicit EmulatedDeviceBackend(std::unique_ptr<Backend> inner)
      : inner_(std::move(inner)),
        arena_(std::make_shared<Arena>()),
        name_("emulated:" + std::string(inner_->name())),
        id_(next_backend_id()) {}

  std::string_view name() const override { return name_; }
  bool supports(Op op, DType a, DType b) const override { return inner_->supports(op, a, b); }
  bool is_device() const override { return true; }

  Result<BackendTensor> allocate(DType dtype, std::span<const int64_t> shape) override {
    TESSERA_RETURN_IF_ERROR(check_allocate(dtype, shape));
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
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("upload"));
    const std::span<const int64_t> shape(host.shape().data(), static_cast<size_t>(host.ndim()));
    TESSERA_ASSIGN_OR_RETURN(BackendTensor dev, allocate(host.dtype(), shape));
    OpenScope open(*arena_);
    TESSERA_RETURN_IF_ERROR(inner_->copy(host, dev.view));
    return dev;
  }
  Status download(const Tensor& src, Tensor host_dst) override {
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("download"));
    OpenScope open(*arena_);
    return inner_->download(src, host_dst);
  }
  Status synchronize() override {
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("synchronize"));
    return inner_->synchronize();
  }

  // ---- Step graphs: as CUDA stream capture, ops between begin and end are recorded, not run.
  bool supports_graphs() const override { return true; }
  Status begin_capture() override {
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("begin_capture"));
    capture_.emplace();
    return Status::ok_status();
  }
  Result<std::unique_ptr<StepGraph>> end_capture() override {
    if (!capture_) {
      return invalid_argument("end_capture: backend {} is not capturing (call begin_capture)",
                              name_);
    }
    Capture done = std::move(*capture_);
    capture_.reset();
    if (!done.error.ok()) return done.error;
    return std::unique_ptr<StepGraph>(new EmulatedStepGraph(id_, std::move(done.ops)));
  }
  Status replay(const StepGraph& graph) override {
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("replay"));
    const auto* recorded = dynamic_cast<const EmulatedStepGraph*>(&graph);
    if (recorded == nullptr || recorded->owner() != id_) {
      return invalid_argument("replay: the graph was not captured by this backend ({})", name_);
    }
    OpenScope open(*arena_);
    const std::vector<RecordedOp>& ops = recorded->ops();
    for (size_t i = 0; i < ops.size(); ++i) {
      Status s = ops[i].run();
      if (!s.ok()) {
        return Status(s.code(), fmt::format("replay: op {} of {} ({}): {}", i, ops.size(),
                                            ops[i].name, s.message()));
      }
    }
    return Status::ok_status();
  }

  // ---- Ops: run now (arena open) or, while capturing, recorded (see run_or_record).
  Status copy(const Tensor& src, Tensor dst) override {
    return run_or_record(
        "copy", {arg("src", src), arg("dst", dst)}, [&] { return check_copy(src, dst); },
        [=, this] { return inner_->copy(src, dst); });
  }
  Status moe_combine(const Tensor& x, const Tensor& weights, Tensor out) override {
    return run_or_record(
        "moe_combine", {arg("x", x), arg("weights", weights), arg("out", out)},
        [&] { return check_moe_combine(x, weights, out); },
        [=, this] { return inner_->moe_combine(x, weights, out); });
  }
  // NOTE: never captured: its parameters are a host array (sampling runs outside graphs).
  Status sample(const Tensor& logits, std::span<const SampleParams> params,
                Tensor out_ids) override {
    TESSERA_RETURN_IF_ERROR(fail_if_capturing("sample"));
    OpenScope open(*arena_);
    return inner_->sample(logits, params, out_ids);
  }
  Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                     Tensor out) override {
    return run_or_record(
        "matmul_int8", {arg("x", x), arg("w", w), arg("w_scale", w_scale), arg("out", out)},
        [&] { return check_matmul_int8(x, w, w_scale, mode, out); },
        [=, this] { return inner_->matmul_int8(x, w, w_scale, mode, out); });
  }
  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    return run_or_record(
        "embedding", {arg("table", table), arg("ids", ids), arg("out", out)},
        [&] { return check_embedding(table, ids, out, MetadataAccess::kBackend); },
        [=, this] { return inner_->embedding(table, ids, out); });
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    return run_or_record(
        "matmul", {arg("x", x), arg("w", w), arg("out", out)},
        [&] { return check_matmul(x, w, out); }, [=, this] { return inner_->matmul(x, w, out); });
  }
  Status matmul_batched(const Tensor& x, const Tensor& w, Tensor out) override {
    return run_or_record(
        "matmul_batched", {arg("x", x), arg("w", w), arg("out", out)},
        [&] { return check_matmul_batched(x, w, out); },
        [=, this] { return inner_->matmul_batched(x, w, out); });
  }
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override {
    return run_or_record(
        "rms_norm", {arg("x", x), arg("weight", weight), arg("out", out)},
        [&] { return check_rms_norm(x, weight, eps, out); },
        [=, this] { return inner_->rms_norm(x, weight, eps, out); });
  }
  // NOTE: check_rope and check_attention read the positions, so their shapes are checked at
  // replay (by the inner op) rather than at capture.
  Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) override {
    return run_or_record("rope", {arg("x", x), arg("positions", positions)}, kNoCheck,
                         [=, this] { return inner_->rope(x, positions, params); });
  }
  Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                   std::span<const int32_t> positions, float scale, Tensor out) override {
    return run_or_record("attention",
                         {arg("q", q), arg("k_cache", k_cache), arg("v_cache", v_cache),
                          arg("positions", positions), arg("out", out)},
                         kNoCheck, [=, this] {
                           return inner_->attention(q, k_cache, v_cache, positions, scale, out);
                         });
  }
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override {
    return run_or_record(
        "silu_mul", {arg("gate", gate), arg("up", up), arg("out", out)},
        [&] { return check_silu_mul(gate, up, out); },
        [=, this] { return inner_->silu_mul(gate, up, out); });
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    return run_or_record(
        "add", {arg("a", a), arg("b", b), arg("out", out)}, [&] { return check_add(a, b, out); },
        [=, this] { return inner_->add(a, b, out); });
  }
  Status convert(const Tensor& src, Tensor dst) override {
    return run_or_record(
        "convert", {arg("src", src), arg("dst", dst)}, [&] { return check_convert(src, dst); },
        [=, this] { return inner_->convert(src, dst); });
  }
  Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    return run_or_record(
        "paged_attention",
        {arg("q", q), arg("k_cache", k_cache), arg("v_cache", v_cache),
         arg("query_start", query_start), arg("seq_lens", seq_lens),
         arg("block_tables", block_tables), arg("out", out)},
        [&] {
          return check_paged_attention(q, k_cache, v_cache, query_start, seq_lens, block_tables,
                                       scale, out, MetadataAccess::kBackend);
        },
        [=, this] {
          return inner_->paged_attention(q, k_cache, v_cache, query_start, seq_lens, block_tables,
                                         scale, out);
        });
  }
  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                   Tensor k_cache, Tensor v_cache) override {
    return run_or_record(
        "kv_append",
        {arg("k", k), arg("v", v), arg("slot_mapping", slot_mapping), arg("k_cache", k_cache),
         arg("v_cache", v_cache)},
        [&] {
          return check_kv_append(k, v, slot_mapping, k_cache, v_cache, MetadataAccess::kBackend);
        },
        [=, this] { return inner_->kv_append(k, v, slot_mapping, k_cache, v_cache); });
  }
  Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                   Tensor out_ids, Tensor out_weights) override {
    return run_or_record(
        "moe_route",
        {arg("logits", logits), arg("bias", bias), arg("out_ids", out_ids),
         arg("out_weights", out_weights)},
        [&] { return check_moe_route(logits, bias, params, out_ids, out_weights); },
        [=, this] { return inner_->moe_route(logits, bias, params, out_ids, out_weights); });
  }
  // NOTE: the grouped matmuls' checks read the expert ids, so they run at replay only.
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    return run_or_record("moe_grouped_matmul",
                         {arg("x", x), arg("w", w), arg("ids", ids), arg("out", out)}, kNoCheck,
                         [=, this] { return inner_->moe_grouped_matmul(x, w, ids, out); });
  }
  Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                             const BlockScaleParams& block, Tensor out) override {
    return run_or_record(
        "matmul_block_scaled",
        {arg("x", x), arg("w", w), arg("w_scale_inv", w_scale_inv), arg("out", out)},
        [&] { return check_matmul_block_scaled(x, w, w_scale_inv, block, out); },
        [=, this] { return inner_->matmul_block_scaled(x, w, w_scale_inv, block, out); });
  }
  Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                         const Tensor& w_scale_inv, const Tensor& ids,
                                         const BlockScaleParams& block, Tensor out) override {
    return run_or_record("moe_grouped_matmul_block_scaled",
                         {arg("x", x), arg("w", w), arg("w_scale_inv", w_scale_inv),
                          arg("ids", ids), arg("out", out)},
                         kNoCheck, [=, this] {
                           return inner_->moe_grouped_matmul_block_scaled(x, w, w_scale_inv, ids,
                                                                          block, out);
                         });
  }

 private:
  // The ops recorded since begin_capture, or the first error (which ends it unsuccessfully).
  struct Capture {
    std::vector<RecordedOp> ops;
    Status error;
  };

  // Outside a capture, runs `fn` now with the arena open. While capturing, checks that every
  // operand is arena memory and the shapes (`check`, which must not read any operand's
  // values: the arena is closed), then records `fn`; a failure poisons the capture.
  template <typename Check, typename Fn>
  Status run_or_record(const char* op, std::initializer_list<Operand> operands, Check check,
                       Fn fn) {
    if (!capture_) {
      OpenScope open(*arena_);
      return fn();
    }
    if (!capture_->error.ok()) return capture_->error;
    for (const Operand& operand : operands) {
      TESSERA_RETURN_IF_ERROR(poison(check_resident(op, operand)));
    }
    TESSERA_RETURN_IF_ERROR(poison(check()));
    capture_->ops.push_back({op, std::move(fn)});
    return Status::ok_status();
  }

  Status check_resident(const char* op, const Operand& operand) {
    if (operand.begin == nullptr) return Status::ok_status();
    bool inside = false;
    {
      std::lock_guard<std::mutex> lock(arena_->mu);
      inside = arena_->contains_locked(operand.begin, operand.end);
    }
    if (inside) return Status::ok_status();
    return invalid_argument(
        "graph capture: {} operand `{}` is host memory (not this backend's); a replay would read "
        "stale data: upload it, or copy it into a backend tensor, before capturing",
        op, operand.name);
  }

  // While capturing: records `s` as the capture's error if it is the first one.
  Status poison(Status s) {
    if (!s.ok() && capture_ && capture_->error.ok()) capture_->error = s;
    return s;
  }

  Status fail_if_capturing(const char* what) {
    if (!capture_) return Status::ok_status();
    return poison(invalid_argument(
        "graph capture: {} is not allowed while backend {} is capturing (end_capture first)", what,
        name_));
  }

  std::unique_ptr<Backend> inner_;
  std::shared_ptr<Arena> arena_;
  std::string name_;
  uint64_t id_;                     // tells this backend's graphs from another's
  std::optional<Capture> capture_;  // set between begin_capture and end_capture (one thread)
};

}  // namespace

std::unique_ptr<Backend> make_emulated_device_backend(std::unique_ptr<Backend> inner) {
  TESSERA_CHECK(inner != nullptr && !inner->is_device(),
                "the emulated device wraps a host backend");
  return std::make_unique<EmulatedDeviceBackend>(std::move(inner));
}

}  // namespace tessera::backend
