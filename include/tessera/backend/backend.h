// Backend: the op set every device implements (CPU now, CUDA later). Models are written once
// against this interface. Each op validates its arguments through backend/op_checks.h, so a
// bad shape fails with a clear Status at the call, never deep inside a kernel.
// Invariant: ops never allocate on the hot path; outputs are caller-provided views.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>

#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend {

enum class Op {
  kEmbedding,
  kMatmul,
  kRmsNorm,
  kRope,
  kAttention,
  kSiluMul,
  kAdd,
  kConvert,
  kPagedAttention,               // supports(op, cache dtype, _)
  kKvAppend,                     // supports(op, cache dtype, _)
  kMoeRoute,                     // supports(op, _, _)
  kMoeGroupedMatmul,             // supports(op, weight dtype, _)
  kMatmulBlockScaled,            // supports(op, weight dtype, scale dtype)
  kMoeGroupedMatmulBlockScaled,  // supports(op, weight dtype, scale dtype)
  kCopy,                         // supports(op, dtype, _)
  kMoeCombine,                   // supports(op, _, _)
  kSample,                       // supports(op, _, _)
  kMatmulInt8,                   // supports(op, kI8, _)
  kMatmulBatched,                // supports(op, weight dtype, _)
};

// Memory a backend owns (a model's weights, KV cache, workspace). The storage lives while any
// copy of the handle does; `view` is contiguous. On a device backend the view's data is device
// memory and must never be dereferenced on the host (docs/cuda.md "device residency").
struct BackendTensor {
  Tensor view;
  std::shared_ptr<void> storage;  // null when the view borrows the caller's memory (upload on
                                  // a host backend returns the host view itself)
};

// One row's sampling parameters for Backend::sample (docs/sampling.md "device sampling").
// Order as transformers applies them: temperature, top-k, top-p, min-p; then one draw.
struct SampleParams {
  float temperature = 1.0f;  // <= 0: greedy (argmax; the lowest id wins ties)
  int32_t top_k = 0;         // <= 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;         // the draw is a pure function of (seed, step): Philox4x32-10
  uint64_t step = 0;         // the sequence's output index (0 for its first sampled token)
};

// INT8 matmul modes (docs/ops.md "INT8 matmul").
enum class Int8Mode {
  kWeightOnly,  // out = x @ (w * w_scale[n])^T in f32 (w dequantised per tile)
  kW8A8,        // x quantised per row (scale = max|x_m| / 127, round half to even) to int8;
                // int32 dot products; out = dot * x_scale[m] * w_scale[n]
};

// Block geometry of a block-scaled FP8 weight (HF quantization_config.weight_block_size =
// [block_n, block_k]; DeepSeek-V3 uses [128, 128]): one scale per block_n output rows x
// block_k input columns.
struct BlockScaleParams {
  int64_t block_n = 128;
  int64_t block_k = 128;
};

// Rotary embedding parameters, named as HF's rope_scaling fields.
struct RopeParams {
  enum class Style {
    kNeox,         // rotate pairs (i, i + rot_dim/2)  — HF Llama layout
    kInterleaved,  // rotate pairs (2i, 2i + 1)        — GPT-J / DeepSeek / llama.cpp "norm"
  };
  enum class Scaling { kNone, kLinear, kLlama3, kYarn };

  Style style = Style::kNeox;
  int rot_dim = 0;         // leading dims of each head that rotate; the rest pass through
  float theta = 10000.0f;  // rope_theta
  Scaling scaling = Scaling::kNone;
  float factor = 1.0f;  // linear / llama3 / yarn factor
  // llama3
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;  // llama3 and yarn
  // yarn
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float mscale = 1.0f;          // attention scaling of cos/sin: yarn_get_mscale(factor, mscale)
  float mscale_all_dim = 0.0f;  // DeepSeek: divides mscale (see model code for the softmax fix)
};

