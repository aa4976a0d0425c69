// The CPU backend: op_checks, then the SIMD kernels of kernels/cpu split across
// default_thread_pool() (rows, tokens, or (token, head) pairs). Matmul (dense and batched) is
// CpuMatmul's.
// Invariant: after warm-up no op allocates: scratch is thread_local and only grows, and the
// rope inv_freq table is rebuilt only when the parameters change.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "kernels/cpu/moe.h"
#include "kernels/cpu/ops.h"
#include "kernels/ref/quant.h"
#include "src/backend/cpu_fp8.h"
#include "src/backend/cpu_int8.h"
#include "src/backend/cpu_matmul.h"
#include "src/backend/cpu_moe.h"
#include "src/backend/host_backend.h"
#include "tessera/backend/backend.h"
#include "tessera/backend/op_checks.h"
#include "tessera/core/thread_pool.h"

namespace tessera::backend {
namespace {

// Below this many values per chunk a thread hand-off costs more than the work.
constexpr int64_t kMinElemsPerChunk = 16384;

int64_t rows_per_chunk(int64_t row_elems) {
  return std::max<int64_t>(1, kMinElemsPerChunk / std::max<int64_t>(1, row_elems));
}

bool same_spec(const kernels::RopeSpec& a, const kernels::RopeSpec& b) {
  return a.style == b.style && a.rot_dim == b.rot_dim && a.theta == b.theta &&
         a.scaling == b.scaling && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings &&
         a.beta_fast == b.beta_fast && a.beta_slow == b.beta_slow && a.mscale == b.mscale;
}

// Per-thread scratch that grows and is never shrunk.
float* scratch(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Grouped attention over num_tasks (token, KV head) tasks of G query heads each. With fewer
// tasks than twice the threads (decode), each task's keys are split into pieces of at least
// kMinSplitKeys whose online-softmax partials are merged afterwards. Tasks are dealt out
// round-robin so that causal prefill (later tokens read more keys) stays balanced.
//   num_keys(task), group(task, k0, k1, m, l, acc), out(task) -> the task's first output row
constexpr int64_t kMinSplitKeys = 256;
template <class NumKeys, class Group, class Out>
void grouped_attention(int64_t num_tasks, int64_t G, int64_t dv, int64_t o_head, int64_t max_keys,
                       const NumKeys& num_keys, const Group& group, const Out& out) {
  ThreadPool& pool = default_thread_pool();
  const int64_t threads = pool.num_threads();
  int64_t splits = 1;
  if (num_tasks < 2 * threads) {
    splits = std::min((2 * threads + num_tasks - 1) / num_tasks, max_keys / kMinSplitKeys);
    splits = std::max<int64_t>(splits, 1);
  }
  const int64_t P = kernels::cpu::attention_partial_floats(G, dv);
  if (splits == 1) {
    pool.run([&](int index, int count) {
      thread_local std::vector<float> part_buf;
      float* part = scratch(part_buf, static_cast<size_t>(P));
      for (int64_t task = index; task < num_tasks; task += count) {
        group(task, 0, num_keys(task), part, part + G, part + 2 * G);
        kernels::cpu::attention_merge(part, 1, G, dv, out(task), o_head);
      }
    });
    return;
  }
  thread_local std::vector<float> parts_buf;
  float* parts = scratch(parts_buf, static_cast<size_t>(num_tasks * splits * P));
  pool.run([&](int index, int count) {
    for (int64_t i = index; i < num_tasks * splits; i += count) {
      const int64_t task = i / splits, piece = i % splits, nk = num_keys(task);
      float* part = parts + i * P;
      group(task, nk * piece / splits, nk * (piece + 1) / splits, part, part + G, part + 2 * G);
    }
  });
  pool.parallel_for(num_tasks, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      kernels::cpu::attention_merge(parts + task * splits * P, splits, G, dv, out(task), o_head);
    }
  });
}

class CpuBackend final : public HostBackend {
 public:
  std::string_view name() const override { return "cpu"; }

