// CudaBackend: op_checks, then operand staging (device views as is, host views copied), then
// the kernels of kernels/cuda on the backend's stream. Dense matmul goes through cuBLASLt, GGUF
// block types through cuda_gguf.cc. Step
// graphs are CUDA stream capture of the same ops (docs/cuda.md "CUDA graphs").
// Invariant: an op on device-resident operands only enqueues work (errors of asynchronous
// kernels surface at synchronize()); an op with any host operand returns after its outputs
// are back on the host; device-resident metadata (ids, positions, block tables) is never read
// on the host.
#include "tessera/backend/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/attention/paged_attention.h"
#include "kernels/cuda/elementwise/elementwise.h"
#include "kernels/cuda/gemm/gemm.h"
#include "kernels/cuda/norm/rms_norm.h"
#include "kernels/cuda/rope/rope.h"
#include "kernels/ref/ops.h"
#include "src/backend/cuda/cuda_ops.h"
#include "src/backend/cuda/device_constants.h"
#include "src/backend/cuda/staging.h"
#include "tessera/backend/op_checks.h"

namespace tessera::backend {
namespace {

using cuda::DeviceConstants;
using cuda::is_device_pointer;
using cuda::Staging;
namespace kc = kernels::cuda;

constexpr int64_t kLtWorkspaceBytes = 32ll << 20;
constexpr int64_t kMaxAttentionWorkspaceBytes = 256ll << 20;

bool is_plain_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

int64_t elem_bytes(const Tensor& t) { return dtype_info(t.dtype()).block_bytes; }

kc::RowLayout rows_of(const Tensor& t) {
  kc::RowLayout l;
  l.outer_ndim = t.ndim() - 1;
  l.row_elems = t.dim(-1);
  l.num_rows = 1;
  for (int d = 0; d < l.outer_ndim; ++d) {
    l.shape[d] = t.dim(d);
    l.stride[d] = t.stride_bytes(d) / elem_bytes(t);
    l.num_rows *= t.dim(d);
  }
  return l;
}

// Whether any of these (possibly empty) operands is device memory: then the op's metadata is
// checked for shape only and never read on the host.
MetadataAccess access_of(std::initializer_list<const void*> data) {
  for (const void* p : data) {
    if (p != nullptr && is_device_pointer(p)) return MetadataAccess::kBackend;
  }
  return MetadataAccess::kHost;
}

// What the host-reading op_checks get for a span: the span itself when on the host, else zeros
// of its length (shapes are still checked; the runner validated the values it uploaded).
std::span<const int32_t> host_or_zeros(std::span<const int32_t> values,
                                       std::vector<int32_t>& zeros) {
  if (values.empty() || !is_device_pointer(values.data())) return values;
  zeros.assign(values.size(), 0);
  return zeros;
}

// One instantiated capture; replayable on the backend that made it.
class CudaStepGraph final : public StepGraph {
 public:
  CudaStepGraph(cudaGraphExec_t exec, const void* owner) : exec_(exec), owner_(owner) {}
  // NOTE: an executable graph destroyed while a replay is in flight is freed when it completes.
  ~CudaStepGraph() override { (void)cudaGraphExecDestroy(exec_); }
  CudaStepGraph(const CudaStepGraph&) = delete;
  CudaStepGraph& operator=(const CudaStepGraph&) = delete;

  cudaGraphExec_t exec() const { return exec_; }
  const void* owner() const { return owner_; }

 private:
  cudaGraphExec_t exec_;
  const void* owner_;
};

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(int device, cudaStream_t stream, kc::LtContext* lt, int num_sms, int sm_version)
      : device_(device), stream_(stream), lt_(lt), num_sms_(num_sms) {
    ctx_ = cuda::CudaContext{device, stream, lt, num_sms, sm_version, &arena_};
  }
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (arena_.capturing()) abandon_capture();
    cudaStreamSynchronize(stream_);
    kc::lt_destroy(lt_);
    cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return "cuda"; }

