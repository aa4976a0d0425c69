// PagedKvCache: the K and V tensors of a paged KV cache, one pair per layer, each
// [num_blocks, block_size, n_kv_heads, head_dim], allocated once. The kv/ BlockManager decides
// which block holds what; this only owns the memory. MLA models (DeepSeek) get a latent cache:
// one [num_blocks, block_size, 1, kv_lora_rank + qk_rope_head_dim] tensor per layer whose V is
// a view of each row's first kv_lora_rank values (no separate V memory). The memory is the
// backend's (Backend::allocate): on a device backend it is device memory, never read on the host.
// Invariant: every layer has the same geometry and dtype (f32 or f16), and shapes never change
// after create().
#pragma once

#include <cstdint>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/core/dtype.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"
#include "tessera/model/model_config.h"

namespace tessera::model {

class PagedKvCache {
 public:
  PagedKvCache() = default;

  // A cache for `config`'s attention geometry (num_hidden_layers, num_key_value_heads,
  // head_dim; for DeepSeek configs the MLA latent layout above) in `backend`'s memory (the
  // backend must outlive the cache). Fails on a non-positive size or a dtype other than f32 /
  // f16, or when the backend cannot allocate it.
  static Result<PagedKvCache> create(backend::Backend* backend, const ModelConfig& config,
                                     int32_t num_blocks, int32_t block_size,
                                     DType dtype = DType::kF32);

  int32_t num_layers() const { return static_cast<int32_t>(k_.size()); }
  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int64_t num_kv_heads() const { return num_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t v_head_dim() const { return latent_dim_ > 0 ? latent_dim_ : head_dim_; }
  bool is_latent() const { return latent_dim_ > 0; }  // MLA: v(layer) aliases k(layer)
  DType dtype() const { return dtype_; }

  Tensor k(int layer) { return k_[layer].view; }  // [num_blocks, block_size, Hkv, D]
  Tensor v(int layer);  // [num_blocks, block_size, Hkv, Dv] (MLA: a view into k(layer))

  // Copies block `src` onto block `dst` in every layer's K and V (copy-on-write of a shared
  // partial block; kv::BlockCopy) with the backend's copy op. Both must be in [0, num_blocks).
  Status copy_block(int32_t src, int32_t dst);

 private:
  int32_t num_blocks_ = 0, block_size_ = 0;
  int64_t num_kv_heads_ = 0, head_dim_ = 0, latent_dim_ = 0;
  DType dtype_ = DType::kF32;
  backend::Backend* backend_ = nullptr;
  std::vector<backend::BackendTensor> k_, v_;
};

}  // namespace tessera::model