  bool supports(Op op, DType a, DType b) const override {
    switch (op) {
      case Op::kMatmul:
      case Op::kMoeGroupedMatmul:
        return CpuMatmul::supports(a);
      case Op::kEmbedding:
        return dtype_info(a).is_quantized || a == DType::kF32 || a == DType::kF16 ||
               a == DType::kBF16;
      case Op::kAttention:
      case Op::kPagedAttention:
      case Op::kKvAppend:
        return a == DType::kF32 || a == DType::kF16;
      case Op::kConvert:
        return b == DType::kF32 || b == DType::kF16 || b == DType::kBF16;
      case Op::kRmsNorm:
      case Op::kRope:
      case Op::kSiluMul:
      case Op::kAdd:
      case Op::kMoeRoute:
        return true;
      case Op::kMatmulBlockScaled:
      case Op::kMoeGroupedMatmulBlockScaled:
        return a == DType::kFP8_E4M3 && b == DType::kF32;
      case Op::kCopy:
      case Op::kMoeCombine:
      case Op::kSample:
        return true;
      case Op::kMatmulInt8:
        return a == DType::kI8;
      case Op::kMatmulBatched:
        return a == DType::kF32 || a == DType::kF16 || a == DType::kBF16;
    }
    return false;
  }

  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_embedding(table, ids, out));
    const RowView o = row_view(out);
    const char* base = static_cast<const char*>(table.data());
    const int64_t row_bytes = table.stride_bytes(0);
    const DType type = table.dtype();
    std::atomic<bool> ok{true};
    // NOTE: one row per token: dequantizing it is memory-bound, so the scalar reference
    // dequantizer is as fast as a SIMD one would be here.
    default_thread_pool().parallel_for(
        static_cast<int64_t>(ids.size()), rows_per_chunk(o.row_elems), [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) {
            const char* row = base + ids[t] * row_bytes;
            auto* dst = reinterpret_cast<float*>(o.row(t));
            if (type == DType::kF32) {
              std::memcpy(dst, row, static_cast<size_t>(o.row_elems) * sizeof(float));
            } else if (!kernels::ref::dequantize_row(type, row, dst, o.row_elems)) {
              ok = false;
            }
          }
        });
    if (!ok) {
      return unimplemented("embedding: table dtype {} cannot be dequantized", dtype_name(type));
    }
    return Status::ok_status();
  }

  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul(x, w, out));
    if (!CpuMatmul::supports(w.dtype())) {
      return unimplemented("matmul: the CPU backend has no kernel for weight {}", w.describe());
    }
    return matmul_.run(default_thread_pool(), x, w, out);
  }

  Status matmul_batched(const Tensor& x, const Tensor& w, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul_batched(x, w, out));
    return matmul_.run_batched(default_thread_pool(), x, w, out);
  }

  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_rms_norm(x, weight, eps, out));
    const RowView xr = row_view(x);
    const RowView orow = row_view(out);
    const float* w = weight.data_as<const float>();
    default_thread_pool().parallel_for(
        xr.num_rows, rows_per_chunk(xr.row_elems), [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            kernels::cpu::rms_norm_row(reinterpret_cast<const float*>(xr.row(r)), w, eps,
                                       reinterpret_cast<float*>(orow.row(r)), xr.row_elems);
          }
        });
    return Status::ok_status();
  }

  Status rope(Tensor x, std::span<const int32_t> positions, const RopeParams& params) override {
    TESSERA_RETURN_IF_ERROR(check_rope(x, positions, params));
    const kernels::RopeSpec spec = to_rope_spec(params);
    const int half = spec.rot_dim / 2;
    // NOTE: held for the whole op so a concurrent call with other parameters cannot swap the
    // table underneath this one; rope is cheap next to the matmuls around it.
    std::lock_guard<std::mutex> lock(rope_mutex_);
    if (!rope_cached_ || !same_spec(spec, rope_spec_)) {
      rope_inv_freq_.resize(half);
      rope_attention_factor_ = kernels::ref::rope_inv_freq(spec, rope_inv_freq_.data());
      rope_spec_ = spec;
      rope_cached_ = true;
    }
    const double attention_factor = rope_attention_factor_;
    const Strides3 s = elem_strides3(x);
    const int64_t num_heads = x.dim(1);
    float* base = x.data_as<float>();
    const double* freqs = rope_inv_freq_.data();
    default_thread_pool().parallel_for(
        x.dim(0), rows_per_chunk(num_heads * spec.rot_dim), [&](int64_t b, int64_t e) {
          thread_local std::vector<float> cos_sin;
          float* cos = scratch(cos_sin, 2 * static_cast<size_t>(half));
          float* sin = cos + half;
          for (int64_t t = b; t < e; ++t) {
            kernels::cpu::rope_cos_sin(freqs, half, positions[t], attention_factor, cos, sin);
            kernels::cpu::rope_apply(base + t * s.s0, num_heads, s.s1, cos, sin, half, spec.style);
          }
        });
    return Status::ok_status();
  }

  Status attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                   std::span<const int32_t> positions, float scale, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_attention(q, k_cache, v_cache, positions, scale, out));
    const kernels::ref::AttentionArgs a =
        to_attention_args(q, k_cache, v_cache, positions, scale, out);
    if (a.num_tokens == 0) return Status::ok_status();
    const int32_t max_pos = *std::max_element(positions.begin(), positions.end());
    const int64_t hkv = a.num_kv_heads, G = a.num_q_heads / a.num_kv_heads;
    grouped_attention(
        a.num_tokens * hkv, G, a.v_head_dim, a.o_head, static_cast<int64_t>(max_pos) + 1,
        [&](int64_t task) { return static_cast<int64_t>(positions[task / hkv]) + 1; },
        [&](int64_t task, int64_t k0, int64_t k1, float* m, float* l, float* acc) {
          kernels::cpu::attention_group(a, task / hkv, task % hkv, k0, k1, m, l, acc);
        },
        [&](int64_t task) { return a.out + task / hkv * a.o_tok + task % hkv * G * a.o_head; });
    return Status::ok_status();
  }

  Status paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_paged_attention(q, k_cache, v_cache, query_start, seq_lens,
                                                  block_tables, scale, out));
    const kernels::ref::PagedAttentionArgs a = to_paged_attention_args(
        q, k_cache, v_cache, query_start, seq_lens, block_tables, scale, out);
    const int64_t num_tokens = q.dim(0);
    if (num_tokens == 0) return Status::ok_status();
    const int64_t hkv = a.num_kv_heads, G = a.num_q_heads / a.num_kv_heads;
    // The sequence owning row t: the last s with query_start[s] <= t (empty ones skipped).
    auto seq_of = [&](int64_t t) {
      return static_cast<int64_t>(std::upper_bound(query_start.begin(), query_start.end(),
                                                   static_cast<int32_t>(t)) -
                                  query_start.begin() - 1);
    };
    // Token t of sequence s reads keys 0..seq_lens[s] - n_s + (t - query_start[s]).
    auto keys_of = [&](int64_t s, int64_t t) {
      return static_cast<int64_t>(seq_lens[s]) - (query_start[s + 1] - query_start[s]) +
             (t - query_start[s]) + 1;
    };
    const int64_t max_keys = *std::max_element(seq_lens.begin(), seq_lens.end());
    grouped_attention(
        num_tokens * hkv, G, a.v_head_dim, a.o_head, max_keys,
        [&](int64_t task) { return keys_of(seq_of(task / hkv), task / hkv); },
        [&](int64_t task, int64_t k0, int64_t k1, float* m, float* l, float* acc) {
          const int64_t t = task / hkv;
          kernels::cpu::paged_attention_group(a, seq_of(t), t, task % hkv, k0, k1, m, l, acc);
        },
        [&](int64_t task) { return a.out + task / hkv * a.o_tok + task % hkv * G * a.o_head; });
    return Status::ok_status();
  }

  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slot_mapping,
                   Tensor k_cache, Tensor v_cache) override {
    TESSERA_RETURN_IF_ERROR(check_kv_append(k, v, slot_mapping, k_cache, v_cache));
    const int64_t block_size = k_cache.dim(1);
    const DType type = k_cache.dtype();
    std::atomic<bool> ok{true};
    const int64_t row_elems = k.dim(1) * (k.dim(2) + v.dim(2));
    default_thread_pool().parallel_for(
        static_cast<int64_t>(slot_mapping.size()), rows_per_chunk(row_elems),
        [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) {
            if (slot_mapping[t] < 0) continue;
            const int64_t block = slot_mapping[t] / block_size;
            const int64_t offset = slot_mapping[t] % block_size;
            for (const auto& [src, dst] : {std::pair<const Tensor*, Tensor*>{&k, &k_cache},
                                           std::pair<const Tensor*, Tensor*>{&v, &v_cache}}) {
              for (int64_t h = 0; h < src->dim(1); ++h) {
                const auto* row = reinterpret_cast<const float*>(
                    static_cast<const char*>(src->data()) + t * src->stride_bytes(0) +
                    h * src->stride_bytes(1));
                char* slot = static_cast<char*>(dst->data()) + block * dst->stride_bytes(0) +
                             offset * dst->stride_bytes(1) + h * dst->stride_bytes(2);
                if (!kernels::cpu::convert_row(row, type, slot, src->dim(2))) ok = false;
              }
            }
          }
        });
    if (!ok) return unimplemented("kv_append: cache {} is not supported", k_cache.describe());
    return Status::ok_status();
  }

  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_silu_mul(gate, up, out));
    const RowView g = row_view(gate);
    const RowView u = row_view(up);
    const RowView o = row_view(out);
    default_thread_pool().parallel_for(
        g.num_rows, rows_per_chunk(g.row_elems), [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            kernels::cpu::silu_mul_row(reinterpret_cast<const float*>(g.row(r)),
                                       reinterpret_cast<const float*>(u.row(r)),
                                       reinterpret_cast<float*>(o.row(r)), g.row_elems);
          }
        });
    return Status::ok_status();
  }

  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_add(a, b, out));
    const RowView ar = row_view(a);
    const RowView br = row_view(b);
    const RowView o = row_view(out);
    default_thread_pool().parallel_for(
        ar.num_rows, rows_per_chunk(ar.row_elems), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            kernels::cpu::add_row(reinterpret_cast<const float*>(ar.row(r)),
                                  reinterpret_cast<const float*>(br.row(r)),
                                  reinterpret_cast<float*>(o.row(r)), ar.row_elems);
          }
        });
    return Status::ok_status();
  }

  Status convert(const Tensor& src, Tensor dst) override {
    TESSERA_RETURN_IF_ERROR(check_convert(src, dst));
    const RowView s = row_view(src);
    const RowView d = row_view(dst);
    const DType type = dst.dtype();
    std::atomic<bool> ok{true};
    default_thread_pool().parallel_for(
        s.num_rows, rows_per_chunk(s.row_elems), [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            if (!kernels::cpu::convert_row(reinterpret_cast<const float*>(s.row(r)), type, d.row(r),
                                           s.row_elems)) {
              ok = false;
            }
          }
        });
    if (!ok) return unimplemented("convert: dst {} is not supported", dst.describe());
    return Status::ok_status();
  }

  Status moe_route(const Tensor& logits, const Tensor& bias, const MoeRouteParams& params,
                   Tensor out_ids, Tensor out_weights) override {
    TESSERA_RETURN_IF_ERROR(check_moe_route(logits, bias, params, out_ids, out_weights));
    const kernels::MoeRouteSpec spec = to_moe_route_spec(params, logits.dim(1));
    const float* b = bias.empty() ? nullptr : bias.data_as<const float>();
    default_thread_pool().parallel_for(
        logits.dim(0), rows_per_chunk(8 * logits.dim(1)), [&](int64_t begin, int64_t end) {
          for (int64_t t = begin; t < end; ++t) {
            kernels::cpu::moe_route_token(logits.row(t).data_as<const float>(), b, spec,
                                          out_ids.row(t).data_as<int32_t>(),
                                          out_weights.row(t).data_as<float>());
          }
        });
    return Status::ok_status();
  }

  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_moe_grouped_matmul(x, w, ids, out));
    if (!CpuMatmul::supports(w.dtype())) {
      return unimplemented("moe_grouped_matmul: the CPU backend has no kernel for weight {}",
                           w.describe());
    }
    return moe_matmul_.run(default_thread_pool(), matmul_, x, w, ids, out);
  }

  Status matmul_block_scaled(const Tensor& x, const Tensor& w, const Tensor& w_scale_inv,
                             const BlockScaleParams& block, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul_block_scaled(x, w, w_scale_inv, block, out));
    return fp8_matmul_.run(default_thread_pool(), x, w, w_scale_inv, block, out);
  }

  Status moe_grouped_matmul_block_scaled(const Tensor& x, const Tensor& w,
                                         const Tensor& w_scale_inv, const Tensor& ids,
                                         const BlockScaleParams& block, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(
        check_moe_grouped_matmul_block_scaled(x, w, w_scale_inv, ids, block, out));
    return fp8_matmul_.run_grouped(default_thread_pool(), x, w, w_scale_inv, ids, block, out);
  }

  Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                     Tensor out) override {
    TESSERA_RETURN_IF_ERROR(check_matmul_int8(x, w, w_scale, mode, out));
    return int8_matmul_.run(default_thread_pool(), x, w, w_scale, mode, out);
  }

 private:
  CpuMatmul matmul_;
  CpuFp8Matmul fp8_matmul_;
  CpuInt8Matmul int8_matmul_;
  CpuMoeMatmul moe_matmul_;
  std::mutex rope_mutex_;
  bool rope_cached_ = false;
  kernels::RopeSpec rope_spec_;
  std::vector<double> rope_inv_freq_;
  double rope_attention_factor_ = 1.0;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace tessera::backend