  bool supports(Op op, DType a, DType b) const override {
    if (op == Op::kMatmul || op == Op::kEmbedding) {
      return is_plain_float(a) || cuda::cuda_gguf_supports(a);
    }
    if (op == Op::kAttention || op == Op::kPagedAttention || op == Op::kKvAppend) {
      return is_plain_float(a);
    }
    if (op == Op::kConvert) return is_plain_float(b);
    if (op == Op::kMatmulBlockScaled) return a == DType::kFP8_E4M3 && b == DType::kF32;
    if (op == Op::kMoeRoute || op == Op::kMoeGroupedMatmul ||
        op == Op::kMoeGroupedMatmulBlockScaled || op == Op::kMoeCombine) {
      return cuda::cuda_moe_supports(op, a, b);
    }
    if (op == Op::kCopy || op == Op::kSample) return true;
    if (op == Op::kMatmulInt8) return a == DType::kI8;
    if (op == Op::kMatmulBatched) return is_plain_float(a);
    return op == Op::kRmsNorm || op == Op::kRope || op == Op::kSiluMul || op == Op::kAdd;
  }

  // ---- Memory and the op families outside this file (src/backend/cuda/cuda_ops.h).
  bool is_device() const override { return true; }
  Result<BackendTensor> allocate(DType dtype, std::span<const int64_t> shape) override {
    return cuda::cuda_allocate(ctx_, dtype, shape);
  }
  using Backend::allocate;
  Result<BackendTensor> upload(const Tensor& host) override {
    if (Status s = guard("upload"); !s.ok()) return s;
    Result<BackendTensor> r = cuda::cuda_upload(ctx_, host);
    if (!r.ok()) note_error(r.status());
    return r;
  }
  Status download(const Tensor& src, Tensor host_dst) override {
    return op("download", [&] { return cuda::cuda_download(ctx_, src, host_dst); });
  }
  Status synchronize() override {
    return op("synchronize", [&] {
      TESSERA_RETURN_IF_ERROR(cuda::refuse_while_capturing(
          ctx_, "synchronize", "a recorded step cannot wait (synchronize after replay)"));
      TESSERA_CUDA_RETURN(cudaStreamSynchronize(stream_), "synchronize");
      return Status::ok_status();
    });
  }
  Status copy(const Tensor& src, Tensor dst) override {
    return op("copy", [&] { return cuda::cuda_copy(ctx_, src, dst); });
  }
  Status moe_combine(const Tensor& x, const Tensor& weights, Tensor out) override {
    return op("moe_combine", [&] { return cuda::cuda_moe_combine(ctx_, x, weights, out); });
  }
  Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                   Tensor out_ids, Tensor out_weights) override {
    return op("moe_route", [&] {
      return cuda::cuda_moe_route(ctx_, logits, bias, params, out_ids, out_weights);
    });
  }
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    return op("moe_grouped_matmul",
              [&] { return cuda::cuda_moe_grouped_matmul(ctx_, x, w, ids, out); });
  }
  Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                             const BlockScaleParams& block, Tensor out) override {
    return op("matmul_block_scaled",
              [&] { return cuda::cuda_matmul_block_scaled(ctx_, x, w, w_scale_inv, block, out); });
  }
  Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                         const Tensor& w_scale_inv, const Tensor& ids,
                                         const BlockScaleParams& block, Tensor out) override {
    return op("moe_grouped_matmul_block_scaled", [&] {
      return cuda::cuda_moe_grouped_matmul_block_scaled(ctx_, x, w, w_scale_inv, ids, block, out);
    });
  }
  Status sample(const Tensor& logits, std::span<const SampleParams> params,
                Tensor out_ids) override {
    return op("sample", [&] { return cuda::cuda_sample(ctx_, logits, params, out_ids); });
  }
  Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                     Tensor out) override {
    return op("matmul_int8",
              [&] { return cuda::cuda_matmul_int8(ctx_, x, w, w_scale, mode, out); });
  }
  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    return op("embedding", [&] { return embedding_op(table, ids, out); });
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    return op("matmul", [&] { return matmul_op(x, w, out); });
  }
  Status matmul_batched(const Tensor& x, const Tensor& w, Tensor out) override {
    return op("matmul_batched", [&] { return cuda::cuda_matmul_batched(ctx_, x, w, out); });
  }
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override {
    return op("rms_norm", [&] { return rms_norm_op(x, weight, eps, out); });
  }
  Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) override {
    return op("rope", [&] { return rope_op(x, positions, params); });
  }
  Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                   std::span<const int32_t> positions, float scale, Tensor out) override {
    return op("attention",
              [&] { return attention_op(q, k_cache, v_cache, positions, scale, out); });
  }
  Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    return op("paged_attention", [&] {
      return paged_attention_op(q, k_cache, v_cache, query_start, seq_lens, block_tables, scale,
                                out);
    });
  }
  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                   Tensor k_cache, Tensor v_cache) override {
    return op("kv_append", [&] { return kv_append_op(k, v, slot_mapping, k_cache, v_cache); });
  }
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override {
    return op("silu_mul", [&] {
      TESSERA_RETURN_IF_ERROR(check_silu_mul(gate, up, out));
      return binary(gate, up, out, /*is_add=*/false);
    });
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    return op("add", [&] {
      TESSERA_RETURN_IF_ERROR(check_add(a, b, out));
      return binary(a, b, out, /*is_add=*/true);
    });
  }
  Status convert(const Tensor& src, Tensor dst) override {
    return op("convert", [&] { return convert_op(src, dst); });
  }

  // ---- Step graphs.
  bool supports_graphs() const override { return true; }

  Status begin_capture() override {
    if (arena_.capturing()) {
      return invalid_argument("begin_capture: a capture is already in progress (end_capture it)");
    }
    capture_failed_ = false;  // a failed capture nobody ended: its error is dropped
    capture_error_ = Status::ok_status();
    captured_ops_ = 0;
    last_op_ = "none";
    TESSERA_RETURN_IF_ERROR(arena_.presize());
    // NOTE: relaxed, not thread-local: a capture may need calls CUDA deems "potentially unsafe"
    // (cudaMalloc when the capture scratch arena grows, cudaFuncSetAttribute and lazy module
    // loading on a kernel's first launch, cuBLASLt's host-side setup); none of them is a stream
    // operation, so relaxed mode lets them run without invalidating the capture, and the ops
    // themselves refuse what truly cannot be recorded (host operands, waits). Relaxed also keeps
    // another thread's backend (tensor parallelism) from invalidating this capture.
    TESSERA_CUDA_RETURN(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed),
                        "begin_capture");
    arena_.set_capturing(true);
    return Status::ok_status();
  }

  Result<std::unique_ptr<StepGraph>> end_capture() override {
    if (capture_failed_) {
      capture_failed_ = false;
      return std::exchange(capture_error_, Status::ok_status());
    }
    if (!arena_.capturing()) {
      return invalid_argument("end_capture: no capture in progress (call begin_capture first)");
    }
    arena_.set_capturing(false);
    cudaGraph_t graph = nullptr;
    const cudaError_t end_err = cudaStreamEndCapture(stream_, &graph);
    if (end_err != cudaSuccess) {
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      return capture_failure(end_err, "end");
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst_err = cudaGraphInstantiate(&exec, graph, 0);
    (void)cudaGraphDestroy(graph);  // the executable graph keeps its own copy
    if (inst_err != cudaSuccess) {
      (void)cudaGetLastError();
      return capture_failure(inst_err, "instantiate");
    }
    return std::unique_ptr<StepGraph>(std::make_unique<CudaStepGraph>(exec, this));
  }

  Status replay(const StepGraph& graph) override {
    if (arena_.capturing() || capture_failed_) {
      return invalid_argument("replay: not while a capture is open (end_capture first)");
    }
    const auto* g = dynamic_cast<const CudaStepGraph*>(&graph);
    if (g == nullptr || g->owner() != this) {
      return invalid_argument("replay: the graph was not captured by this backend");
    }
    TESSERA_CUDA_RETURN(cudaGraphLaunch(g->exec(), stream_), "replay");
    return Status::ok_status();
  }

 private:
  // Runs one op; while capturing, its error ends the capture (the stream leaves capture mode at
  // once) and later ops fail with the same error until end_capture reports it.
  template <typename F>
  Status op(const char* name, F&& run) {
    if (Status s = guard(name); !s.ok()) return s;
    Status s = run();
    if (!s.ok()) note_error(s);
    return s;
  }
  Status guard(const char* name) {
    if (capture_failed_) return capture_error_;
    if (arena_.capturing()) {
      ++captured_ops_;
      last_op_ = name;
    }
    return Status::ok_status();
  }
  void note_error(const Status& s) {
    if (!arena_.capturing()) return;
    abandon_capture();
    capture_failed_ = true;
    capture_error_ = s;
  }
  // Leaves capture mode, dropping whatever was recorded.
  void abandon_capture() {
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    arena_.set_capturing(false);
  }
  Status capture_failure(cudaError_t err, const char* stage) const {
    return make_error(StatusCode::kInternal,
                      "graph capture: {} failed: {} ({}) after {} ops, the last {} (an op "
                      "enqueued work the capture could not record)",
                      stage, cudaGetErrorString(err), cudaGetErrorName(err), captured_ops_,
                      last_op_);
  }

  Status embedding_op(const Tensor& table, std::span<const int32_t> ids, Tensor out) {
    if (cuda::cuda_gguf_supports(table.dtype())) {
      return cuda::cuda_embedding_gguf(ctx_, table, ids, out, access_of({ids.data()}));
    }
    TESSERA_RETURN_IF_ERROR(check_embedding(table, ids, out, access_of({ids.data()})));
    if (!is_plain_float(table.dtype())) {
      return unimplemented("embedding: the CUDA backend has no kernel for table {}",
                           table.describe());
    }
    Staging st(stream_, &arena_, "embedding");
    const int ht = st.add(table, false), hi = st.add_ints(ids), ho = st.add(out, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor t = st.dev(ht);
    Tensor o = st.dev(ho);
    TESSERA_CUDA_RETURN(
        kc::embedding(table.dtype(), t.data(), t.stride_bytes(0) / elem_bytes(t), st.dev_ints(hi),
                      static_cast<int64_t>(ids.size()), o.data_as<float>(), rows_of(o), stream_),
        "embedding");
    return st.finish();
  }

  Status matmul_op(const Tensor& x, const Tensor& w, Tensor out) {
    if (cuda::cuda_gguf_supports(w.dtype())) return cuda::cuda_matmul_gguf(ctx_, x, w, out);
    TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
    if (!is_plain_float(w.dtype())) {
      return unimplemented("matmul: the CUDA backend has no kernel for weight {}", w.describe());
    }
    const int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
    Staging st(stream_, &arena_, "matmul");
    const int hx = st.add(x, false), hw = st.add(w, false), ho = st.add(out, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    if (M == 0 || N == 0) return st.finish();
    const Tensor dx = st.dev(hx), dw = st.dev(hw);
    Tensor dout = st.dev(ho);
    const void* xp = dx.data();
    int64_t ldx = dx.stride_bytes(0) / 4;
    if (w.dtype() != DType::kF32) {  // NOTE: cuBLASLt wants A and B in one type: round x
      TESSERA_ASSIGN_OR_RETURN(void* xc, st.scratch(M * K * 2));
      kc::RowLayout dst;
      dst.outer_ndim = 1;
      dst.shape[0] = M;
      dst.stride[0] = K;
      dst.num_rows = M;
      dst.row_elems = K;
      TESSERA_CUDA_RETURN(
          kc::convert(dx.data_as<const float>(), rows_of(dx), w.dtype(), xc, dst, stream_),
          "matmul convert");
      xp = xc;
      ldx = K;
    }
    TESSERA_CUDA_RETURN(
        kc::lt_gemm(lt_, w.dtype(), xp, ldx, dw.data(), dw.stride_bytes(0) / elem_bytes(dw),
                    dout.data_as<float>(), dout.stride_bytes(0) / 4, M, N, K, stream_),
        "matmul (cuBLASLt)");
    return st.finish();
  }

  Status rms_norm_op(const Tensor& x, const Tensor& weight, float eps, Tensor out) {
    TESSERA_RETURN_IF_ERROR(check_rms_norm(x, weight, eps, out));
    Staging st(stream_, &arena_, "rms_norm");
    const int hx = st.add(x, false), hw = st.add(weight, false), ho = st.add(out, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor dx = st.dev(hx), dw = st.dev(hw);
    Tensor dout = st.dev(ho);
    TESSERA_CUDA_RETURN(
        kc::rms_norm(dx.data_as<const float>(), rows_of(dx), dw.data_as<const float>(), eps,
                     dout.data_as<float>(), rows_of(dout), stream_),
        "rms_norm");
    return st.finish();
  }

  Status rope_op(Tensor x, std::span<const int32_t> positions, const RopeParams& params) {
    std::vector<int32_t> zeros;
    TESSERA_RETURN_IF_ERROR(check_rope(x, host_or_zeros(positions, zeros), params));
    const kernels::RopeSpec spec = to_rope_spec(params);
    TESSERA_ASSIGN_OR_RETURN(const DeviceConstants::Entry* table, rope_table(spec));
    Staging st(stream_, &arena_, "rope");
    const int hx = st.add(x, true), hp = st.add_ints(positions);
    TESSERA_RETURN_IF_ERROR(st.stage());
    Tensor dx = st.dev(hx);
    if (!dx.empty()) {
      const Strides3 s = elem_strides3(dx);
      TESSERA_CUDA_RETURN(
          kc::rope(dx.data_as<float>(), dx.dim(0), dx.dim(1), s.s0, s.s1, st.dev_ints(hp),
                   static_cast<const double*>(table->dev), spec.rot_dim,
                   spec.style == kernels::RopeSpec::Style::kNeox, table->host_value, stream_),
          "rope");
    }
    return st.finish();
  }

  // inv_freq of `spec` in device memory (f64 [max(1, rot_dim / 2)]) and its attention factor,
  // computed and uploaded on the spec's first use.
  Result<const DeviceConstants::Entry*> rope_table(const kernels::RopeSpec& spec) {
    std::string key = "rope";
    cuda::append_key(key, spec.style);
    cuda::append_key(key, spec.rot_dim);
    cuda::append_key(key, spec.theta);
    cuda::append_key(key, spec.scaling);
    cuda::append_key(key, spec.factor);
    cuda::append_key(key, spec.low_freq_factor);
    cuda::append_key(key, spec.high_freq_factor);
    cuda::append_key(key, spec.original_max_position_embeddings);
    cuda::append_key(key, spec.beta_fast);
    cuda::append_key(key, spec.beta_slow);
    cuda::append_key(key, spec.mscale);
    if (const DeviceConstants::Entry* e = constants_.find(key)) return e;
    std::vector<double> inv_freq(std::max(1, spec.rot_dim / 2));
    const double attention_factor = kernels::ref::rope_inv_freq(spec, inv_freq.data());
    return constants_.add(key, std::as_bytes(std::span<const double>(inv_freq)), attention_factor,
                          stream_, arena_.capturing(), "rope");
  }

  // The one-sequence batch layout of attention in device memory: i32 [4] = query_start {0, T},
  // seq_lens {S}, block_tables {0}.
  Result<const DeviceConstants::Entry*> attention_layout(int32_t num_tokens, int32_t num_slots) {
    std::string key = "attention";
    cuda::append_key(key, num_tokens);
    cuda::append_key(key, num_slots);
    if (const DeviceConstants::Entry* e = constants_.find(key)) return e;
    const int32_t layout[4] = {0, num_tokens, num_slots, 0};
    return constants_.add(key, std::as_bytes(std::span<const int32_t>(layout)), 0.0, stream_,
                          arena_.capturing(), "attention");
  }

  Status attention_op(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      std::span<const int32_t> positions, float scale, Tensor out) {
    std::vector<int32_t> zeros;
    TESSERA_RETURN_IF_ERROR(
        check_attention(q, k_cache, v_cache, host_or_zeros(positions, zeros), scale, out));
    if (q.dim(0) == 0) return Status::ok_status();
    // One sequence over a contiguous cache = the paged kernel with one block of S slots.
    const int64_t S = k_cache.dim(0);
    const int32_t T = static_cast<int32_t>(q.dim(0));
    const bool device_positions = !zeros.empty();
    // NOTE: with `positions` set the kernels (split-K, flash, MLA) bound each query's keys by
    // positions[t] and never read seq_lens, so with device positions the cache size S serves
    // as the split's bound: partitions past a query's keys are skipped and never reduced.
    int64_t max_keys = S;
    const int32_t query_start[2] = {0, T};
    int32_t seq_len[1] = {static_cast<int32_t>(S)};
    const int32_t table[1] = {0};
    const int32_t* layout = nullptr;
    if (device_positions) {
      TESSERA_ASSIGN_OR_RETURN(const DeviceConstants::Entry* e,
                               attention_layout(T, static_cast<int32_t>(S)));
      layout = static_cast<const int32_t*>(e->dev);
    } else {
      max_keys = *std::max_element(positions.begin(), positions.end()) + 1;
      seq_len[0] = static_cast<int32_t>(max_keys);
    }
    Staging st(stream_, &arena_, "attention");
    const int hq = st.add(q, false), hk = st.add(k_cache, false), hv = st.add(v_cache, false);
    const int ho = st.add(out, true), hp = st.add_ints(positions);
    const int hqs = layout ? -1 : st.add_ints(query_start);
    const int hsl = layout ? -1 : st.add_ints(seq_len);
    const int hbt = layout ? -1 : st.add_ints(table);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor dq = st.dev(hq), dk = st.dev(hk), dv = st.dev(hv);
    Tensor dout = st.dev(ho);
    const Strides3 qs = elem_strides3(dq), ks = elem_strides3(dk), vs = elem_strides3(dv),
                   os = elem_strides3(dout);
    kc::PagedAttentionParams p{};
    p.q = dq.data_as<const float>();
    p.q_tok = qs.s0;
    p.q_head = qs.s1;
    p.k = dk.data();
    p.k_block = ks.s0 * S;
    p.k_slot = ks.s0;
    p.k_head = ks.s1;
    p.v = dv.data();
    p.v_block = vs.s0 * S;
    p.v_slot = vs.s0;
    p.v_head = vs.s1;
    p.kv_type = k_cache.dtype();
    p.out = dout.data_as<float>();
    p.o_tok = os.s0;
    p.o_head = os.s1;
    p.num_tokens = q.dim(0);
    p.num_seqs = 1;
    p.num_q_heads = q.dim(1);
    p.num_kv_heads = k_cache.dim(1);
    p.head_dim = q.dim(2);
    p.v_head_dim = v_cache.dim(2);
    p.block_size = S;
    p.query_start = layout ? layout : st.dev_ints(hqs);
    p.seq_lens = layout ? layout + 2 : st.dev_ints(hsl);
    p.block_tables = layout ? layout + 3 : st.dev_ints(hbt);
    p.bt_stride = 1;
    p.scale = scale;
    p.positions = st.dev_ints(hp);
    TESSERA_RETURN_IF_ERROR(run_paged(p, max_keys, st));
    return st.finish();
  }

  Status paged_attention_op(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                            const Tensor& block_tables, float scale, Tensor out) {
    const MetadataAccess access =
        access_of({query_start.data(), seq_lens.data(), block_tables.data()});
    TESSERA_RETURN_IF_ERROR(check_paged_attention(q, k_cache, v_cache, query_start, seq_lens,
                                                  block_tables, scale, out, access));
    if (q.dim(0) == 0) return Status::ok_status();
    Staging st(stream_, &arena_, "paged_attention");
    const int hq = st.add(q, false), hk = st.add(k_cache, false), hv = st.add(v_cache, false);
    const int ho = st.add(out, true), hbt = st.add(block_tables, false);
    const int hqs = st.add_ints(query_start), hsl = st.add_ints(seq_lens);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor dq = st.dev(hq), dk = st.dev(hk), dv = st.dev(hv), dbt = st.dev(hbt);
    Tensor dout = st.dev(ho);
    const Strides3 qs = elem_strides3(dq), os = elem_strides3(dout);
    const Strides4 ks = elem_strides4(dk), vs = elem_strides4(dv);
    kc::PagedAttentionParams p{};
    p.q = dq.data_as<const float>();
    p.q_tok = qs.s0;
    p.q_head = qs.s1;
    p.k = dk.data();
    p.k_block = ks.s0;
    p.k_slot = ks.s1;
    p.k_head = ks.s2;
    p.v = dv.data();
    p.v_block = vs.s0;
    p.v_slot = vs.s1;
    p.v_head = vs.s2;
    p.kv_type = k_cache.dtype();
    p.out = dout.data_as<float>();
    p.o_tok = os.s0;
    p.o_head = os.s1;
    p.num_tokens = q.dim(0);
    p.num_seqs = static_cast<int64_t>(seq_lens.size());
    p.num_q_heads = q.dim(1);
    p.num_kv_heads = k_cache.dim(2);
    p.head_dim = q.dim(2);
    p.v_head_dim = v_cache.dim(3);
    p.block_size = k_cache.dim(1);
    p.query_start = st.dev_ints(hqs);
    p.seq_lens = st.dev_ints(hsl);
    p.block_tables = dbt.data_as<const int32_t>();
    p.bt_stride = dbt.ndim() == 2 ? dbt.stride_bytes(0) / 4 : 0;
    p.scale = scale;
    // NOTE: device seq_lens cannot be read here; the table width bounds every sequence (a
    // graph bucket's context), and the kernels skip the partitions past each query's keys.
    const int64_t max_len = seq_lens.empty() || is_device_pointer(seq_lens.data())
                                ? block_tables.dim(1) * k_cache.dim(1)
                                : *std::max_element(seq_lens.begin(), seq_lens.end());
    TESSERA_RETURN_IF_ERROR(run_paged(p, max_len, st));
    return st.finish();
  }

  Status kv_append_op(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                      Tensor k_cache, Tensor v_cache) {
    TESSERA_RETURN_IF_ERROR(
        check_kv_append(k, v, slot_mapping, k_cache, v_cache, access_of({slot_mapping.data()})));
    if (slot_mapping.empty()) return Status::ok_status();
    Staging st(stream_, &arena_, "kv_append");
    const int hk = st.add(k, false), hv = st.add(v, false), hs = st.add_ints(slot_mapping);
    const int hkc = st.add(k_cache, true), hvc = st.add(v_cache, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor dk = st.dev(hk), dv = st.dev(hv);
    Tensor dkc = st.dev(hkc), dvc = st.dev(hvc);
    const Strides3 ks = elem_strides3(dk), vs = elem_strides3(dv);
    const Strides4 kcs = elem_strides4(dkc), vcs = elem_strides4(dvc);
    kc::KvAppendParams p{};
    p.k = dk.data_as<const float>();
    p.k_tok = ks.s0;
    p.k_head = ks.s1;
    p.v = dv.data_as<const float>();
    p.v_tok = vs.s0;
    p.v_head = vs.s1;
    p.slot_mapping = st.dev_ints(hs);
    p.k_cache = dkc.data();
    p.kc_block = kcs.s0;
    p.kc_slot = kcs.s1;
    p.kc_head = kcs.s2;
    p.v_cache = dvc.data();
    p.vc_block = vcs.s0;
    p.vc_slot = vcs.s1;
    p.vc_head = vcs.s2;
    p.cache_type = k_cache.dtype();
    p.num_tokens = k.dim(0);
    p.num_kv_heads = k.dim(1);
    p.head_dim = k.dim(2);
    p.v_head_dim = v.dim(2);
    p.block_size = k_cache.dim(1);
    TESSERA_CUDA_RETURN(kc::kv_append(p, stream_), "kv_append");
    return st.finish();
  }

  Status convert_op(const Tensor& src, Tensor dst) {
    TESSERA_RETURN_IF_ERROR(check_convert(src, dst));
    Staging st(stream_, &arena_, "convert");
    const int hs = st.add(src, false), hd = st.add(dst, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor ds = st.dev(hs);
    Tensor dd = st.dev(hd);
    if (!ds.empty()) {
      TESSERA_CUDA_RETURN(kc::convert(ds.data_as<const float>(), rows_of(ds), dst.dtype(),
                                      dd.data(), rows_of(dd), stream_),
                          "convert");
    }
    return st.finish();
  }

  Status binary(const Tensor& a, const Tensor& b, Tensor out, bool is_add) {
    Staging st(stream_, &arena_, is_add ? "add" : "silu_mul");
    const int ha = st.add(a, false), hb = st.add(b, false), ho = st.add(out, true);
    TESSERA_RETURN_IF_ERROR(st.stage());
    const Tensor da = st.dev(ha), db = st.dev(hb);
    Tensor dout = st.dev(ho);
    if (dout.empty()) return st.finish();
    const cudaError_t err =
        is_add ? kc::add(da.data_as<const float>(), rows_of(da), db.data_as<const float>(),
                         rows_of(db), dout.data_as<float>(), rows_of(dout), stream_)
               : kc::silu_mul(da.data_as<const float>(), rows_of(da), db.data_as<const float>(),
                              rows_of(db), dout.data_as<float>(), rows_of(dout), stream_);
    TESSERA_CUDA_RETURN(err, is_add ? "add" : "silu_mul");
    return st.finish();
  }

  Status run_paged(kc::PagedAttentionParams& p, int64_t max_len, Staging& st) {
    kc::choose_paged_attention_split(p, max_len, num_sms_, kMaxAttentionWorkspaceBytes);
    const int64_t ws = kc::paged_attention_workspace_bytes(p.num_tokens, p.num_q_heads,
                                                           p.v_head_dim, p.num_partitions);
    if (ws > 0) {
      TESSERA_ASSIGN_OR_RETURN(p.workspace, st.scratch(ws));
    }
    TESSERA_CUDA_RETURN(kc::paged_attention(p, stream_), "paged_attention");
    return Status::ok_status();
  }

  int device_;
  cudaStream_t stream_;
  kc::LtContext* lt_;
  int num_sms_;
  cuda::CaptureArena arena_;
  DeviceConstants constants_;
  cuda::CudaContext ctx_;
  // Step-graph capture: an op error while capturing ends the capture; end_capture reports it.
  bool capture_failed_ = false;
  Status capture_error_;
  int captured_ops_ = 0;
  const char* last_op_ = "none";
};

}  // namespace

Result<std::unique_ptr<CudaBackend>> make_cuda_backend(int device) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return make_error(StatusCode::kUnavailable, "no usable CUDA device: {}",
                      err != cudaSuccess ? cudaGetErrorString(err) : "none visible");
  }
  if (device < 0 || device >= count) {
    return invalid_argument("CUDA device {} does not exist ({} visible)", device, count);
  }
  TESSERA_CUDA_RETURN(cudaSetDevice(device), "set device");
  int num_sms = 0;
  TESSERA_CUDA_RETURN(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device),
                      "device attributes");
  int major = 0, minor = 0;
  TESSERA_CUDA_RETURN(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
                      "device attributes");
  TESSERA_CUDA_RETURN(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
                      "device attributes");
  cudaStream_t stream = nullptr;
  TESSERA_CUDA_RETURN(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  kc::LtContext* lt = nullptr;
  const cudaError_t lt_err = kc::lt_create(&lt, kLtWorkspaceBytes);
  if (lt_err != cudaSuccess) {
    cudaStreamDestroy(stream);
    return cuda::cuda_status(lt_err, "cuBLASLt init");
  }
  return std::unique_ptr<CudaBackend>(
      std::make_unique<CudaBackendImpl>(device, stream, lt, num_sms, major * 10 + minor));
}

}  // namespace tessera::backend