// Mixture-of-experts router, named as HF's config fields (docs/ops.md "moe_route").
//   kSigmoid (DeepSeek-V3 "noaux_tc"): score = sigmoid(logit); selection uses score + bias
//     (e_score_correction_bias, optional); a group's score is the sum of its top-2 biased
//     scores; the best topk_group groups stay, the others' scores become 0 (transformers'
//     masked_fill 0.0); top_k over what remains; weights = unbiased scores of the chosen.
//   kSoftmax (DeepSeek-V2 greedy / group_limited_greedy, Mixtral): probs = softmax(logits); a
//     group's score is its max prob (n_group > 1 only); top_k; weights = their probs.
// Then, both: weights /= (sum + 1e-20) if norm_topk_prob; weights *= routed_scaling_factor.
// Ties pick the lower expert index; a token's ids are in descending selection score.
struct MoeRouteParams {
  enum class Scoring { kSoftmax, kSigmoid };
  Scoring scoring = Scoring::kSoftmax;
  int top_k = 1;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
};

// A recorded sequence of ops (docs/cuda.md "CUDA graphs"): replaying it runs the same ops on
// the same operand addresses; whatever those addresses hold at replay time is what they read.
// Owned by whoever captured it; valid while the backend and every captured operand live.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
};

// Where an op's integer metadata (ids, positions, slot mappings, query_start, seq_lens, block
// tables) lives, for the op_checks that would read it: kHost is validated value by value; kBackend
// (device memory written by the runner, docs/cuda.md "CUDA graphs") is checked for shape only,
// because its producer validated the host copy it uploaded.
enum class MetadataAccess { kHost, kBackend };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Whether `op` runs with these operand dtypes (e.g. kMatmul with weight q4_k).
  virtual bool supports(Op op, DType a, DType b) const = 0;

  // ---- Memory. Models keep weights, KV cache and activations in the backend's memory; host
  // backends (reference, CPU) use host memory, device backends (CUDA) device memory.
  // Whether this backend's memory is off the host (its tensors must not be read by host code).
  virtual bool is_device() const = 0;
  // A contiguous, uninitialised tensor in this backend's memory.
  virtual Result<BackendTensor> allocate(DType dtype, std::span<const int64_t> shape) = 0;
  Result<BackendTensor> allocate(DType dtype, std::initializer_list<int64_t> shape) {
    return allocate(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // A tensor in this backend's memory with the contents of `host` (contiguous or not; the
  // result is contiguous). Host backends return `host` itself without copying (storage null):
  // the caller keeps it alive (mmap'd weights already are).
  virtual Result<BackendTensor> upload(const Tensor& host) = 0;
  // Copies `src` (this backend's memory) into `host_dst` (host memory, same dtype and shape;
  // either may be strided). Returns once the data is on the host.
  virtual Status download(const Tensor& src, Tensor host_dst) = 0;
  // Waits for every op enqueued so far; reports an asynchronous device fault, if any.
  virtual Status synchronize() = 0;

  // ---- Step graphs (docs/cuda.md "CUDA graphs"). Between begin_capture and end_capture the
  // ops this thread calls are recorded, not run (as CUDA stream capture does): they must not
  // read or write host memory (every tensor and span an op gets is this backend's memory;
  // download, upload and synchronize fail), and an op error ends the capture with that error.
  // Backends without graphs return unimplemented.
  virtual bool supports_graphs() const { return false; }
  virtual Status begin_capture() {
    return unimplemented("begin_capture: backend {} has no step graphs", name());
  }
  // The recording since begin_capture (the capture ends even when this fails).
  virtual Result<std::unique_ptr<StepGraph>> end_capture() {
    return unimplemented("end_capture: backend {} has no step graphs", name());
  }
  // Enqueues the recorded ops (asynchronous on a device, like any op). `graph` must come from
  // this backend's end_capture.
  virtual Status replay(const StepGraph& graph) {
    return unimplemented("replay: backend {} has no step graphs", name());
  }

  // ---- Ops.
  // dst = src.   Same dtype (any, block types included) and shape; rows may be strided; dst in
  // this backend's memory; src in it too, or host memory (a write into an existing tensor:
  // the host source may be reused as soon as copy returns). Used for KV block copy-on-write,
  // row gathers and a step's metadata upload.
  virtual Status copy(const Tensor& src, Tensor dst) = 0;

  // Weighted sum of each token's expert outputs (MoE combine).
  //   x        f32 [T, top_k, N]   (dims 0 and 1 may be strided)
  //   weights  f32 [T, top_k]      (rows may be strided)
  //   out      f32 [T, N]          (rows may be strided; must not overlap x)
  // out[t, :] = sum_j weights[t, j] * x[t, j, :], summed in j order.
  virtual Status moe_combine(const Tensor& x, const Tensor& weights, Tensor out) = 0;

  // Draws one token per row (docs/sampling.md "device sampling").
  //   logits   f32 [B, V]   (rows may be strided; read only)
  //   params   [B]          host array
  //   out_ids  i32 [B]      host or backend memory
  // Per row: greedy when temperature <= 0; else logits / temperature, keep the top_k largest
  // (ties to the lower id), softmax, keep the smallest prefix of the descending order whose
  // mass reaches top_p (at least one), drop probs < min_p * max prob, renormalise, and pick by
  // inverse CDF over the descending order with u = philox_uniform(seed, step).
  virtual Status sample(const Tensor& logits, std::span<const SampleParams> params,
                        Tensor out_ids) = 0;

  // INT8 matmul (see Int8Mode).
  //   x        f32 [M, K]   (rows may be strided)
  //   w        i8  [N, K]   (rows may be strided)
  //   w_scale  f32 [N]      per output channel
  //   out      f32 [M, N]   (rows may be strided)
  virtual Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                             Tensor out) = 0;

  // out[t, :] = f32(table[ids[t], :]).   table [vocab, hidden] any dtype; out f32 [T, hidden]
  virtual Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) = 0;

  // out = x @ w^T.   x f32 [M, K] (rows may be strided); w [N, K] of any float or block dtype;
  // out f32 [M, N] (rows may be strided).
  virtual Status matmul(const Tensor& x, const Tensor& w, Tensor out) = 0;

  // Batched matmul: out[b] = x[b] @ w[b]^T for every b < B (MLA's per-head absorbed products).
  //   x    f32 [B, M, K]            (dims 0 and 1 may be strided)
  //   w    f32|f16|bf16 [B, N, K]   (dims 0 and 1 may be strided)
  //   out  f32 [B, M, N]            (dims 0 and 1 may be strided; must not overlap x)
  virtual Status matmul_batched(const Tensor& x, const Tensor& w, Tensor out) = 0;

  // out = x / sqrt(mean(x^2) + eps) * weight.   x, out f32 [M, D]; weight f32 [D]. out may be x.
  virtual Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) = 0;

  // In place on x f32 [T, H, head_dim]; token t at positions[t]. Only the first rot_dim values
  // of each head rotate.
  virtual Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) = 0;

  // Causal GQA attention for one sequence over its KV cache.
  //   q        f32 [T, Hq, D]
  //   k_cache  f32|f16 [S, Hkv, D]   (row s holds position s; rows past the last position unread)
  //   v_cache  f32|f16 [S, Hkv, Dv]
  //   out      f32 [T, Hq, Dv]
  // Query t attends keys 0..positions[t]; Hq % Hkv == 0; head h uses kv head h / (Hq / Hkv).
  virtual Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           std::span<const int32_t> positions, float scale, Tensor out) = 0;

  // out = silu(gate) * up.   gate, up, out f32 [M, F]; out may alias gate.
  virtual Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) = 0;

  // out = a + b.   f32, same shape; out may alias a or b.
  virtual Status add(const Tensor& a, const Tensor& b, Tensor out) = 0;

  // dst = src converted elementwise (f32 -> f32/f16/bf16), same shape; used for KV writes.
  virtual Status convert(const Tensor& src, Tensor dst) = 0;

  // Causal GQA attention over a paged KV cache for one packed step (DESIGN.md "One step's
  // batch"): several sequences, prefill chunks and decodes mixed, no padding.
  //   q             f32 [num_tokens, Hq, D]              (rows may be strided)
  //   k_cache       f32|f16 [num_blocks, block_size, Hkv, D]
  //   v_cache       f32|f16 [num_blocks, block_size, Hkv, Dv]   same dtype as k_cache
  //   query_start   [num_seqs + 1]   0 = query_start[0] <= ... <= query_start[num_seqs] =
  //                                  num_tokens; seq s owns rows query_start[s]..[s+1]-1
  //   seq_lens      [num_seqs]       cached + new tokens of seq s; n_s = its row count <= it
  //   block_tables  i32 [num_seqs, max_blocks_per_seq]   physical block of each logical block
  //   out           f32 [num_tokens, Hq, Dv]             (rows may be strided)
  // Token i of seq s sits at position seq_lens[s] - n_s + i and attends keys 0..that position;
  // key j lives at slot j % block_size of block block_tables[s, j / block_size]. Only the
  // first ceil(seq_lens[s] / block_size) entries of a table row are read (each must be in
  // [0, num_blocks)); later entries and unreferenced blocks may hold anything.
  // MLA (latent cache): v_cache may alias k_cache: same data pointer and outer strides,
  // Dv <= D, so V is the first Dv values of each K row (Hkv = 1 in DeepSeek's layout).
  virtual Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                 std::span<const int32_t> query_start,
                                 std::span<const int32_t> seq_lens, const Tensor& block_tables,
                                 float scale, Tensor out) = 0;

  // Writes new K/V rows into their cache slots: slot = block * block_size + offset.
  //   k             f32 [num_tokens, Hkv, D]     v  f32 [num_tokens, Hkv, Dv]
  //   slot_mapping  [num_tokens]   each in [0, num_blocks * block_size) or negative = skip;
  //                                the non-negative ones must be distinct
  //   k_cache, v_cache as in paged_attention; values are rounded to the cache dtype (f16:
  //   round to nearest even). Skipped slots and every other slot are left untouched.
  virtual Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                           Tensor k_cache, Tensor v_cache) = 0;

  // Picks each token's experts and their weights (see MoeRouteParams).
  //   logits       f32 [T, E]          (rows may be strided)
  //   bias         f32 [E] or empty    (kSigmoid only: selection bias)
  //   out_ids      i32 [T, top_k]      (rows may be strided)
  //   out_weights  f32 [T, top_k]      (rows may be strided)
  virtual Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                           Tensor out_ids, Tensor out_weights) = 0;

  // Grouped expert matmul: out[t, j, :] = x[t, :] @ w[ids[t, j]]^T.
  //   x    f32 [T, K]          (rows may be strided)
  //   w    [E, N, K]           any matmul weight dtype, experts stacked on dim 0
  //   ids  i32 [T, top_k]      each in [0, E) (checked: a bad id is invalid_argument)
  //   out  f32 [T, top_k, N]   (rows may be strided)
  // Backends group by expert (one matmul per active expert over its gathered rows).
  virtual Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                                    Tensor out) = 0;

  // Block-scaled FP8 matmul (DeepSeek-V3 checkpoints): out = x @ dequant(w)^T with
  //   dequant(w)[n, k] = f32(w[n, k]) * w_scale_inv[n / block_n, k / block_k].
  //   x            f32 [M, K]                                  (rows may be strided)
  //   w            fp8_e4m3 [N, K]                             (rows may be strided)
  //   w_scale_inv  f32 [ceil(N / block_n), ceil(K / block_k)]  (rows may be strided)
  //   out          f32 [M, N]                                  (rows may be strided)
  // N and K need not be multiples of the block; the last blocks are partial. No dequantised
  // copy of w is made. See docs/ops.md "FP8 block-scaled matmul".
  virtual Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                                     const BlockScaleParams& block, Tensor out) {
    return unimplemented("matmul_block_scaled: backend {} has no kernel", name());
  }

  // Grouped expert form of matmul_block_scaled: out[t, j, :] = x[t, :] @ dequant(w[ids[t, j]])^T.
  //   x            f32 [T, K]                                     (rows may be strided)
  //   w            fp8_e4m3 [E, N, K]
  //   w_scale_inv  f32 [E, ceil(N / block_n), ceil(K / block_k)]
  //   ids          i32 [T, top_k]   each in [0, E) (a bad id is invalid_argument)
  //   out          f32 [T, top_k, N]                              (rows may be strided)
  virtual Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                                 const Tensor& w_scale_inv, const Tensor& ids,
                                                 const BlockScaleParams& block, Tensor out) {
    return unimplemented("moe_grouped_matmul_block_scaled: backend {} has no kernel", name());
  }
};

// The scalar reference backend (the oracle for tests) and the SIMD, threaded CPU backend.
std::unique_ptr<Backend> make_reference_backend();
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace tessera::backend
