// CUDA paged attention over a packed step (prefill chunks and decodes mixed) and the KV-cache
// append, on raw device pointers. Layout as backend::Backend::paged_attention; KV f32|f16|bf16.
// Invariant: only keys 0..position of each query are read (never a slot past a sequence's
// length, never a block-table entry past ceil(seq_len / block_size)).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/types.h"

namespace tessera::kernels::cuda {

// All pointers are device pointers; strides are in elements.
//   q     f32 [num_tokens, Hq, D]                      strides (q_tok, q_head)
//   k     kv_type [num_blocks, block_size, Hkv, D]     strides (k_block, k_slot, k_head)
//   v     kv_type [num_blocks, block_size, Hkv, Dv]    strides (v_block, v_slot, v_head);
//         may alias k (MLA latent: Hkv = 1, Dv <= D)
//   out   f32 [num_tokens, Hq, Dv]                     strides (o_tok, o_head)
//   query_start [num_seqs + 1], seq_lens [num_seqs], block_tables [num_seqs, bt_stride]
struct PagedAttentionParams {
  const float* q;
  int64_t q_tok, q_head;
  const void* k;
  int64_t k_block, k_slot, k_head;
  const void* v;
  int64_t v_block, v_slot, v_head;
  ElemType kv_type;
  float* out;
  int64_t o_tok, o_head;
  int64_t num_tokens, num_seqs, num_q_heads, num_kv_heads, head_dim, v_head_dim, block_size;
  const int32_t* query_start;
  const int32_t* seq_lens;
  const int32_t* block_tables;
  int64_t bt_stride;
  float scale;
  // Optional [num_tokens]: query t reads keys 0..positions[t] instead of the packed-batch rule
  // (the single-sequence contiguous attention op: one block of block_size >= every key).
  const int32_t* positions = nullptr;
  // Split-K: keys are cut into partitions of partition_keys (a multiple of 64) when
  // num_partitions > 1; partial results go to `workspace` and a second kernel reduces them.
  int num_partitions = 1;  // >= ceil(max seq_len / partition_keys)
  int partition_keys = 0;  // 0: one partition holds every key
  void* workspace = nullptr;
  // Sequences with >= flash::kMinRun (16) queries take the flash-style prefill kernel when the
  // cache allows it (flash_prefill_supported); false keeps every row on the split-K kernel.
  bool allow_flash = true;
  // MLA layout (V aliases K, Hkv == 1, f16/bf16, D <= 576, Dv <= 512): every row takes the MLA
  // decode kernel (mla_decode.cu; mla_decode_supported) unless this is false.
  bool allow_mla = true;
};

// Bytes of workspace paged_attention needs for this split (0 when num_partitions == 1).
int64_t paged_attention_workspace_bytes(int64_t num_tokens, int64_t num_q_heads, int64_t v_head_dim,
                                        int num_partitions);

// Picks partition_keys / num_partitions for max_seq_len keys so the grid fills `num_sms`
// multiprocessors without the workspace exceeding max_workspace_bytes.
void choose_paged_attention_split(PagedAttentionParams& p, int64_t max_seq_len, int num_sms,
                                  int64_t max_workspace_bytes);

// Runs both kernels over disjoint rows: the flash prefill kernel (flash_prefill.cu) takes the
// sequences with long query runs when flash_prefill_supported(p), the split-K kernel the rest.
cudaError_t paged_attention(const PagedAttentionParams& p, cudaStream_t stream);

// Flash-style prefill: f16/bf16 cache, head_dim == v_head_dim in {64, 128}, K distinct from V,
// 16-byte aligned cache rows. flash_prefill alone writes only the rows of sequences with
// >= 16 queries (kernels/cuda/attention/flash_tile_logic.h).
bool flash_prefill_supported(const PagedAttentionParams& p);
cudaError_t flash_prefill(const PagedAttentionParams& p, cudaStream_t stream);

// MLA decode: one CTA per (token, block of <= 32 query heads, key partition) reads each latent
// row once for all of the block's heads (kernels/cuda/attention/mla_decode_logic.h). mla_decode
// writes `out` (one partition) or the workspace partials (part_ml, part_acc as in
// paged_attention's workspace); paged_attention runs it and the reduction when supported.
bool mla_decode_supported(const PagedAttentionParams& p);
cudaError_t mla_decode(const PagedAttentionParams& p, float* part_ml, float* part_acc,
                       cudaStream_t stream);

// Writes new K/V rows into their slots (slot = block * block_size + offset; negative: skip).
//   k f32 [num_tokens, Hkv, D] strides (k_tok, k_head); v f32 [num_tokens, Hkv, Dv] likewise
//   caches as in PagedAttentionParams (f32|f16|bf16, round to nearest even). V is written
//   after K, so an aliased (MLA) V overwrites K's first Dv values as the reference does.
struct KvAppendParams {
  const float* k;
  int64_t k_tok, k_head;
  const float* v;
  int64_t v_tok, v_head;
  const int32_t* slot_mapping;  // [num_tokens]
  void* k_cache;
  int64_t kc_block, kc_slot, kc_head;
  void* v_cache;
  int64_t vc_block, vc_slot, vc_head;
  ElemType cache_type;
  int64_t num_tokens, num_kv_heads, head_dim, v_head_dim, block_size;
};
cudaError_t kv_append(const KvAppendParams& p, cudaStream_t stream);

}  // namespace tessera::kernels::cuda
